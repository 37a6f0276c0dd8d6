"""The SQL endpoint's settings (``sql:``) and its TLS context.

Apart from :mod:`gateway.sql` so that reading the settings does not load the
endpoint (its SQL parser, sqlglot, ~15 MB, and the GraphQL side it answers
through): ``custview export`` reads the settings too.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SqlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    """Serve the PostgreSQL wire protocol (``custview serve`` and ``custview demo``)."""
    host: str = "127.0.0.1"
    port: int = Field(default=5433, ge=0, le=65535)
    """Its own port (5433, so a local PostgreSQL on 5432 keeps its port)."""
    tls_cert: str | None = None
    """PEM certificate chain; with ``tls_key``, clients that ask for TLS get it."""
    tls_key: str | None = None
    """PEM private key of ``tls_cert`` (unencrypted)."""
    require_tls: bool = False
    """Refuse clients that do not ask for TLS (``sslmode=disable``)."""

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both, or neither")
        if self.require_tls and self.tls_cert is None:
            raise ValueError("require_tls needs tls_cert and tls_key")
        return self

    def relative_to(self, directory: Path) -> SqlSettings:
        """These settings with the certificate paths resolved against ``directory``."""
        if self.tls_cert is None or self.tls_key is None:
            return self
        return self.model_copy(
            update={
                "tls_cert": str(directory / Path(self.tls_cert).expanduser()),
                "tls_key": str(directory / Path(self.tls_key).expanduser()),
            }
        )


class TlsFileError(ValueError):
    """A certificate or key that cannot be used; ``key`` is the setting to fix."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def tls_context(settings: SqlSettings) -> ssl.SSLContext | None:
    """The server side of TLS for the endpoint, or ``None`` without a certificate.

    Raises :class:`TlsFileError` naming the file and what is wrong with it (never
    its content).
    """
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    for key, path in (("tls_cert", settings.tls_cert), ("tls_key", settings.tls_key)):
        if not Path(path).is_file():
            raise TlsFileError(key, f"no such file {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise TlsFileError(
            "tls_cert",
            f"cannot load the certificate {settings.tls_cert} with the key {settings.tls_key} "
            f"({reason}); both must be PEM, the key unencrypted and matching the certificate",
        ) from None
    return context
