"""The compiled fast path answers exactly as the general executor does.

Every GraphQL query written in the e2e suite (mutations aside: they change
the registry) is sent to two gateways over the same sources, one with the
fast path and one without, and the response bodies must be the same bytes,
and the audit entries the same — as the demo key, as a masked role, and
with the support source dead. Operations the fast path cannot compile fall
back and must match trivially; the test also checks that the hot shapes
(customer 360, pages of customers, a timeline page) really were compiled.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse

from gateway.app import create_app
from gateway.settings import DEMO_CONFIG, LoadedSettings, load_settings
from resolvers.fastpath import FastPath
from resolvers.lifecycle import parts_of
from tests.e2e.conftest import serve_in_process
from tests.e2e.test_partial_results import DEAD, _three_system_email

E2E = Path(__file__).parent
SAME_ID = {"X-Request-ID": "fastpath-equivalence"}
"""Both gateways see the same request id (it is in the response and the audit entry)."""
HOT = """query($e: String) { customer(email: $e) { id name email phone country
  sourceRecords { ref } provenance { field ref } tickets { id subject status createdAt }
  orders { id orderNumber total createdAt } opportunities { id stage amount } } }"""
PAGE = """query($after: String) { customers(first: 20, after: $after) {
  pageInfo { endCursor hasNextPage } edges { cursor node { id name email
  sourceRecords { ref source table id label data }
  tickets { id status } orders { id total } } } } }"""
NODES = """query { customers(first: 20) { nodes { id name tickets { id status }
  orders { id total } openTickets sourceRecords { ref } }
  edges { node { id tickets { id } orders { id } } } } }"""
"""Each node's awaitable fields (nullable) are awaited in one gather for the whole
list; each edge's node is non-null, so the edges' are gathered edge by edge."""
TIMELINE = """query($e: String, $after: String) { customer(email: $e) { id
  timeline(first: 5, after: $after) { nodes { kind at title detail source ref }
  pageInfo { hasNextPage endCursor } } } }"""


SLOW = re.compile(r"filter|orderBy|segment|business|household|qualityReport|first: [1-9]\d\d")
"""Queries left out for time (seconds each on 1,500 customers): planner searches,
segments and groups — the root resolvers the fast path calls unchanged — and
pages of over 99 customers, whose nested fields the kept pages select too."""


@functools.cache
def corpus() -> tuple[str, ...]:
    """Query documents written as string literals in tests/e2e: no mutations
    (they change the registry), none of the SLOW ones."""
    found: dict[str, None] = {HOT: None, PAGE: None, NODES: None, TIMELINE: None}
    for path in sorted(E2E.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            try:
                document = parse(node.value)
            except GraphQLError:
                continue
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if SLOW.search(node.value):
                continue
            if operations and all(o.operation == OperationType.QUERY for o in operations):
                found[node.value] = None
    return tuple(found)


def _variables(query: str, pool: dict[str, Any]) -> dict[str, Any]:
    names = {
        v.variable.name.value
        for d in parse(query).definitions
        if isinstance(d, OperationDefinitionNode)
        for v in d.variable_definitions or ()
    }
    return {n: pool[n] for n in names if n in pool}


@asynccontextmanager
async def _apps(loaded: LoadedSettings, headers: dict[str, str]) -> AsyncIterator[Any]:
    """(general client, fast client, fast path) over one settings object."""
    async with AsyncExitStack() as stack:
        clients = []
        for fast in (False, True):
            app = create_app(loaded, fast_path=fast)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://custview", headers=headers
            )
            clients.append(await stack.enter_async_context(client))
        fast_path = next(
            e.__self__
            for e in parts_of(app.state.schema.extensions)
            if isinstance(getattr(e, "__self__", None), FastPath)
        )
        yield clients[0], clients[1], fast_path


def _audit(path: Path, seen: int) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()[seen:] if path.exists() else []
    return [{k: v for k, v in json.loads(line).items() if k != "at"} for line in lines]


async def _compare(
    loaded: LoadedSettings,
    headers: dict[str, str],
    pool: dict[str, Any],
    audit: Path,
    queries: Sequence[str],
) -> FastPath:
    async with _apps(loaded, headers) as (general, fast, fast_path):
        for query in queries:
            body = {"query": query, "variables": _variables(query, pool)}
            seen = len(_audit(audit, 0))
            expected = await general.post("/graphql", json=body)
            answer = await fast.post("/graphql", json=body)
            assert answer.status_code == expected.status_code, query
            assert answer.content == expected.content, query
            entries = _audit(audit, seen)
            assert entries[len(entries) // 2 :] == entries[: len(entries) // 2], query
    return fast_path


async def _pool(loaded: LoadedSettings, demo_dir: Path) -> dict[str, Any]:
    """Values for the corpus's variables: a customer of all three systems, found on
    the general path."""
    email = _three_system_email(demo_dir)
    query = "query($e: String) { customer(email: $e) { id sourceRecords { ref } } }"
    async for client in serve_in_process(loaded, fast_path=False):
        found = await client.post("/graphql", json={"query": query, "variables": {"e": email}})
    customer = found.json()["data"]["customer"]
    return {
        "e": email, "email": email, "v": email, "phone": "+1 415 555 0100",
        "id": customer["id"], "ref": customer["sourceRecords"][0]["ref"], "first": 5,
        "after": None, "min": 0.5, "sample": 3, "kinds": ["ticket"],
        "f": {"country": {"in": ["DE", "GB"]}}, "filter": {"country": {"in": ["DE"]}},
        "o": [{"field": "name", "direction": "ASC"}],
        "order": [{"field": "name", "direction": "DESC"}],
    }  # fmt: skip


def _compiled_share(fast_path: FastPath, expected: Sequence[str]) -> None:
    for query in expected:
        assert fast_path.plans.get((query, None)), f"not compiled: {query}"


async def test_fast_and_general_paths_give_the_same_bytes(
    demo_dir: Path, demo_env: None, tmp_path: Path
) -> None:
    import os

    audit = Path(os.environ["CUSTVIEW_AUDIT_LOG"])
    loaded = load_settings(DEMO_CONFIG)
    pool = await _pool(loaded, demo_dir)
    assert len(corpus()) > 40

    fast_path = await _compare(loaded, {"X-API-Key": "demo-key", **SAME_ID}, pool, audit, corpus())
    _compiled_share(fast_path, [HOT, PAGE, NODES, TIMELINE])
    assert fast_path.compiled >= 20 and fast_path.fallbacks > 0

    masked = await _compare(loaded, {"X-API-Key": "support-key", **SAME_ID}, pool, audit, corpus())
    _compiled_share(masked, [HOT, PAGE, NODES, TIMELINE])

    dead = tmp_path / "dead.yaml"
    dead.write_text(
        DEMO_CONFIG.read_text().replace(
            '"sqlite+aiosqlite:///${CUSTVIEW_DEMO_DIR:-demo-data}/support.db"', f'"{DEAD}"'
        )
    )
    # a dead source costs retries: the queries that read it (tickets) are enough
    reading = [q for q in corpus() if "tickets" in q or q == TIMELINE]
    stopped = await _compare(
        load_settings(dead), {"X-API-Key": "demo-key", **SAME_ID}, pool, audit, reading
    )
    _compiled_share(stopped, [HOT, PAGE, NODES, TIMELINE])


def test_an_extension_wrapping_field_resolution_keeps_the_fast_path_off() -> None:
    """The fast path resolves fields without graphql-core, so it would skip a
    ``resolve`` hook: the gateway does not install it next to one."""
    from strawberry.extensions import SchemaExtension

    from resolvers.fastpath import hooks_fields

    class Wrapping(SchemaExtension):
        def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
            return _next(root, info, *args, **kwargs)

    assert hooks_fields([SchemaExtension, Wrapping])
    assert hooks_fields([lambda: Wrapping()])
    assert not hooks_fields([SchemaExtension, lambda: SchemaExtension()])


PLANNED = (
    # the listed metrics loaded beside the filter check, read back without a loader
    """query($f: CustomerFilter) { customers(first: 5, filter: $f) {
      nodes { id name lifetimeValue openTickets orderCount } } }""",
    # sorted by a metric the sort loaded; aliases on the metric fields
    """query($f: CustomerFilter, $o: [CustomerOrder!]) {
      customers(first: 5, filter: $f, orderBy: $o) {
        pageInfo { hasNextPage endCursor }
        nodes { id ltv: lifetimeValue lifetimeValue open: openTickets } } }""",
)


async def test_planned_pages_give_the_same_bytes_on_both_paths(
    demo_dir: Path, demo_env: None
) -> None:
    """The planner's pages whose metric fields the filter, the sort or the preload
    already worked out (answered without their loaders on the fast path), as two
    roles (the support role may not read lifetimeValue)."""
    import os

    audit = Path(os.environ["CUSTVIEW_AUDIT_LOG"])
    loaded = load_settings(DEMO_CONFIG)
    pool = {
        **await _pool(loaded, demo_dir),
        "f": {"tickets": {"status": {"eq": "open"}}, "lifetimeValue": {"ge": 100}},
        "o": [{"field": "lifetimeValue", "direction": "DESC"}],
    }
    for key in ("demo-key", "support-key"):
        fast_path = await _compare(loaded, {"X-API-Key": key, **SAME_ID}, pool, audit, PLANNED)
        _compiled_share(fast_path, PLANNED)
    # a sample both ways: customers found, their metrics read
    async for client in serve_in_process(loaded, fast_path=False):
        body = {"query": PLANNED[0], "variables": {"f": pool["f"]}}
        answer = await client.post("/graphql", json=body)
    nodes = answer.json()["data"]["customers"]["nodes"]
    assert nodes and all(float(n["lifetimeValue"]) >= 100 for n in nodes), nodes


LOOKUPS = (
    'query { customer(email: "no-such-person@example.org") { id name } }',
    'query { customer(email: "not an address") { id name } }',
    'query { customer(phone: "nope") { id } }',
    'query { customer(ref: "crm/nowhere/1") { id } }',
    'query { customer(ref: "crm") { id } }',
    'query { customer(id: "cus_bm90LWEtY3VzdG9tZXI") { id } }',
    "query { customer { id } }",
    'query($e: String) { customer(email: $e, phone: "+1 415 555 0100") { id } }',
    "query($e: String) { customer(email: $e) { id name email } }",
    "query($e: String, $ref: String) { a: customer(email: $e) { id } b: customer(ref: $ref) "
    "{ id name } }",
    "query($phone: String) { customer(phone: $phone) { id email } }",
    "query($id: ID) { customer(id: $id) { id sourceRecords { ref } } }",
)
"""``customer(...)`` with each argument, none, two, and values that name nobody or
do not parse: the fast path resolves the root field without strawberry's wrapper."""


async def test_customer_lookups_and_their_errors_give_the_same_bytes_on_both_paths(
    demo_dir: Path, demo_env: None
) -> None:
    import os

    audit = Path(os.environ["CUSTVIEW_AUDIT_LOG"])
    loaded = load_settings(DEMO_CONFIG)
    pool = await _pool(loaded, demo_dir)
    for key in ("demo-key", "support-key"):
        fast_path = await _compare(loaded, {"X-API-Key": key, **SAME_ID}, pool, audit, LOOKUPS)
        _compiled_share(fast_path, LOOKUPS)


async def test_fields_answered_at_once_take_no_task_of_their_own(
    demo_dir: Path, demo_env: None
) -> None:
    """A customer 360's relations are read inline (SQLite on the loop's thread), so
    its three relation fields answer without waiting: they are completed in the
    request's task, not a task each (as graphql-core's gather would start them).
    A busy machine may send one read to its connection's thread: then the fields
    after it get tasks, so of a few requests one without any is enough."""
    body = {"query": HOT, "variables": {"e": _three_system_email(demo_dir)}}

    def answered(found: dict[str, Any]) -> None:
        assert "errors" not in found and found["data"]["customer"]["id"], found

    fields = await _field_tasks(body, answered)
    assert min(fields) == 0, fields


async def _field_tasks(body: dict[str, Any], check: Callable[[dict[str, Any]], None]) -> list[int]:
    """Tasks of the fast path's fields (``_Run.`` coroutines) in each of five
    requests of ``body`` after a first one (compiled, connections opened), each
    answer held to ``check``."""
    import asyncio

    loaded = load_settings(DEMO_CONFIG)
    fields: list[int] = []
    loop = asyncio.get_running_loop()
    before = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        if "_Run." in getattr(coro, "__qualname__", ""):
            fields[-1] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    async for client in serve_in_process(loaded):
        await client.post("/graphql", json=body)
        loop.set_task_factory(counting)
        try:
            for _ in range(5):
                fields.append(0)
                check((await client.post("/graphql", json=body)).json())
        finally:
            loop.set_task_factory(before)
    return fields


LISTED = """query { customers(first: 20) { nodes { id name tickets { id status }
  orders { id total } } } }"""


async def test_a_page_reads_its_customers_relations_before_their_fields_start(
    demo_dir: Path, demo_env: None
) -> None:
    """A page's relations are read for all its customers at once (the statement each
    relation's batch would be) before the customers' fields start, so no customer's
    relation field waits for a batch in a task of its own (a page of 20 with two
    relations: 39 tasks before). As above, one request of a few without any task
    is enough (a busy machine may send a read to its connection's thread)."""

    def answered(found: dict[str, Any]) -> None:
        assert "errors" not in found, found
        nodes = found["data"]["customers"]["nodes"]
        assert len(nodes) == 20 and any(n["tickets"] for n in nodes), nodes

    fields = await _field_tasks({"query": LISTED}, answered)
    assert min(fields) == 0, fields


async def test_a_page_reads_its_relations_first_only_when_nothing_else_reads_a_source(
    demo_dir: Path, demo_env: None
) -> None:
    """A metric (``openTickets``) read beside the relations would wait for them if
    they were read first: then the page's fields start at once, as before, and
    every source is read at the same time."""
    loaded = load_settings(DEMO_CONFIG)
    with_metric = LISTED.replace("orders { id total }", "orders { id total } openTickets")
    async with _apps(loaded, {"X-API-Key": "demo-key"}) as (_, fast, fast_path):
        for query in (LISTED, with_metric):
            answer = await fast.post("/graphql", json={"query": query})
            assert "errors" not in answer.json(), answer.json()

    def prefetched(query: str) -> tuple[str, ...]:
        (customers,) = fast_path.plans.get((query, None)).fields
        (nodes,) = customers.children
        return nodes.prefetch

    assert prefetched(LISTED) == ("tickets", "orders")
    assert prefetched(with_metric) == ()


ARGUMENTS = """query($e: String, $n: Int) { customer(email: $e) { id
  tickets(first: 2) { id status } orders(first: $n) { id total } opportunities { id } } }"""


async def test_literal_arguments_are_coerced_once_and_variables_every_request(
    demo_dir: Path, demo_env: None, monkeypatch: Any
) -> None:
    """A field whose arguments read no variable has the same arguments every request:
    the fast path coerces them once with the plan; the ones that read variables
    (``customer(email: $e)``, ``orders(first: $n)``) every request, and a changed
    variable changes the answer as on the general path."""
    from resolvers import fastpath

    loaded = load_settings(DEMO_CONFIG)
    email = _busy_email(demo_dir)
    coerced: list[str] = []
    real = fastpath.get_argument_values

    def counted(field: Any, node: Any, *args: Any, **kwargs: Any) -> Any:
        coerced.append(node.name.value)
        return real(field, node, *args, **kwargs)

    monkeypatch.setattr(fastpath, "get_argument_values", counted)
    async with _apps(loaded, {"X-API-Key": "demo-key", **SAME_ID}) as (general, fast, fast_path):
        answers = []
        for n in (1, 3, None):
            body = {"query": ARGUMENTS, "variables": {"e": email, "n": n}}
            expected = await general.post("/graphql", json=body)
            coerced.clear()
            answer = await fast.post("/graphql", json=body)
            assert answer.content == expected.content
            answers.append(answer.json()["data"]["customer"])
            if n != 1:  # compiled on the first request: its literal arguments then
                assert sorted(coerced) == ["customer", "orders"], coerced
        _compiled_share(fast_path, [ARGUMENTS])
    assert [len(a["tickets"]) for a in answers] == [2, 2, 2]
    assert [len(a["orders"]) for a in answers][:2] == [1, 3]
    assert len(answers[2]["orders"]) >= 3


def _busy_email(demo_dir: Path) -> str:
    """The email (as sales stores it) of someone with 3 or more tickets and orders."""
    import sqlite3

    con = sqlite3.connect(demo_dir / "support.db")
    busy = {
        str(r[0])
        for r in con.execute(
            "SELECT lower(trim(u.email)) FROM users u JOIN tickets t ON t.requester_id = u.id "
            "WHERE u.email IS NOT NULL GROUP BY u.id HAVING count(*) >= 3"
        )
    }
    con.close()
    con = sqlite3.connect(demo_dir / "sales.db")
    rows = con.execute(
        "SELECT c.email FROM customers c JOIN orders o ON o.customer_id = c.id "
        "WHERE c.email IS NOT NULL GROUP BY c.id HAVING count(*) >= 3 ORDER BY c.id"
    ).fetchall()
    con.close()
    return next(str(r[0]) for r in rows if str(r[0]).strip().lower() in busy)


TEXT_VARIABLES = """query($e: String, $id: ID!) { a: customer(email: $e) { id name }
  b: customer(id: $id) { id } }"""


async def test_text_variables_are_bound_without_graphql_cores_coercion(
    demo_dir: Path, demo_env: None, monkeypatch: Any
) -> None:
    """A plan whose variables are all String or ID binds text values to its fields'
    arguments itself; any other value (a number, null or nothing for a non-null
    one) is coerced by graphql-core, with the general path's answer and errors."""
    from resolvers import fastpath

    loaded = load_settings(DEMO_CONFIG)
    pool = await _pool(loaded, demo_dir)
    asked: list[str] = []
    for name in ("get_variable_values", "get_argument_values"):
        real = getattr(fastpath, name)

        def counted(*args: Any, real: Any = real, name: str = name, **kwargs: Any) -> Any:
            asked.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(fastpath, name, counted)
    cases: list[tuple[dict[str, Any], bool]] = [
        ({"e": pool["e"], "id": pool["id"]}, True),
        ({"e": None, "id": pool["id"]}, True),
        ({"id": pool["id"]}, True),
        ({"e": pool["e"], "id": "cus_bm90LWEtY3VzdG9tZXI", "unused": 1}, True),
        ({"e": 5, "id": pool["id"]}, False),
        ({"e": pool["e"], "id": 7}, False),
        ({"e": pool["e"], "id": None}, False),
        ({"e": pool["e"]}, False),
    ]
    async with _apps(loaded, {"X-API-Key": "demo-key", **SAME_ID}) as (general, fast, fast_path):
        await fast.post("/graphql", json={"query": TEXT_VARIABLES, "variables": cases[0][0]})
        for variables, bound in cases:
            body = {"query": TEXT_VARIABLES, "variables": variables}
            expected = await general.post("/graphql", json=body)
            asked.clear()
            answer = await fast.post("/graphql", json=body)
            assert answer.content == expected.content, variables
            assert (asked == []) is bound, (variables, asked)
        _compiled_share(fast_path, [TEXT_VARIABLES])


PAGED = """query($e: String, $n: Int) { customer(email: $e) { id name
  tickets(first: $n) { id } } }"""


async def test_a_full_grant_notes_a_customers_fields_without_the_policy_wrapper(
    demo_dir: Path, demo_env: None, monkeypatch: Any
) -> None:
    """Under a full grant (the demo key) the fast path notes each governed Customer
    field's read in the trail itself: the customer's id is read once for the trail,
    not once per field by the policy wrapper (a masked role keeps the wrapper), and
    both paths audit the same reads (the byte tests above compare the audit lines)
    and refuse the same page sizes."""
    from resolvers.view import CustomerView

    reads = {"id": 0}
    real = CustomerView.id

    def counted(customer: CustomerView) -> str:
        reads["id"] += 1
        return real.fget(customer)  # type: ignore[no-any-return, attr-defined]

    monkeypatch.setattr(CustomerView, "id", property(counted))
    loaded = load_settings(DEMO_CONFIG)
    body = {"query": HOT, "variables": {"e": _three_system_email(demo_dir)}}
    seen = {}
    for key in ("demo-key", "support-key"):
        async with _apps(loaded, {"X-API-Key": key, **SAME_ID}) as (general, fast, _):
            expected = await general.post("/graphql", json=body)
            await fast.post("/graphql", json=body)
            reads["id"] = 0
            answer = await fast.post("/graphql", json=body)
            assert answer.content == expected.content
            seen[key] = reads["id"]
            for n in (2, 10**6):  # a page size over the limit fails the field on both paths
                paged = {"query": PAGED, "variables": {**body["variables"], "n": n}}
                expected = await general.post("/graphql", json=paged)
                answer = await fast.post("/graphql", json=paged)
                assert answer.content == expected.content
                assert ("errors" in answer.json()) is (n > 2), answer.json()
    assert seen["demo-key"] == 2, seen  # the trail's note and the ``id`` field
    assert seen["support-key"] > 5, seen  # each governed field's wrapper
