"""Persisted queries: an allow-list of the GraphQL documents a deployment runs.

The list is a JSON file (``limits.persisted_queries``): either an array of
documents, or an object mapping each document's SHA-256 (hex) to the
document. A client may send the hash alone, in Apollo's form
(``"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "..."}}``),
and the server runs the stored document. With ``limits.persisted_only`` (on
by default in the production profile) any other document is refused with
``PERSISTED_QUERY_NOT_ALLOWED``: an attacker holding a stolen key can only
run the operations the deployment's own clients use. The document found is
then parsed, validated and limited like any other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strawberry.extensions import SchemaExtension
    from strawberry.types import ExecutionContext


def digest(document: str) -> str:
    """The SHA-256 (hex) of a document's exact text, as clients compute it."""
    return hashlib.sha256(document.encode()).hexdigest()


class PersistedQueries:
    """The allow-list: document hash -> document."""

    def __init__(self, documents: Mapping[str, str]) -> None:
        self.documents = dict(documents)

    @classmethod
    def load(cls, path: Path) -> PersistedQueries:
        """Reads the file; raises ``ValueError`` saying what is wrong with it."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read {path} ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise ValueError(f"{path} is not JSON ({exc})") from None
        if isinstance(data, list) and all(isinstance(d, str) for d in data):
            return cls({digest(d): d for d in data})
        if not isinstance(data, dict) or not all(isinstance(d, str) for d in data.values()):
            raise ValueError(
                f"{path} must hold a list of documents or an object of sha256 -> document"
            )
        for key, document in data.items():
            if key.lower() != digest(document):
                raise ValueError(f"{path}: key '{key[:16]}...' is not the sha256 of its document")
        return cls({k.lower(): d for k, d in data.items()})

    def extension(self, required: bool) -> Callable[[], SchemaExtension]:
        """A schema extension that runs stored documents and, when ``required``,
        refuses every other one."""
        # the app's imports, not every command's that reads the settings
        from graphql import GraphQLError

        from resolvers.hot import HotExtension

        documents = self.documents

        class PersistedQueryExtension(HotExtension):
            def ask(self, context: ExecutionContext) -> None:
                asked = (context.operation_extensions or {}).get("persistedQuery")
                if isinstance(asked, dict):
                    context.query = _stored(documents, asked, context.query)
                elif required and (not context.query or digest(context.query) not in documents):
                    raise GraphQLError(
                        "this server runs only allow-listed operations; send a persisted "
                        "query (extensions.persistedQuery.sha256Hash) your deployment lists",
                        extensions={"code": "PERSISTED_QUERY_NOT_ALLOWED"},
                    )

        return PersistedQueryExtension


def _stored(documents: Mapping[str, str], asked: Mapping[str, Any], query: str | None) -> str:
    from graphql import GraphQLError

    wanted = str(asked.get("sha256Hash", "")).lower()
    found = documents.get(wanted)
    if found is None:
        raise GraphQLError(
            "PersistedQueryNotFound: no allow-listed operation has this sha256Hash",
            extensions={"code": "PERSISTED_QUERY_NOT_FOUND"},
        )
    if query and digest(query) != wanted:
        raise GraphQLError(
            "the query does not match its sha256Hash", extensions={"code": "BAD_REQUEST"}
        )
    return found
