"""The options of one REST source: where it is, how to sign in, and how each
resource maps onto the contract's tables and columns.

Everything the connector may push down is declared here, per resource: the
filters an API parameter evaluates, the columns it sorts by, the columns it
finds records by. The connector declares exactly that and refuses the rest.
Secrets are :class:`~pydantic.SecretStr` (their ``repr`` hides them) and the
config loader substitutes them from the environment (``${NAME}``).
"""

from __future__ import annotations

import string
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from connectors._base import ConnectorOptions, FilterOp
from connectors.redaction import credential_param, secret_header

_STRICT = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class _Model(BaseModel):
    model_config = _STRICT


def _as_mapping(value: Any) -> Any:
    """A list of names stands for each name mapped to itself."""
    if isinstance(value, list):
        return {name: name for name in value}
    return value


# --- authentication ------------------------------------------------------------------


class BearerAuth(_Model):
    """``Authorization: Bearer <token>``."""

    type: Literal["bearer"]
    token: SecretStr


class BasicAuth(_Model):
    """HTTP basic authentication."""

    type: Literal["basic"]
    username: str
    password: SecretStr


class APIKeyAuth(_Model):
    """A static key in a header (``header: X-Api-Key``) or a query parameter
    (``query: api_key``); exactly one of the two."""

    type: Literal["api_key"]
    header: str | None = None
    query: str | None = None
    value: SecretStr

    @model_validator(mode="after")
    def _one_place(self) -> APIKeyAuth:
        if (self.header is None) == (self.query is None):
            raise ValueError("api_key auth needs exactly one of 'header' or 'query'")
        return self


class OAuth2ClientCredentials(_Model):
    """OAuth2 client credentials grant; the token is cached until it expires."""

    type: Literal["oauth2_client_credentials"]
    token_url: str
    """Absolute, or relative to ``base_url``."""
    client_id: str
    client_secret: SecretStr
    scope: str | None = None
    client_auth: Literal["basic", "body"] = "basic"
    """How the client authenticates to the token endpoint (RFC 6749 2.3.1)."""
    expiry_margin: float = Field(default=30.0, ge=0)
    """Seconds before expiry to fetch a new token (at most half its lifetime)."""


AuthOptions = Annotated[
    BearerAuth | BasicAuth | APIKeyAuth | OAuth2ClientCredentials, Field(discriminator="type")
]


# --- pagination ----------------------------------------------------------------------


class NoPagination(_Model):
    """One request answers the whole collection."""

    style: Literal["none"]


class PagePagination(_Model):
    """``?page=N&per_page=S``; a page shorter than ``page_size`` is the last."""

    style: Literal["page"]
    param: str = "page"
    size_param: str | None = "per_page"
    start: int = 1
    page_size: int = Field(default=100, ge=1)


class OffsetPagination(_Model):
    """``?offset=N&limit=S``; a page shorter than ``page_size`` is the last."""

    style: Literal["offset"]
    param: str = "offset"
    limit_param: str | None = "limit"
    page_size: int = Field(default=100, ge=1)


class CursorPagination(_Model):
    """The body names the next page's cursor (``next``); absent or null ends it."""

    style: Literal["cursor"]
    param: str = "cursor"
    next: str = "next_cursor"
    """Dotted path of the next cursor in the body."""
    limit_param: str | None = "limit"
    page_size: int = Field(default=100, ge=1)


class LinkPagination(_Model):
    """RFC 8288 ``Link: <url>; rel="next"`` headers; no such link ends it."""

    style: Literal["link"]
    limit_param: str | None = "limit"
    page_size: int = Field(default=100, ge=1)


PaginationOptions = Annotated[
    NoPagination | PagePagination | OffsetPagination | CursorPagination | LinkPagination,
    Field(discriminator="style"),
]


# --- resources -----------------------------------------------------------------------


class LookupOptions(_Model):
    """How to find records by one column: ``?param=key`` or, batched, ``?param=k1,k2``."""

    param: str
    batch: bool = False
    separator: str | None = ","
    """Joins batched keys; ``null`` repeats the parameter (``?id=1&id=2``)."""
    max_batch: int = Field(default=50, ge=1, le=1000)


class SortOptions(_Model):
    """``?sort=-created_at,id`` style ordering."""

    param: str = "sort"
    columns: dict[str, str]
    """Sortable column to the name the API sorts it by (a list: the same names)."""
    descending_prefix: str = "-"
    separator: str = ","
    max_columns: int = Field(default=1, ge=1)
    """Sort columns one request may combine (only raise it if the API honours it)."""

    @field_validator("columns", mode="before")
    @classmethod
    def _names_are_fields(cls, value: Any) -> Any:
        return _as_mapping(value)


class ResourceOptions(_Model):
    """One REST collection, read as a table."""

    path: str
    records: str = ""
    """Dotted path of the record list in a page's body; ``""`` is the body itself."""
    columns: dict[str, str]
    """Column name to the dotted JSON path of its value in a record
    (a list of names maps each to the field of the same name)."""
    key: str | None = None
    get_by_key: str | None = None
    """Single-record path with one ``{placeholder}`` for the key (``/surveys/{id}``)."""
    record: str = ""
    """Dotted path of the record in a ``get_by_key`` body."""
    lookups: dict[str, LookupOptions] = {}
    filters: dict[str, dict[FilterOp, str]] = {}
    """Column to operator to the query parameter that evaluates it."""
    sort: SortOptions | None = None
    pagination: PaginationOptions = NoPagination(style="none")
    params: dict[str, str] = {}
    """Query parameters sent on every request of this resource."""

    @field_validator("columns", mode="before")
    @classmethod
    def _names_are_paths(cls, value: Any) -> Any:
        return _as_mapping(value)

    @field_validator("get_by_key")
    @classmethod
    def _one_placeholder(cls, value: str | None) -> str | None:
        if value is None:
            return value
        names = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        if len(names) != 1 or not names[0].isidentifier():
            raise ValueError("get_by_key needs exactly one placeholder, e.g. /surveys/{id}")
        return value

    @model_validator(mode="after")
    def _known_columns(self) -> ResourceOptions:
        used = {"key": [self.key] if self.key else []}
        used["lookups"] = list(self.lookups)
        used["filters"] = list(self.filters)
        used["sort.columns"] = list(self.sort.columns) if self.sort else []
        for where, names in used.items():
            unknown = [n for n in names if n not in self.columns]
            if unknown:
                raise ValueError(f"{where} names unmapped column(s) {unknown}; add them to columns")
        if self.get_by_key and not self.key:
            raise ValueError("get_by_key needs 'key', the column its placeholder takes")
        reserved = self.reserved_params()
        clashes = {p for ops in self.filters.values() for p in ops.values()} & reserved
        if clashes:
            raise ValueError(f"filter parameter(s) {sorted(clashes)} clash with paging or sorting")
        return self

    def reserved_params(self) -> set[str]:
        """Query parameters that paging and sorting set themselves."""
        p = self.pagination
        names = {getattr(p, a, None) for a in ("param", "size_param", "limit_param")}
        if self.sort:
            names.add(self.sort.param)
        return {n for n in names if n}

    def lookup_columns(self) -> frozenset[str]:
        found = set(self.lookups)
        if self.get_by_key and self.key:
            found.add(self.key)
        return frozenset(found)


class RESTOptions(ConnectorOptions):
    """A REST/JSON API reached over HTTP(S) with httpx; read with GET only."""

    model_config = _STRICT

    base_url: str
    timeout: float = Field(default=10.0, gt=0)
    max_concurrency: int = Field(default=4, ge=1, le=100)
    """Requests in flight to this source at once (politeness)."""
    retries: int = Field(default=2, ge=0, le=10)
    """Extra attempts of a GET that met a connection error or a 5xx."""
    retry_initial_wait: float = Field(default=0.1, ge=0)
    retry_max_wait: float = Field(default=2.0, ge=0)
    auth: AuthOptions | None = None
    headers: dict[str, str] = {}
    """Extra request headers (``Accept``, ``User-Agent``, API version headers, a key);
    each value is a secret unless the header is a plain one
    (:func:`~connectors.redaction.secret_header`)."""
    health_path: str = ""
    """Path (relative to ``base_url``) that ``health`` pings; ``""`` is ``base_url``."""
    resources: dict[str, ResourceOptions]
    _env_headers: frozenset[str] = PrivateAttr(default=frozenset())
    """Headers whose configured value came from the environment (``${NAME}``)."""
    _env_params: frozenset[tuple[str, str]] = PrivateAttr(default=frozenset())
    """(resource, query parameter) whose configured value came from the environment."""

    def secrets(self) -> list[str]:
        """``auth``'s secrets, the value of every header but the plain ones
        (:func:`~connectors.redaction.secret_header`: not ``Accept:
        application/json``, ``User-Agent`` or ``X-Api-Version: 2``, whose values are
        no secret and would hide every ``2`` of a message) and of each resource's
        query parameter that carries a credential (by its name, as
        :func:`~connectors.redaction.credential_param` counts URL parameters:
        ``api_key``, ``token``...), and every header or query parameter the config
        took from the environment."""
        return [
            *super().secrets(),
            *(v for k, v in self.headers.items() if secret_header(k) or k in self._env_headers),
            *(
                value
                for name, resource in self.resources.items()
                for param, value in resource.params.items()
                if credential_param(param) or (name, param) in self._env_params
            ),
        ]

    @model_validator(mode="after")
    def _secrets_from_environment(self, info: ValidationInfo) -> RESTOptions:
        # the config loader passes the options' key paths it interpolated
        interpolated = (info.context or {}).get("from_environment", ())
        self._env_headers = frozenset(
            path[1] for path in interpolated if len(path) == 2 and path[0] == "headers"
        )
        self._env_params = frozenset(
            (str(path[1]), str(path[3]))
            for path in interpolated
            if len(path) == 4 and path[0] == "resources" and path[2] == "params"
        )
        return self

    @field_validator("base_url")
    @classmethod
    def _plain_http_url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
            raise ValueError("base_url must be an http(s) URL such as https://api.example.com/v1")
        if "@" in rest.split("/", 1)[0]:
            raise ValueError("put credentials in 'auth', not in base_url")
        return value
