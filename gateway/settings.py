"""Loading the settings file: YAML, ``${ENV}`` interpolation, strict validation.

Every error names the file, the line, the key path and what to do. Values
interpolated from the environment never appear in an error message.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from purgatory import AsyncCircuitBreakerFactory
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors import ConfigError, Connector, ConnectorOptions, PluginError, load
from connectors.cache import CacheOptions, CachingConnector
from connectors.cache_store import create_cache
from connectors.ledger import Ledger
from connectors.observe import ObservedConnector
from connectors.redaction import credential_param, secret_header, secret_values
from connectors.resilience import ResilienceOptions, ResilientConnector
from gateway.audit import AuditSettings
from gateway.auth import AuthSettings
from gateway.hardening import Limits, LimitSettings, Profile
from gateway.logs import LoggingSettings
from gateway.persisted import PersistedQueries
from gateway.sql_settings import SqlSettings, TlsFileError, tls_context
from gateway.tracing import TracingSettings, otel_missing
from gateway.unexpected import hide, hide_in
from resolvers.model import UnifiedModel
from resolvers.policy import Policy, PolicySpec, check_policy
from resolvers.registry import IdentityRegistry
from resolvers.view import Federation

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "config" / "demo.yaml"
ENV_VAR = "CUSTVIEW_CONFIG"
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSettings(_Strict):
    connector: str
    description: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    resilience: ResilienceOptions = ResilienceOptions()
    cache: CacheOptions = CacheOptions()


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    request_deadline: float | None = Field(default=60.0, gt=0)
    """Seconds every source call of one GraphQL request (retries included) may
    run, counted from the request's arrival; ``None`` sets no deadline."""
    shutdown_timeout: float = Field(default=20.0, ge=0)
    """Seconds a SIGTERM waits for requests in flight before cancelling them."""


class PluginSettings(_Strict):
    allow: list[str] | None = None
    """Connector kinds sources may use; ``None`` allows every installed one."""


class CacheSettings(_Strict):
    """Where cached source answers live; each source turns caching on with ``cache.ttl``."""

    backend: Literal["memory", "redis"] = "memory"
    url: str = "redis://127.0.0.1:6379/0"
    namespace: str = Field(default="custview", min_length=1)


class RegistrySettings(_Strict):
    """custview's own identity registry (identifiers and decisions only)."""

    url: str | None = None
    """SQLAlchemy URL; default: SQLite ``custview-registry.db`` next to the config file.
    Replicas share one PostgreSQL database."""
    refresh_seconds: float = Field(default=1.0, ge=0)
    """How stale another replica's decisions may be here."""


class ExportSettings(_Strict):
    """How whole exports run."""

    workers: int = Field(default=0, ge=0, le=64)
    """Worker processes that build an export of every customer's chunks (pass 2)
    beside the exporting process; ``0`` (the default: on a machine whose cores are
    busy, workers cost CPU and gain no time) builds them in process."""


class Settings(_Strict):
    version: Literal[1] = 1
    profile: Profile = "production"
    """Defaults of the API limits: ``production`` (strict) or ``demo`` (explorable)."""
    limits: LimitSettings = LimitSettings()
    """Overrides of the profile's limits."""
    server: ServerSettings = ServerSettings()
    logging: LoggingSettings = LoggingSettings()
    """What ``custview serve`` logs and how: ``text`` or ``json`` lines."""
    tracing: TracingSettings = TracingSettings()
    """OpenTelemetry spans per request and per source call (the ``otel`` extra)."""
    plugins: PluginSettings = PluginSettings()
    cache: CacheSettings = CacheSettings()
    registry: RegistrySettings = RegistrySettings()
    auth: AuthSettings = Field(default_factory=lambda: AuthSettings(mode="disabled"))
    """Absent: no authentication (trusted local use); see docs/configuration.md."""
    audit: AuditSettings = AuditSettings()
    """Where every read of customer data is recorded."""
    sql: SqlSettings = SqlSettings()
    """The PostgreSQL wire-protocol endpoint for BI tools (off by default)."""
    exports: ExportSettings = ExportSettings()
    """Whole exports: how many worker processes build them."""
    policy: PolicySpec | None = None
    """Who sees which fields and customers; absent: every caller sees everything."""
    sources: dict[str, SourceSettings] = Field(min_length=1)
    model: UnifiedModel


class LoadedSettings:
    """Validated settings plus each source's connector class and options."""

    def __init__(
        self,
        path: Path,
        settings: Settings,
        connectors: dict[str, tuple[type[Connector], ConnectorOptions]],
    ) -> None:
        self.path = path
        self.settings = settings
        self.connectors = connectors
        self.policy = Policy(settings.policy, settings.model)
        self.limits = Limits(settings.profile, settings.limits)
        self.persisted: PersistedQueries | None = None
        """The allow-list of documents, when ``limits.persisted_queries`` names one."""

    def secrets(self) -> list[str]:
        """What no error text or log line may show: every source's secrets (its URL
        and password, tokens, secret headers) and any other secret setting (a
        secret string or bytes, a URL-valued setting's password: ``registry.url``,
        ``audit.url``, ``cache.url``)."""
        found = secret_values(self.settings)
        for _, options in self.connectors.values():
            found += options.secrets()
        return sorted(set(found))

    def registry_url(self) -> str:
        url = self.settings.registry.url
        if url:
            return url
        return f"sqlite+aiosqlite:///{self.path.resolve().parent / 'custview-registry.db'}"

    def create_registry(self) -> IdentityRegistry:
        """The identity registry (not opened yet)."""
        return IdentityRegistry(
            Ledger(self.registry_url()), refresh_seconds=self.settings.registry.refresh_seconds
        )

    def create_federation(self) -> Federation:
        """Connectors and registry for one app or command; ``await .open()`` it."""
        return Federation(
            self.settings.model, self.create_connectors(), registry=self.create_registry()
        )

    def create_connectors(self) -> dict[str, Connector]:
        """Fresh connectors, each behind its source's resilience policy; the circuit
        breakers are shared by the connectors of one call (one app).

        A source with a cache TTL is wrapped once more, outside: a cache hit never
        touches the breaker, and serve-stale-on-error sees the breaker's answer.
        The cached sources of one call share one aiocache instance.
        """
        breakers = AsyncCircuitBreakerFactory()
        sources = self.settings.sources
        cache: Any = None
        if any(sources[name].cache.enabled for name in self.connectors):
            chosen = self.settings.cache
            cache = create_cache(chosen.backend, chosen.url, chosen.namespace)
        created: dict[str, Connector] = {}
        for name, (cls, opts) in self.connectors.items():
            # innermost: explain plans see the calls that reach the source (retries too)
            connector: Connector = ResilientConnector(
                ObservedConnector(cls(name, opts)), sources[name].resilience, breakers
            )
            if sources[name].cache.enabled:
                connector = CachingConnector(connector, sources[name].cache, cache)
            created[name] = connector
        return created


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--config``, else ``$CUSTVIEW_CONFIG``, else the embedded demo config."""
    chosen = explicit or os.environ.get(ENV_VAR)
    return Path(chosen) if chosen else DEMO_CONFIG


def _lines(
    node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]
) -> None:
    out.setdefault(path, node.start_mark.line + 1)  # a key's own line wins over its value's
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value
            out[(*path, name)] = key.start_mark.line + 1
            _lines(value, (*path, name), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)


def _dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _interpolate(
    value: Any,
    path: tuple[str | int, ...],
    file: str,
    lines: dict[tuple[str | int, ...], int] | None = None,
    from_env: set[tuple[str | int, ...]] | None = None,
    taken: list[str] | None = None,
) -> Any:
    """``value`` with each ``${NAME}`` taken from the environment; the key path of
    every string that took one is added to ``from_env``, each value taken to ``taken``."""
    if isinstance(value, dict):
        return {
            k: _interpolate(v, (*path, k), file, lines, from_env, taken) for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate(v, (*path, i), file, lines, from_env, taken) for i, v in enumerate(value)
        ]
    if not isinstance(value, str):
        return value
    if from_env is not None and _INTERPOLATION.search(value):
        from_env.add(path)

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found is not None:
            if taken is not None:
                taken.append(found)
            return found
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name} is not set; export it or write ${{{name}:-default}}",
            file=file,
            path=_dotted(path),
            line=(lines or {}).get(path),
        )

    return _INTERPOLATION.sub(replace, value)


def _read(path: Path) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found; pass --config FILE or set {ENV_VAR}", file=file
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", file=file) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        problem = exc.problem or "invalid YAML"
        raise ConfigError(
            f"YAML syntax error: {problem}", file=file, line=mark.line + 1 if mark else None
        ) from None
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _lines(node, (), lines)
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping with 'sources' and 'model'", file=file)
    return data, lines


def _raise_validation(
    exc: ValidationError,
    file: str,
    lines: dict[tuple[str | int, ...], int],
    prefix: tuple[str | int, ...] = (),
) -> None:
    error = exc.errors(include_input=False, include_url=False)[0]
    loc = (*prefix, *(p for p in error["loc"] if isinstance(p, str | int)))
    message = error["msg"].removeprefix("Value error, ")
    cause: Any = error.get("ctx", {}).get("error")
    inner = getattr(cause, "path", None)
    if isinstance(inner, tuple):
        # a validator that knows where inside its section the problem is (segments)
        loc, message = (*loc, *inner), str(getattr(cause, "reason", message))
    if error["type"] == "extra_forbidden":
        message = f"unknown key '{loc[-1]}' (check the spelling; see the config reference)"
    elif error["type"] == "missing":
        message = f"required key '{loc[-1]}' is missing"
    line = None
    for i in range(len(loc), -1, -1):
        if loc[:i] in lines:
            line = lines[loc[:i]]
            break
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    raise ConfigError(message, file=file, path=_dotted(loc), line=line) from None


def _maybe_secret(data: Any, from_env: set[tuple[str | int, ...]], taken: list[str]) -> list[str]:
    """Every value of a settings file that may be a secret, before any model said
    which are: each value taken from the environment and each string holding one,
    every URL's or connection string's password, each value of a key named like a
    credential (``token``, ``password``, ``api_key``...) and of every header under
    a ``headers`` mapping but the plain ones (:func:`secret_header`)."""
    found = [*taken, *secret_values(data)]

    def walk(value: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(value, dict):
            headers = path[-1:] == ("headers",)
            for key, item in value.items():
                named = secret_header(str(key)) if headers else credential_param(str(key))
                if isinstance(item, str) and named:
                    found.append(item)
                walk(item, (*path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, (*path, i))
        elif isinstance(value, str) and path in from_env:
            found.append(value)

    walk(data, ())
    return found


def load_settings(explicit: str | os.PathLike[str] | None = None) -> LoadedSettings:
    """Read, interpolate and validate a settings file; raise :class:`ConfigError`.

    An error other than a :class:`ConfigError` (a connector plugin's options model
    failing, a bug) may quote the values it was validating: before it leaves,
    every value that may be a secret is hidden wherever that error is shown
    (:func:`gateway.unexpected.hide_in`: its report, traceback and log lines).
    Only there: a value merely taken from the environment (a folder, a port)
    stays readable in every other line, and the process-wide hiding
    (:func:`gateway.unexpected.hide`) holds the secrets of settings that loaded."""
    path = config_path(explicit)
    file = str(path)
    raw, lines = _read(path)
    from_env: set[tuple[str | int, ...]] = set()
    taken: list[str] = []
    data = _interpolate(raw, (), file, lines, from_env, taken)
    try:
        return _validate(path, data, lines, from_env)
    except ConfigError:
        raise
    except Exception as exc:
        hide_in(exc, _maybe_secret(data, from_env, taken))
        raise


def _validate(
    path: Path,
    data: Any,
    lines: dict[tuple[str | int, ...], int],
    from_env: set[tuple[str | int, ...]],
) -> LoadedSettings:
    file = str(path)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        _raise_validation(exc, file, lines)
        raise
    missing = otel_missing() if settings.tracing.enabled else None
    if missing:
        at = ("tracing", "enabled")
        raise ConfigError(missing, file=file, path=_dotted(at), line=lines.get(at))
    for name in sorted(settings.model.sources() - set(settings.sources)):
        raise ConfigError(
            f"the model refers to source '{name}', which is not declared under 'sources' "
            f"(declared: {', '.join(sorted(settings.sources))})",
            file=file,
            path="model",
            line=lines.get(("model",)),
        )
    for where, message in check_policy(settings.policy, settings.model) if settings.policy else ():
        key: tuple[str | int, ...] = ("policy", *where)
        line = next((lines[key[:i]] for i in range(len(key), 0, -1) if key[:i] in lines), None)
        raise ConfigError(message, file=file, path=_dotted(key), line=line)
    connectors: dict[str, tuple[type[Connector], ConnectorOptions]] = {}
    for name, source in settings.sources.items():
        where = ("sources", name)
        allowed = settings.plugins.allow
        try:
            cls = load(source.connector, allowed=allowed)
        except PluginError as exc:
            message = exc.message
            if allowed is not None and source.connector not in allowed:
                message = (
                    f"connector '{source.connector}' is not in the allow-list plugins.allow "
                    f"({', '.join(allowed) or 'empty'}); add it there to use it"
                )
            raise ConfigError(
                message,
                file=file,
                path=_dotted((*where, "connector")),
                line=lines.get((*where, "connector")),
            ) from None
        # which option values came from the environment: an options model may count
        # them as secrets (the REST connector's headers)
        prefix = (*where, "options")
        interpolated = frozenset(p[len(prefix) :] for p in from_env if p[: len(prefix)] == prefix)
        try:
            options = cls.options_model.model_validate(
                source.options, context={"from_environment": interpolated}
            )
        except ValidationError as exc:
            _raise_validation(exc, file, lines, (*where, "options"))
            raise
        connectors[name] = (cls, options)
    sql = settings.sql.relative_to(path.resolve().parent)
    try:
        tls_context(sql)
    except TlsFileError as exc:
        at = ("sql", exc.key)
        raise ConfigError(str(exc), file=file, path=_dotted(at), line=lines.get(at)) from None
    settings = settings.model_copy(update={"sql": sql})
    loaded = LoadedSettings(path, settings, connectors)
    hide(loaded.secrets())
    listed = settings.limits.persisted_queries
    if listed is not None:
        try:
            loaded.persisted = PersistedQueries.load(path.resolve().parent / listed)
        except ValueError as exc:
            at = ("limits", "persisted_queries")
            raise ConfigError(str(exc), file=file, path=_dotted(at), line=lines.get(at)) from None
    return loaded
