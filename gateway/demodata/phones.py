"""Valid, unique, country-styled phone numbers for the demo population.

Identity resolution keys on phone numbers in E.164, so the demo needs numbers
that ``phonenumbers`` accepts as valid, that never repeat between different
people, and that are printed the many ways people really type them. Checking
every number with ``phonenumbers`` would cost minutes for a million people,
so numbers are handed out from *blocks*: a validated national prefix with the
last two digits free. A block is accepted only when numbers across its range
validate, and its print styles are learned once from ``phonenumbers``
formatting and then filled in as plain string templates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

FREE_DIGITS = 2
_BLOCK_SIZE = 10**FREE_DIGITS
_STEP = 37  # coprime with the block size: spreads consecutive allocations over the block
_NANP = frozenset({"US", "CA"})
_IDD_00 = frozenset({"GB", "DE", "FR"})

MOBILE = "mobile"
FIXED = "fixed"
_KIND_TYPES: dict[str, tuple[int, frozenset[int]]] = {
    MOBILE: (
        PhoneNumberType.MOBILE,
        frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}),
    ),
    FIXED: (
        PhoneNumberType.FIXED_LINE,
        frozenset({PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}),
    ),
}

STYLE_WEIGHTS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "nanp": (
        ("national", "dashed", "dotted", "international", "e164", "digits"),
        (30, 15, 12, 13, 18, 12),
    ),
    "idd00": (
        ("national", "international", "idd00", "e164", "dotted", "digits"),
        (35, 25, 12, 16, 6, 6),
    ),
    "other": (("national", "international", "e164", "digits"), (40, 27, 22, 11)),
    "no_region": (("international", "e164"), (60, 40)),
}
"""How often each print style is used, by numbering plan (``no_region``: the
system stores no country, so only self-describing styles are safe)."""


@dataclass(frozen=True, slots=True)
class PhoneBlock:
    """A validated national prefix and the print templates of its numbers."""

    region: str
    e164_prefix: str
    templates: dict[str, str]
    styles: str


class Phone:
    """One allocated number: a block plus its free last digits."""

    __slots__ = ("block", "suffix")

    def __init__(self, block: PhoneBlock, suffix: str) -> None:
        self.block = block
        self.suffix = suffix

    @property
    def e164(self) -> str:
        return self.block.e164_prefix + self.suffix

    def styled(self, style: str) -> str:
        """The number printed in ``style`` (a key of the block's templates)."""
        return self.block.templates[style].format(self.suffix)

    def random_style(self, rng: random.Random, *, has_region: bool = True) -> str:
        """The number in a style drawn from the realistic mix for its region."""
        key = self.block.styles if has_region or self.block.region in _NANP else "no_region"
        styles, weights = STYLE_WEIGHTS[key]
        return self.styled(rng.choices(styles, weights)[0])


def _template(text: str) -> str:
    """``text`` with its last ``FREE_DIGITS`` digits turned into format slots."""
    chars = list(text)
    remaining = FREE_DIGITS
    for pos in range(len(chars) - 1, -1, -1):
        if remaining and chars[pos].isdigit():
            remaining -= 1
            chars[pos] = f"{{0[{remaining}]}}"
    return "".join(chars)


def _templates(number: phonenumbers.PhoneNumber, region: str) -> dict[str, str]:
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    bare = national.replace("(", "").replace(")", "")
    texts = {
        "national": national,
        "international": international,
        "e164": e164,
        "dotted": ".".join(bare.replace("-", " ").split()),
        "digits": "".join(ch for ch in national if ch.isdigit()),
        "dashed": international.split(" ", 1)[1] if region in _NANP else bare,
        "idd00": "00" + international[1:],
    }
    return {style: _template(text) for style, text in texts.items()}


class PhoneBook:
    """Hands out distinct valid numbers per region and kind, deterministically per seed."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"phones:{seed}")
        self._blocks: dict[tuple[str, str], list[PhoneBlock]] = {}
        self._used: dict[tuple[str, str], int] = {}
        self._prefixes: set[str] = set()

    def allocate(self, region: str, kind: str) -> Phone:
        """A number never handed out before, of ``kind`` (``MOBILE``/``FIXED``)."""
        key = (region, kind)
        used = self._used.get(key, 0)
        self._used[key] = used + 1
        blocks = self._blocks.setdefault(key, [])
        index, offset = divmod(used, _BLOCK_SIZE)
        if index == len(blocks):
            blocks.append(self._new_block(region, kind))
        suffix = str((offset * _STEP + 11) % _BLOCK_SIZE).zfill(FREE_DIGITS)
        return Phone(blocks[index], suffix)

    def _new_block(self, region: str, kind: str) -> PhoneBlock:
        example_type, accepted = _KIND_TYPES[kind]
        example = phonenumbers.example_number_for_type(region, example_type)
        if example is None or example.country_code is None:
            raise ValueError(f"phonenumbers has no {kind} example for {region}")
        nsn = str(example.national_number)
        while True:
            prefix = self._candidate_prefix(region, kind, nsn)
            e164_prefix = f"+{example.country_code}{prefix}"
            if e164_prefix not in self._prefixes and self._valid_block(
                example.country_code, prefix, accepted
            ):
                self._prefixes.add(e164_prefix)
                break
        sample = phonenumbers.parse(e164_prefix + "0" * FREE_DIGITS)
        styles = "nanp" if region in _NANP else "idd00" if region in _IDD_00 else "other"
        return PhoneBlock(region, e164_prefix, _templates(sample, region), styles)

    def _candidate_prefix(self, region: str, kind: str, nsn: str) -> str:
        rng = self._rng
        length = len(nsn) - FREE_DIGITS
        if region in _NANP:
            head = str(rng.randint(2, 9))
        elif kind == MOBILE:
            head = nsn[0]
        else:
            head = str(rng.randint(1, 9))
        return head + "".join(str(rng.randint(0, 9)) for _ in range(length - 1))

    def _valid_block(self, country_code: int, prefix: str, accepted: frozenset[int]) -> bool:
        probes = ["0" * FREE_DIGITS, "9" * FREE_DIGITS]
        probes += [str(self._rng.randrange(_BLOCK_SIZE)).zfill(FREE_DIGITS) for _ in range(2)]
        for probe in probes:
            number = phonenumbers.PhoneNumber(
                country_code=country_code, national_number=int(prefix + probe)
            )
            if not phonenumbers.is_valid_number(number):
                return False
            if phonenumbers.number_type(number) not in accepted:
                return False
        return True
