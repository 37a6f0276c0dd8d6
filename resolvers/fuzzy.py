"""Probabilistic matching of one customer's candidates at read time.

After the deterministic closure of one customer, the blocking keys of its
records (``resolvers.matching.blocking_keys``) are pushed down to every
member table: one batched lookup per table and column (surname, postcode,
birth date, email for personal-mailbox local parts), through the lookup
transforms the connector declares. The rows found are re-checked against the
blocking keys in memory, scored in-process against every record of the
customer with the trained model, and kept with their best score: at or above
``link`` they are the same customer (their own deterministic closure is
merged in, one extra round), from ``candidate`` up they are possible
duplicates. Nothing is stored: match records live for this request only.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from connectors import Connector, ConnectorError, LookupTransform, QueryError, Row
from resolvers.identity import Stitcher
from resolvers.matching import MatchModel, MatchRecord, MatchScore, blocking_keys, match_record
from resolvers.matching.features import FREE_MAIL_DOMAINS
from resolvers.matching.model import PRIOR
from resolvers.model import (
    BusinessAccountSpec,
    BusinessSpec,
    MemberSpec,
    ProbabilisticSpec,
    UnifiedModel,
    template_columns,
)
from resolvers.records import Record, RecordRef, canonical

PROJECT_DIR = Path(__file__).resolve().parent.parent

GOLDEN_INPUTS: dict[str, str] = {
    "firstName": "first_name",
    "lastName": "surname",
    "name": "name",
    "email": "email",
    "phone": "phone",
    "street": "street",
    "postcode": "postcode",
    "city": "city",
    "country": "country",
    "birthDate": "birth_date",
}
"""Golden field -> match input, for deriving a member's match inputs."""

ACCOUNT_NAME = "\x00account.name"
ACCOUNT_DOMAIN = "\x00account.domain"
"""Pseudo-columns of a member row: the name and domain of the account row its
``business`` account column points at, added to the row before its match record
is built (``with_account``); no source column can be named so."""


AccountRows = dict[tuple[str, str], Row | None]
"""(account table id, key) -> its row (``None``: no such row), read for one request."""


def resolve_model_path(path: str) -> Path:
    """An absolute path as is; a relative one against the working directory, else
    the project folder, else its ``config/`` folder."""
    given = Path(path).expanduser()
    if given.is_absolute():
        return given
    for base in (Path.cwd(), PROJECT_DIR, PROJECT_DIR / "config"):
        if (base / given).is_file():
            return base / given
    return given


def input_mapping(
    member: MemberSpec, spec: ProbabilisticSpec, business: BusinessSpec | None = None
) -> dict[str, str]:
    """Match input -> column or template for ``member``: derived from its golden
    field mapping and from how ``business`` says its records name their business
    (a company column, else the account row's name and domain), then
    ``fields.default``, then ``fields.<member id>``."""
    mapping = {GOLDEN_INPUTS[f]: m for f, m in member.fields.items() if f in GOLDEN_INPUTS}
    if "country" not in mapping and member.region:
        mapping["locale"] = member.region
    link = business.members.get(member.id) if business else None
    if link is not None and (link.company or link.account):
        mapping["company"] = link.company or ACCOUNT_NAME
        if link.account:
            mapping["company_domain"] = ACCOUNT_DOMAIN
    mapping.update(spec.fields.get("default", {}))
    mapping.update(spec.fields.get(member.id, {}))
    return mapping


def account_link(
    member: MemberSpec, business: BusinessSpec | None
) -> tuple[BusinessAccountSpec, str] | None:
    """The account table ``member``'s records point at, and the column holding the key."""
    link = business.members.get(member.id) if business else None
    if business is None or link is None or link.account is None or link.column is None:
        return None
    spec = next(a for a in business.accounts if a.id == link.account)
    return spec, link.column


def with_account(row: Row, account: Row | None, spec: BusinessAccountSpec) -> Row:
    """``row`` with the name and domain of the account row it points at."""
    if account is None:
        return row
    name = account.get(spec.name) if spec.name else None
    domain = account.get(spec.domain) if spec.domain else None
    return {**row, ACCOUNT_NAME: name, ACCOUNT_DOMAIN: domain}


def _value(row: Row, mapping: str) -> Any:
    if "{" not in mapping:
        return row.get(mapping)
    text = mapping
    for name in template_columns(mapping):
        text = text.replace("{" + name + "}", str(row.get(name) or ""))
    return " ".join(text.split()) or None


def match_row(
    ref: str, member_id: str, mapping: Mapping[str, str], row: Row, default_region: str
) -> MatchRecord:
    """The match record of one member row, given the member's input mapping."""
    values = {arg: _value(row, column) for arg, column in mapping.items()}
    return match_record(ref, member_id, default_region=default_region, **values)


@dataclass(frozen=True, slots=True)
class Link:
    """Why a record joined by the model: the customer record it matched best."""

    ref: RecordRef
    matched: RecordRef
    score: MatchScore


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A possible duplicate: a record of another customer that scored between the thresholds."""

    ref: RecordRef
    customer_id: str
    matched: RecordRef
    score: MatchScore


@dataclass(slots=True)
class Extension:
    """What probabilistic matching added to one customer."""

    records: list[Record] = field(default_factory=list)
    links: dict[RecordRef, Link] = field(default_factory=dict)
    duplicates: list[Duplicate] = field(default_factory=list)
    errors: list[ConnectorError] = field(default_factory=list)
    rounds: int = 0


@dataclass(frozen=True, slots=True)
class _Probe:
    member: MemberSpec
    column: str
    transform: LookupTransform
    values: tuple[Any, ...]


def contributions_json(score: MatchScore) -> list[dict[str, Any]]:
    """The score's terms, prior first, then the comparisons by decreasing |weight|."""
    prior = [c for c in score.contributions if c.comparison == PRIOR]
    rest = sorted(
        (c for c in score.contributions if c.comparison != PRIOR), key=lambda c: -abs(c.weight)
    )
    return [
        {"comparison": c.comparison, "level": c.level, "weight": round(c.weight, 3)}
        for c in [*prior, *rest]
    ]


class Matcher:
    """Finds and scores one customer's candidates over the member tables."""

    def __init__(
        self,
        model: UnifiedModel,
        spec: ProbabilisticSpec,
        connectors: Mapping[str, Connector],
        stitcher: Stitcher,
    ) -> None:
        self.spec = spec
        self.connectors = connectors
        self.stitcher = stitcher
        self.members = model.customer.members
        self.inputs = {m.id: input_mapping(m, spec, model.business) for m in self.members}
        self.default_region = model.identity.default_region or "US"
        self.accounts = {m.id: account_link(m, model.business) for m in self.members}

    @cached_property
    def model(self) -> MatchModel:
        path = resolve_model_path(self.spec.model)
        try:
            return MatchModel.load(path)
        except (OSError, ValueError) as exc:
            raise QueryError(f"identity.probabilistic.model: cannot load '{path}': {exc}") from exc

    def extra_columns(self, member: MemberSpec) -> list[str]:
        """Columns the match inputs read that the member does not read already."""
        have = set(member.columns()) | {ACCOUNT_NAME, ACCOUNT_DOMAIN}
        wanted = [c for m in self.inputs[member.id].values() for c in template_columns(m)]
        link = self.accounts[member.id]
        wanted += [link[1]] if link else []
        return [c for c in dict.fromkeys(wanted) if c not in have]

    def match_record(self, record: Record, accounts: AccountRows | None = None) -> MatchRecord:
        """The match record of ``record``, with its account's name and domain from
        ``accounts`` (as ``read_accounts`` read them for this request; none when not
        read)."""
        row = record.row
        link = self.accounts[record.member.id]
        if link is not None and row.get(link[1]) is not None:
            account = (accounts or {}).get((link[0].id, str(row[link[1]])))
            row = with_account(row, account, link[0])
        return match_row(
            str(record.ref),
            record.member.id,
            self.inputs[record.member.id],
            row,
            self.default_region,
        )

    async def read_accounts(
        self, records: Iterable[Record], into: AccountRows
    ) -> list[ConnectorError]:
        """Reads the account rows ``records`` point at (one batched lookup per account
        table) into the request's ``into``, for ``match_record``; returns the sources'
        errors (their records then match without a company)."""
        wanted: dict[str, tuple[BusinessAccountSpec, set[Any]]] = {}
        for record in records:
            link = self.accounts[record.member.id]
            if link is not None and (key := record.row.get(link[1])) is not None:
                wanted.setdefault(link[0].id, (link[0], set()))[1].add(key)
        errors: list[ConnectorError] = []
        for spec, keys in wanted.values():
            values = sorted(keys, key=str)
            try:
                found = await self.connectors[spec.source].lookup_many(
                    spec.table, spec.key, values, spec.columns(), "exact"
                )
            except ConnectorError as exc:
                errors.append(exc)
                continue
            for key, rows in zip(values, found, strict=True):
                into[(spec.id, str(key))] = rows[0] if rows else None
        return errors

    async def extend(
        self,
        records: Sequence[Record],
        *,
        link: bool = True,
        blocked: Callable[[set[str], set[str]], bool] | None = None,
    ) -> Extension:
        """Candidates of the customer made of ``records``: linked ones (with their
        deterministic closure) and possible duplicates.

        ``link=False`` links nothing (batch links decide) and reports every
        candidate from the ``candidate`` threshold up as a possible duplicate.
        ``blocked(ours, theirs)`` says a steward ruled two groups of records
        apart: such candidates are neither linked nor reported."""
        ext = Extension()
        model = self.model
        known = {r.ref for r in records}
        accounts: AccountRows = {}
        ext.errors.extend(await self.read_accounts(records, accounts))
        own = [(r, self.match_record(r, accounts)) for r in records]
        wanted: set[tuple[str, tuple[str, ...]]] = set()
        for _, mr in own:
            wanted.update(blocking_keys(mr))
        if not wanted:
            return ext
        probes = self._plan(records, own)
        results = await asyncio.gather(*(self._lookup(p) for p in probes), return_exceptions=True)
        found: dict[RecordRef, Record] = {}
        for probe, result in zip(probes, results, strict=True):
            if isinstance(result, ConnectorError):
                ext.errors.append(result)
                continue
            if isinstance(result, BaseException):
                raise result
            rank = self.stitcher.rank(probe.member)
            for rows in result:
                if len(rows) > self.spec.max_block_fanout:
                    continue
                for row in rows:
                    rec = Record(probe.member, rank, row)
                    if rec.ref not in known:
                        found.setdefault(rec.ref, rec)
        ext.rounds = 1 if probes else 0
        ext.errors.extend(await self.read_accounts(found.values(), accounts))
        best: dict[RecordRef, tuple[Record, RecordRef, MatchScore]] = {}
        for ref, cand in found.items():
            mr = self.match_record(cand, accounts)
            if wanted.isdisjoint(blocking_keys(mr)):
                continue
            for rec, rec_mr in own:
                score = model.score(mr, rec_mr)
                if ref not in best or score.weight > best[ref][2].weight:
                    best[ref] = (cand, rec.ref, score)
        threshold = self.spec.link if link else float("inf")
        linked = [b for b in best.values() if b[2].probability >= threshold]
        possible = [b for b in best.values() if self.spec.candidate <= b[2].probability < threshold]
        if not linked and not possible:
            return ext
        closure = await self.stitcher.resolve(records=[b[0] for b in linked + possible])
        ext.errors.extend(closure.errors)
        ext.rounds += closure.rounds
        ours = {str(ref) for ref in known}
        # a candidate in no cluster belongs to an erased customer
        linked = [b for b in linked if closure.cluster(b[0].ref)]
        possible = [b for b in possible if closure.cluster(b[0].ref)]
        if blocked is not None:
            linked = [
                b
                for b in linked
                if not blocked(
                    ours, {str(r.ref) for r in closure.cluster(b[0].ref)} | {str(b[0].ref)}
                )
            ]
            possible = [
                b
                for b in possible
                if not blocked(
                    ours, {str(r.ref) for r in closure.cluster(b[0].ref)} | {str(b[0].ref)}
                )
            ]
        added: dict[RecordRef, Record] = {}
        for cand, matched, score in linked:
            ext.links[cand.ref] = Link(cand.ref, matched, score)
            for rec in closure.cluster(cand.ref):
                if rec.ref not in known:
                    added[rec.ref] = rec
        ext.records = list(added.values())
        merged = known | set(added)
        by_customer: dict[str, Duplicate] = {}
        for cand, matched, score in possible:
            cluster = closure.cluster(cand.ref)
            if any(r.ref in merged for r in cluster):
                continue
            cid = canonical(cluster).ref.customer_id() if cluster else cand.ref.customer_id()
            prev = by_customer.get(cid)
            if prev is None or score.weight > prev.score.weight:
                by_customer[cid] = Duplicate(cand.ref, cid, matched, score)
        ext.duplicates = sorted(by_customer.values(), key=lambda d: -d.score.weight)
        return ext

    def _plan(
        self, records: Sequence[Record], own: Sequence[tuple[Record, MatchRecord]]
    ) -> list[_Probe]:
        """One probe per member table and column: the values the customer's records
        hold for each blocking column, as stored and as normalised."""
        raw: dict[str, set[Any]] = defaultdict(set)
        """match input -> raw values the customer's records hold."""
        names: set[Any] = set()
        """Full names as a free-text name column holds them."""
        for rec, mr in own:
            for arg, mapping in self.inputs[rec.member.id].items():
                value = _value(rec.row, mapping)
                if value is not None and value != "":
                    raw[arg].add(value)
            for key, parts in blocking_keys(mr):
                if key == "surname_postcode":
                    raw["surname"].add(parts[0])
                    raw["postcode"].add(parts[1])
                elif key == "email_local":
                    raw["email_local"].add(parts[0])
                elif key == "name":
                    raw["surname"].add(parts[1])
                    names.update(self._spelled_names(rec, parts))
        locals_ = raw.pop("email_local", set())
        raw["name"] = names
        probes: list[_Probe] = []
        for member in self.members:
            inputs = self.inputs[member.id]
            caps = self.connectors[member.source].capabilities_for(member.table)
            for arg in ("surname", "postcode", "birth_date", "email", "name"):
                column = inputs.get(arg)
                if column is None or "{" in column:
                    continue
                if arg == "email":
                    values: Iterable[Any] = (
                        f"{local}@{domain}" for local in locals_ for domain in FREE_MAIL_DOMAINS
                    )
                else:
                    values = raw.get(arg, ())
                probe = self._probe(member, column, caps, arg == "birth_date", values)
                if probe is not None:
                    probes.append(probe)
        return probes

    def _spelled_names(self, record: Record, parts: tuple[str, ...]) -> set[str]:
        """The customer's full name as a free-text name column would hold it (``First
        Last``, ``Last, First``): from the record's own name, first name and surname,
        as stored and as normalised, for members whose name is one column (a help
        desk's display name), which the surname probe cannot reach."""
        inputs = self.inputs[record.member.id]
        firsts, lasts = {parts[0]}, {parts[1]}
        spelled: set[str] = set()
        for arg, found in (("first_name", firsts), ("surname", lasts), ("name", spelled)):
            value = _value(record.row, inputs[arg]) if arg in inputs else None
            if isinstance(value, str) and value.strip():
                found.add(value)
        spelled |= {f"{f} {la}" for f in firsts for la in lasts}
        return spelled | {f"{la}, {f}" for f in firsts for la in lasts}

    @staticmethod
    def _probe(
        member: MemberSpec, column: str, caps: Any, exact_only: bool, values: Iterable[Any]
    ) -> _Probe | None:
        items = list(values)
        if not items:
            return None
        if not exact_only and caps.can_lookup(column, "casefold"):
            folded = {" ".join(str(v).split()).casefold() for v in items}
            return _Probe(member, column, "casefold", tuple(sorted(folded)))
        if caps.can_lookup(column, "exact"):
            unique = list(dict.fromkeys(items))
            return _Probe(member, column, "exact", tuple(unique))
        return None

    async def _lookup(self, probe: _Probe) -> list[list[Row]]:
        member = probe.member
        return await self.connectors[member.source].lookup_many(
            member.table,
            probe.column,
            list(probe.values),
            self.stitcher.columns(member),
            probe.transform,
        )
