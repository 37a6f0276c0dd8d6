"""The small corruptions real customer data carries, one function each.

Identity resolution is only worth testing against data that is wrong in the
ways real systems are wrong: emails typed with capitals or stray spaces,
Gmail addresses with dots and ``+tags``, names shortened to nicknames or
mistyped by one letter. Each function returns a changed copy; callers decide
how often to apply them, so the rates live next to the system they describe.
"""

from __future__ import annotations

import random

from gateway.demodata.words import GMAIL_DOMAINS, NICKNAMES

_PLUS_TAGS = ("shop", "orders", "store", "deals", "news", "northwind", "web", "2024", "buy")
_KEYBOARD = "abcdefghijklmnopqrstuvwxyz"


def case_variant(rng: random.Random, email: str) -> str:
    """``email`` with different letter case, e.g. ``John.Smith@Example.com``."""
    local, _, domain = email.partition("@")
    choice = rng.randrange(3)
    if choice == 0:
        changed = ".".join(part.capitalize() for part in local.split(".")) + "@" + domain.title()
    elif choice == 1:
        changed = email.upper()
    else:
        changed = local.capitalize() + "@" + domain
    return changed if changed != email else email.upper()


def pad(rng: random.Random, value: str) -> str:
    """``value`` with leading and/or trailing whitespace, as pasted from elsewhere."""
    return rng.choice((" {}", "{} ", " {} ", "{}  ", "\t{}")).format(value)


def is_gmail(email: str) -> bool:
    return email.rpartition("@")[2] in GMAIL_DOMAINS


def gmail_variant(rng: random.Random, email: str) -> str:
    """Another spelling of the same Gmail inbox: dots moved or a ``+tag`` added."""
    local, _, domain = email.partition("@")
    if rng.random() < 0.55:
        return f"{local}+{rng.choice(_PLUS_TAGS)}@{domain}"
    if "." in local:
        return local.replace(".", "") + "@" + domain
    cut = rng.randint(1, max(1, len(local) - 1))
    return f"{local[:cut]}.{local[cut:]}@{domain}"


def nickname(rng: random.Random, first: str) -> str | None:
    """A common short form of ``first`` (Bob for Robert), or None if it has none."""
    options = NICKNAMES.get(first)
    return rng.choice(options) if options else None


def typo(rng: random.Random, name: str) -> str:
    """``name`` with one character substituted, dropped, doubled or swapped."""
    if len(name) < 3:
        return name + name[-1:]
    pos = rng.randint(1, len(name) - 2)
    kind = rng.randrange(4)
    if kind == 0:
        letter = rng.choice(_KEYBOARD)
        return (
            name[:pos] + letter + name[pos + 1 :]
            if letter != name[pos]
            else name[:pos] + name[pos + 1 :]
        )
    if kind == 1:
        return name[:pos] + name[pos + 1 :]
    if kind == 2:
        return name[:pos] + name[pos] + name[pos:]
    if name[pos] == name[pos + 1]:
        return name[:pos] + name[pos + 1 :]
    return name[:pos] + name[pos + 1] + name[pos] + name[pos + 2 :]


def noisy_email(rng: random.Random, email: str, *, case: float, space: float) -> str:
    """``email`` with case and whitespace noise applied at the given rates."""
    if rng.random() < case:
        email = case_variant(rng, email)
    if rng.random() < space:
        email = pad(rng, email)
    return email


def name_variant(
    rng: random.Random, first: str, last: str, *, nick: float, typos: float
) -> tuple[str, str]:
    """``(first, last)`` as one system recorded them: maybe a nickname, maybe a typo."""
    if rng.random() < nick:
        first = nickname(rng, first) or first
    if rng.random() < typos:
        if rng.random() < 0.5:
            first = typo(rng, first)
        else:
            last = typo(rng, last)
    return first, last


def company_variant(rng: random.Random, brand: str, suffix: str) -> str:
    """How a person or agent might type a company name: ``ACME, Inc.`` for ``Acme Inc``."""
    choice = rng.randrange(6)
    if choice == 0:
        return f"{brand.upper()}, {suffix}"
    if choice == 1:
        return brand
    if choice == 2:
        return f"{brand} {suffix.rstrip('.') if suffix.endswith('.') else suffix + '.'}"
    if choice == 3:
        return f"{brand.replace(' & ', ' and ')} {suffix}"
    if choice == 4:
        return f"{brand.lower()} {suffix.lower()}"
    return f"{brand}, {suffix}"
