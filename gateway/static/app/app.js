// custview's Customer 360 page: a plain GraphQL client of /graphql.
// It learns the schema by introspection and builds its queries from it, so
// fields the server adds later (household, segments, ...) render without a
// change here. Every value is written with textContent, never as HTML.
"use strict";

(() => {
  const ENDPOINT = "graphql";
  const KNOWN = new Set([
    "id", "provenance", "sourceRecords", "matchExplanation", "possibleDuplicates",
    "timeline", "quality", "business", "household",
  ]);
  const GROUPS = { business: "Business account", household: "Household" };
  const MEMBER_FIELDS = ["id", "name", "email", "city"];
  const PAGE = 10;
  const RESULTS = 20;
  const MAX_DEPTH = 4;

  const state = {
    schema: null, // {types: Map(name -> type), query: type}
    customerId: null,
    timelineAfter: null,
    searchAfter: null,
    searchText: "",
    skipped: new Set(), // Customer fields that nulled the customer for these credentials
  };

  // ---- small DOM helpers ----------------------------------------------------
  const $ = (id) => document.getElementById(id);
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "hidden") node.hidden = true;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  let uid = 0;
  const nextId = (prefix) => `${prefix}-${++uid}`;
  const words = (name) =>
    name.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());

  // One colour per system, in the order systems are first seen.
  const colours = new Map();
  function sourceClass(source) {
    if (!colours.has(source)) colours.set(source, colours.size % 6);
    return `src src-${colours.get(source)}`;
  }

  function formatValue(value, typeName) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(2);
    if (Array.isArray(value)) return value.length ? value.map((v) => formatValue(v)).join(", ") : "none";
    if (typeof value === "object") return JSON.stringify(value);
    if (typeName === "DateTime" && /^\d{4}-\d\d-\d\dT/.test(value)) {
      const date = new Date(value);
      if (!Number.isNaN(date.getTime())) return date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
    }
    return String(value);
  }

  // ---- credentials and transport -------------------------------------------
  function credentials() {
    return { scheme: $("key-scheme").value, key: $("api-key").value.trim() };
  }

  function initCredentials() {
    const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";
    const saved = sessionStorage.getItem("custview.key");
    const scheme = sessionStorage.getItem("custview.scheme") || meta("custview-default-scheme") || "apikey";
    $("api-key").value = saved !== null ? saved : meta("custview-default-key");
    $("key-scheme").value = scheme === "bearer" ? "bearer" : "apikey";
    const remember = () => {
      sessionStorage.setItem("custview.key", $("api-key").value);
      sessionStorage.setItem("custview.scheme", $("key-scheme").value);
    };
    const reset = () => { remember(); state.schema = null; state.skipped.clear(); };
    $("api-key").addEventListener("change", reset);
    $("key-scheme").addEventListener("change", reset);
    $("key-form").addEventListener("submit", (event) => event.preventDefault());
    if (!$("api-key").value) $("credentials").open = true;
  }

  class ApiError extends Error {}

  async function gql(query, variables) {
    const headers = { "content-type": "application/json", accept: "application/json" };
    const { scheme, key } = credentials();
    if (key) {
      if (scheme === "bearer") headers.authorization = `Bearer ${key}`;
      else headers["x-api-key"] = key;
    }
    let response;
    try {
      response = await fetch(ENDPOINT, {
        method: "POST", headers, body: JSON.stringify({ query, variables: variables || {} }),
      });
    } catch (err) {
      throw new ApiError(`The gateway did not answer (${err.message}).`);
    }
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (response.status === 401 || response.status === 403) {
      $("credentials").open = true;
      const message = body?.errors?.[0]?.message || "not authorised";
      throw new ApiError(`The gateway refused the credentials: ${message}. Check the API key under Credentials.`);
    }
    if (!body || (!body.data && !body.errors)) {
      throw new ApiError(`The gateway answered HTTP ${response.status} without a GraphQL result.`);
    }
    return body;
  }

  // ---- the schema, by introspection ------------------------------------------
  const TYPE_REF = "kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";
  const INTROSPECTION = `query CustviewPageSchema { __schema { queryType { name }
    types { name kind description fields { name description type { ${TYPE_REF} }
      args { name defaultValue type { ${TYPE_REF} } } } inputFields { name } } } }`;

  function unwrap(ref) {
    let list = false;
    let nonNull = false;
    let t = ref;
    while (t && !t.name) {
      if (t.kind === "LIST") list = true;
      if (t.kind === "NON_NULL" && !list) nonNull = true;
      t = t.ofType;
    }
    return { name: t?.name, kind: t?.kind, list, nonNull, text: typeText(ref) };
  }
  function typeText(ref) {
    if (ref.kind === "NON_NULL") return `${typeText(ref.ofType)}!`;
    if (ref.kind === "LIST") return `[${typeText(ref.ofType)}]`;
    return ref.name;
  }

  async function loadSchema() {
    if (state.schema) return state.schema;
    const body = await gql(INTROSPECTION);
    if (!body.data) throw new ApiError(errorText(body.errors) || "The schema could not be read.");
    const types = new Map(body.data.__schema.types.map((t) => [t.name, t]));
    state.schema = { types, query: types.get(body.data.__schema.queryType.name) };
    return state.schema;
  }

  const field = (type, name) => type?.fields?.find((f) => f.name === name);
  const isLeaf = (schema, name) => {
    const kind = schema.types.get(name)?.kind;
    return kind === "SCALAR" || kind === "ENUM";
  };
  const requiredArgs = (f) => f.args.some((a) => a.type.kind === "NON_NULL" && a.defaultValue === null);

  // A selection of every leaf, and of objects' leaves down to MAX_DEPTH;
  // `args(f, path)` may give arguments for a field.
  // A type already on the path contributes its leaves only (no cycles).
  function selection(schema, typeName, depth, args, path, seen = new Set()) {
    const type = schema.types.get(typeName);
    const parts = [];
    const below = new Set([...seen, typeName]);
    for (const f of type?.fields || []) {
      if (f.name.startsWith("__")) continue;
      const given = args ? args(f, [...path, f.name]) : null;
      if (given === false) continue;
      if (requiredArgs(f) && !given) continue;
      const t = unwrap(f.type);
      const call = given ? `${f.name}(${given})` : f.name;
      if (isLeaf(schema, t.name)) parts.push(call);
      else if (depth < MAX_DEPTH) {
        const deeper = below.has(t.name) ? MAX_DEPTH : depth + 1;
        const inner = selection(schema, t.name, deeper, args, [...path, f.name], below);
        if (inner) parts.push(`${call} { ${inner} }`);
      }
    }
    return parts.join(" ");
  }

  // Lists of related entities and paginated connections start with one page.
  function profileArgs(f, path) {
    // group members: enough to name and link them (their metrics would cost source calls)
    if (path.length === 3 && path[0] in GROUPS && path[1] === "members") {
      return MEMBER_FIELDS.includes(path[2]) ? null : false;
    }
    if (path.length !== 1) return null;
    const names = f.args.map((a) => a.name);
    if (names.includes("first")) return `first: ${PAGE}`;
    return null;
  }

  function isConnection(schema, f) {
    const t = schema.types.get(unwrap(f.type).name);
    return Boolean(field(t, "nodes") && field(t, "pageInfo"));
  }

  // ---- search ------------------------------------------------------------------
  function classify(text) {
    if (/^cus_[A-Za-z0-9_-]+$/.test(text)) return "id";
    if (/^[^/\s]+\/[^/\s]+\/[^/\s]+$/.test(text)) return "ref";
    if (text.includes("@")) return "email";
    const digits = text.replace(/\D/g, "");
    if (/^[+()\d\s.\-/]+$/.test(text) && digits.length >= 6) return "phone";
    return "name";
  }

  async function search(text) {
    text = text.trim();
    if (!text) return;
    clearAlerts();
    const kind = classify(text);
    if (kind === "name") {
      state.searchText = text;
      state.searchAfter = null;
      await searchByName(false);
      return;
    }
    $("results").hidden = true;
    await openCustomer(kind, text, true);
  }

  async function searchByName(append) {
    const schema = await loadSchema();
    const customers = field(schema.query, "customers");
    const filter = nameFilter(schema, state.searchText);
    if (!customers || !filter) {
      say("This gateway has no name filter; search by email, phone, id or source record.");
      return;
    }
    say(`Searching for “${state.searchText}”…`);
    const query = `query CustviewSearch($filter: CustomerFilter, $after: String) {
      customers(first: ${RESULTS}, after: $after, filter: $filter) {
        nodes { id ${["name", "email", "phone", "city", "country"].filter((n) => field(customerType(schema), n)).join(" ")} sourceRecords { source } }
        pageInfo { hasNextPage endCursor } } }`;
    const body = await gql(query, { filter, after: state.searchAfter });
    showPartial(body);
    const page = body.data?.customers;
    if (!page) {
      say(errorText(body.errors) || "The search failed.");
      return;
    }
    renderResults(page, append);
  }

  // Each word in the first or the last name: those map to columns the sources
  // filter on; the composed full name (`name`) is the fallback.
  function nameFilter(schema, text) {
    const inputs = new Set((schema.types.get("CustomerFilter")?.inputFields || []).map((f) => f.name));
    if (inputs.has("firstName") && inputs.has("lastName") && inputs.has("or")) {
      const parts = text.split(/\s+/).filter(Boolean).map((word) => ({
        or: [{ firstName: { contains: word } }, { lastName: { contains: word } }],
      }));
      return parts.length === 1 ? parts[0] : { and: parts };
    }
    return inputs.has("name") ? { name: { contains: text } } : null;
  }

  function customerType(schema) {
    return schema.types.get(unwrap(field(schema.query, "customer").type).name);
  }

  function renderResults(page, append) {
    const list = $("results-list");
    if (!append) list.replaceChildren();
    const start = list.children.length;
    for (const node of page.nodes) {
      const sources = [...new Set((node.sourceRecords || []).map((r) => r.source))];
      const detail = [node.email, node.phone, [node.city, node.country].filter(Boolean).join(", ")]
        .filter(Boolean).join(" · ");
      list.append(h("li", {},
        h("button", { type: "button", class: "result", "data-id": node.id,
                      onclick: () => { location.hash = `#customer=${encodeURIComponent(node.id)}`; } },
          h("span", { class: "result-name" }, node.name || node.email || node.id),
          h("span", { class: "result-detail" }, detail),
          h("span", { class: "result-sources" },
            sources.map((s) => h("span", { class: sourceClass(s) }, s))))));
    }
    showView("results");
    state.searchAfter = page.pageInfo.endCursor;
    $("results-more").hidden = !page.pageInfo.hasNextPage;
    const count = list.children.length;
    say(count ? `${count} customer${count === 1 ? "" : "s"} match “${state.searchText}”.`
              : `No customer's name contains “${state.searchText}”.`);
    if (append && list.children[start]) list.children[start].querySelector("button").focus();
  }

  // Arrow keys move between the search box and the results.
  function resultKeys(event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const buttons = [...document.querySelectorAll("#results-list .result")];
    if ($("results").hidden || !buttons.length) return;
    const at = buttons.indexOf(document.activeElement);
    let next;
    if (event.key === "ArrowDown") next = at < 0 ? 0 : Math.min(at + 1, buttons.length - 1);
    else next = at <= 0 ? -1 : at - 1;
    event.preventDefault();
    if (next < 0) $("search-input").focus();
    else buttons[next].focus();
  }

  // ---- one customer ------------------------------------------------------------
  async function openCustomer(kind, value, fromSearch) {
    const schema = await loadSchema();
    const root = field(schema.query, "customer");
    const arg = root?.args.find((a) => a.name === kind);
    if (!arg) {
      say(`This gateway cannot look customers up by ${kind}.`);
      return;
    }
    say(`Loading the customer with ${kind} ${value}…`);
    const type = unwrap(root.type).name;
    let body;
    let customer;
    // A non-null field that fails (a dead source, a field the role may not read)
    // nulls the whole customer: ask again without the fields that failed.
    for (let attempt = 0; attempt < 3; attempt++) {
      const skip = (f, path) => (path.length === 1 && state.skipped.has(f.name) ? false : profileArgs(f, path));
      const inner = selection(schema, type, 1, skip, []);
      const query = `query Customer360($value: ${typeText(arg.type).replace(/!$/, "")}!) {
        customer(${kind}: $value) { ${inner} } }`;
      body = await gql(query, { value });
      customer = body.data?.customer;
      const failed = customer ? [] : (body.errors || [])
        .filter((e) => e.path?.length >= 2 && e.path[0] === "customer" && !state.skipped.has(String(e.path[1])))
        .map((e) => String(e.path[1]));
      if (!failed.length) break;
      failed.forEach((name) => state.skipped.add(name));
    }
    if (!customer) {
      showPartial(body);
      say(body.errors ? errorText(body.errors) : `No customer has ${kind} ${value}.`);
      return;
    }
    state.customerId = customer.id;
    if (fromSearch) {
      history.pushState(null, "", `#customer=${encodeURIComponent(customer.id)}`);
    }
    renderProfile(schema, schema.types.get(type), customer, body);
    say(`Showing ${customer.name || customer.id}.`);
  }

  function renderProfile(schema, type, customer, body) {
    clearAlerts();
    showPartial(body);
    const failedAt = fieldErrors(body.errors);
    const article = $("profile");
    const titleId = "profile-title";
    const golden = goldenFields(customer);
    const sections = [];
    const records = customer.sourceRecords || [];
    const sources = [...new Set(records.map((r) => r.source))];

    sections.push(h("header", { class: "profile-head" },
      h("h1", { id: titleId, tabindex: "-1" }, customer.name || customer.email || customer.id),
      h("p", { class: "muted" }, "Customer ", h("code", {}, customer.id)),
      h("p", { class: "sources-line" }, `${records.length} record${records.length === 1 ? "" : "s"} in `,
        sources.map((s) => h("span", { class: sourceClass(s) }, s)))));

    const leaves = type.fields.filter((f) => !KNOWN.has(f.name) && isLeaf(schema, unwrap(f.type).name));
    const goldenLeaves = leaves.filter((f) => golden.has(f.name));
    const otherLeaves = leaves.filter((f) => !golden.has(f.name));
    const qualityByField = qualityIndex(customer.quality);

    sections.push(section("Profile", "golden",
      h("dl", { class: "golden" }, goldenLeaves.map((f) =>
        goldenRow(f, customer[f.name], customer.provenance || [], qualityByField.get(f.name))))));

    if (otherLeaves.length) {
      sections.push(section("Metrics", "metrics",
        h("dl", { class: "metrics" }, otherLeaves.map((f) => metricRow(f, customer[f.name], failedAt)))));
    }
    for (const kind of Object.keys(GROUPS)) {
      if (kind in customer || failedAt.has(kind)) sections.push(groupSection(kind, customer[kind], customer.id, failedAt));
    }
    if (customer.quality) sections.push(qualitySection(customer.quality));
    if (records.length) sections.push(recordsSection(records, body, customer.quality));
    const timeline = type.fields.find((f) => f.name === "timeline");
    if (timeline && customer.timeline !== undefined) sections.push(timelineSection(schema, timeline, customer.timeline, failedAt));

    for (const f of type.fields) {
      if (KNOWN.has(f.name) || isLeaf(schema, unwrap(f.type).name)) continue;
      if (!(f.name in customer)) continue;
      sections.push(genericSection(schema, f, customer[f.name], failedAt));
    }
    if (customer.matchExplanation) sections.push(matchSection(customer.matchExplanation));
    if (customer.possibleDuplicates) sections.push(duplicatesSection(customer.possibleDuplicates));

    article.replaceChildren(...sections);
    showView("profile");
    $(titleId).focus();
  }

  function goldenFields(customer) {
    const names = new Set((customer.provenance || []).map((p) => p.field));
    for (const q of customer.quality?.fields || []) names.add(q.field);
    return names;
  }

  function section(title, key, ...content) {
    const id = nextId("section");
    return h("section", { class: `card card-${key}`, "aria-labelledby": id },
      h("h2", { id }, title), ...content);
  }

  function goldenRow(f, value, provenance, quality) {
    const p = provenance.find((x) => x.field === f.name);
    const type = unwrap(f.type).name;
    const dd = h("dd", {}, h("span", { class: "value" }, formatValue(value, type)));
    if (p) dd.append(provenanceBadge(p));
    for (const issue of quality?.issues || []) {
      const badge = qualityBadge(issue);
      if (badge) dd.append(badge);
    }
    return [h("dt", { title: f.description || null }, words(f.name)), dd];
  }

  function provenanceBadge(p) {
    const tipId = nextId("tip");
    const alternatives = p.alternatives || [];
    const tip = h("span", { class: "tip", role: "tooltip", id: tipId },
      h("strong", {}, `${p.source} · ${p.table}`), ` record ${p.ref}`,
      h("span", { class: "tip-line" }, `Rule: ${p.rule}`),
      p.reason ? h("span", { class: "tip-line" }, p.reason) : null,
      alternatives.length
        ? h("span", { class: "tip-line" }, "Other values: ",
          h("ul", {}, alternatives.map((a) => h("li", {}, h("span", { class: "alt-value" }, formatValue(a.value)), ` (${a.ref})`))))
        : h("span", { class: "tip-line" }, "No other source disagrees."));
    const label = alternatives.length
      ? `${p.source}, ${alternatives.length} conflicting value${alternatives.length === 1 ? "" : "s"}`
      : `${p.source}`;
    return h("span", { class: "badge-wrap" },
      h("button", { type: "button", class: `badge ${sourceClass(p.source)}${alternatives.length ? " conflict" : ""}`,
                    "aria-describedby": tipId, "aria-label": `Provenance: ${label}`, "data-field": p.field,
                    onclick: (e) => e.currentTarget.parentElement.classList.toggle("open") },
        p.source, alternatives.length ? h("span", { class: "conflicts", "aria-hidden": "true" }, ` ≠${alternatives.length}`) : null),
      tip);
  }

  function metricRow(f, value, failedAt) {
    const failure = failedAt.get(f.name);
    const text = failure === "hidden for your role" ? failure
      : failure ? `unavailable (${failure})` : formatValue(value, unwrap(f.type).name);
    return [h("dt", { title: f.description || null }, words(f.name)),
      h("dd", { class: failure ? "unavailable" : null }, text)];
  }

  function recordsSection(records, body, quality) {
    const fresh = body.extensions?.custview?.freshness || {};
    const ages = new Map((quality?.records || []).map((r) => [r.ref, r]));
    return section("Source records", "records",
      h("table", {},
        h("thead", {}, h("tr", {}, ["System", "Record", "Kind", "Last updated", "Read", "Data"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, records.map((r) => h("tr", {},
          h("td", {}, h("span", { class: sourceClass(r.source) }, r.source)),
          h("td", {}, h("code", {}, r.ref)),
          h("td", {}, r.label || r.table),
          h("td", {}, ages.has(r.ref) ? [formatValue(ages.get(r.ref).updatedAt, "DateTime"),
            ages.get(r.ref).stale ? [" ", h("span", { class: "qbadge q-stale" }, "stale")] : null] : "—"),
          h("td", {}, freshnessText(fresh[r.source])),
          h("td", {}, r.data ? h("details", {}, h("summary", {}, "fields"), keyValues(r.data)) : "—"))))));
  }

  function freshnessText(counts) {
    if (!counts) return "live";
    const parts = Object.entries(counts).filter(([k]) => k !== "max_age_s").map(([k, v]) => `${v} ${k}`);
    return parts.join(", ") + (counts.max_age_s ? ` (≤ ${Math.round(counts.max_age_s)} s old)` : "");
  }

  function keyValues(data) {
    return h("dl", { class: "kv" }, Object.entries(data).map(([k, v]) => [h("dt", {}, k), h("dd", {}, formatValue(v))]));
  }

  function timelineSection(schema, f, connection, failedAt) {
    const list = h("ol", { class: "timeline", id: "timeline-list" });
    const more = h("button", { type: "button", class: "secondary", id: "timeline-more" }, "Show older events");
    const failure = failedAt.get("timeline");
    const note = failure ? h("p", { class: "unavailable" }, `Some events are unavailable (${failure}).`) : null;
    const card = section("Timeline", "timeline", note, list, more);
    appendEvents(list, connection?.nodes || []);
    state.timelineAfter = connection?.pageInfo?.endCursor || null;
    more.hidden = !connection?.pageInfo?.hasNextPage;
    if (!connection?.nodes?.length) list.append(h("li", { class: "muted" }, connection ? "No events." : "The timeline is unavailable."));
    more.addEventListener("click", () => guarded(() => moreEvents(schema, f, list, more)));
    return card;
  }

  function appendEvents(list, nodes) {
    const first = list.children.length;
    for (const e of nodes) {
      list.append(h("li", { tabindex: "-1" },
        h("time", { datetime: e.at }, formatValue(e.at, "DateTime")),
        h("span", { class: `kind kind-${e.kind}` }, e.kind),
        h("span", { class: "event-title" }, e.title || ""),
        e.detail ? h("span", { class: "muted" }, ` · ${e.detail}`) : null,
        e.source ? h("span", { class: sourceClass(e.source) }, e.source) : null));
    }
    return list.children[first];
  }

  async function moreEvents(schema, f, list, more) {
    const inner = selection(schema, unwrap(f.type).name, 2, null, []);
    const query = `query CustviewTimeline($id: ID!, $after: String) {
      customer(id: $id) { timeline(first: ${PAGE}, after: $after) { ${inner} } } }`;
    const body = await gql(query, { id: state.customerId, after: state.timelineAfter });
    showPartial(body);
    const page = body.data?.customer?.timeline;
    if (!page) { say(errorText(body.errors) || "The timeline could not be read."); return; }
    const firstNew = appendEvents(list, page.nodes);
    state.timelineAfter = page.pageInfo.endCursor;
    more.hidden = !page.pageInfo.hasNextPage;
    say(`${list.children.length} events shown.`);
    if (firstNew) firstNew.focus();
  }

  // Anything else the schema offers: lists of related entities as tables,
  // objects as key/value lists.
  function genericSection(schema, f, value, failedAt) {
    const title = words(f.name);
    const failure = failedAt.get(f.name);
    if (failure === "hidden for your role") return section(title, f.name, h("p", { class: "muted" }, "Hidden for your role."));
    if (failure) return section(title, f.name, h("p", { class: "unavailable" }, `Unavailable: ${failure}.`));
    if (value === null || value === undefined) return section(title, f.name, h("p", { class: "muted" }, "None."));
    if (Array.isArray(value)) {
      if (!value.length) return section(title, f.name, h("p", { class: "muted" }, "None."));
      if (typeof value[0] !== "object") return section(title, f.name, h("p", {}, value.map(formatValue).join(", ")));
      const columns = [...new Set(value.flatMap((row) => Object.keys(row)))];
      const more = f.args.some((a) => a.name === "first") && value.length >= PAGE
        ? h("p", { class: "muted" }, `The ${PAGE} most recent; the timeline and GraphiQL show all.`) : null;
      return section(title, `list card-${f.name}`, h("table", {},
        h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, words(c))))),
        h("tbody", {}, value.map((row) => h("tr", {}, columns.map((c) => cell(c, row[c])))))), more);
    }
    if (typeof value === "object") return section(title, f.name, keyValues(value));
    return section(title, f.name, h("p", {}, formatValue(value)));
  }

  function cell(column, value) {
    if (column === "source" && value) return h("td", {}, h("span", { class: sourceClass(value) }, value));
    return h("td", {}, formatValue(value, /At$/.test(column) ? "DateTime" : null));
  }

  // Business account and household: who else belongs, each a link to their profile.
  function groupSection(kind, group, selfId, failedAt) {
    const title = GROUPS[kind];
    const failure = failedAt.get(kind);
    if (failure === "hidden for your role") return section(title, kind, h("p", { class: "muted" }, "Hidden for your role."));
    if (failure) return section(title, kind, h("p", { class: "unavailable" }, `Unavailable: ${failure}.`));
    if (!group) return section(title, kind, h("p", { class: "muted" }, `No ${title.toLowerCase()} found.`));
    const members = group.members || [];
    const facts = h("dl", { class: "kv" },
      group.name ? [h("dt", {}, "Name"), h("dd", { class: "group-name" }, group.name)] : null,
      [h("dt", {}, "Id"), h("dd", {}, h("code", {}, group.id))],
      group.domains?.length ? [h("dt", {}, "Domains"), h("dd", {}, group.domains.join(", "))] : null,
      group.accounts?.length ? [h("dt", {}, "Accounts"), h("dd", {}, group.accounts.map((a, i) => [i ? ", " : "", h("code", {}, a.ref)]))] : null,
      typeof group.memberCount === "number" ? [h("dt", {}, "Members"), h("dd", { class: "member-count" }, String(group.memberCount))] : null);
    const list = h("ul", { class: "members" }, members.map((m) => h("li", {},
      m.id === selfId
        ? [h("strong", {}, m.name || m.email || m.id), h("span", { class: "muted" }, " (this customer)")]
        : h("a", { href: `#customer=${encodeURIComponent(m.id)}`, "data-id": m.id }, m.name || m.email || m.id),
      [m.email, m.city].filter(Boolean).length ? h("span", { class: "muted" }, ` · ${[m.email, m.city].filter(Boolean).join(" · ")}`) : null)));
    const more = typeof group.memberCount === "number" && group.memberCount > members.length
      ? h("p", { class: "muted" }, `${members.length} of ${group.memberCount} members shown.`) : null;
    return section(title, kind, facts, members.length ? list : null, more);
  }

  function matchSection(reasons) {
    return section("Why these records are one customer", "match",
      h("table", {},
        h("thead", {}, h("tr", {}, ["Record", "How", "Shared keys", "Score"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, reasons.map((r) => h("tr", {},
          h("td", {}, h("code", {}, r.ref)),
          h("td", {}, { KEY: "shared identity key", MODEL: "match model", SEED: "only record" }[r.method] || r.method),
          h("td", {}, (r.keys || []).join(", ") || "—"),
          h("td", {}, r.probability === null || r.probability === undefined ? "—" : r.probability.toFixed(3)))))));
  }

  function duplicatesSection(duplicates) {
    if (!duplicates.length) return section("Possible duplicates", "duplicates", h("p", { class: "muted" }, "None found."));
    return section("Possible duplicates", "duplicates",
      h("ul", { class: "duplicates" }, duplicates.map((d) => h("li", {},
        h("a", { href: `#customer=${encodeURIComponent(d.customerId)}` }, d.ref),
        ` matches ${d.matchedRef} with probability ${d.probability.toFixed(3)}`,
        h("details", {}, h("summary", {}, "explanation"),
          h("ul", {}, (d.contributions || []).map((c) =>
            h("li", {}, `${c.comparison}: ${c.level} (${Number(c.weight).toFixed(2)})`))))))));
  }

  // ---- data quality (Customer.quality, when the schema has it) ------------------
  function qualityIndex(quality) {
    return new Map((quality?.fields || []).map((q) => [q.field, q]));
  }

  const KIND_LABEL = { INVALID: "invalid", MISSING: "missing", STALE: "stale", CONFLICT: "conflict" };

  // Next to a golden value: what is wrong with it (conflicts have the ≠ badge).
  function qualityBadge(issue) {
    if (issue.kind === "CONFLICT") return null;
    const where = issue.ref ? ` in ${issue.ref}` : "";
    const text = issue.kind === "INVALID" ? `invalid${where}` : KIND_LABEL[issue.kind] || issue.kind;
    return h("span", { class: `qbadge q-${String(issue.kind).toLowerCase()}`, "data-kind": issue.kind },
      h("span", { "aria-hidden": "true" }, "⚠ "), text,
      h("span", { class: "visually-hidden" }, `: ${issue.message}`));
  }

  function qualitySection(quality) {
    const issues = quality.issues || (quality.fields || []).flatMap((q) => q.issues || []);
    const score = typeof quality.score === "number"
      ? h("p", {}, "Checks passed: ", h("strong", {}, `${Math.round(quality.score * 100)} %`)) : null;
    if (!issues.length) return section("Data quality", "quality", score, h("p", { class: "muted" }, "No issues found."));
    const order = ["INVALID", "MISSING", "CONFLICT", "STALE"];
    const sorted = [...issues].sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
    return section("Data quality", "quality", score,
      h("ul", { class: "quality-issues", id: "quality-issues" }, sorted.map((i) => h("li", { "data-kind": i.kind },
        h("span", { class: `qbadge q-${String(i.kind).toLowerCase()}` }, KIND_LABEL[i.kind] || i.kind), " ",
        i.field ? h("strong", {}, words(i.field)) : h("strong", {}, "Record"),
        `: ${i.message}`,
        i.value !== null && i.value !== undefined ? [" — ", h("code", {}, formatValue(i.value))] : null,
        i.ref ? h("span", { class: "muted" }, ` (${i.ref})`) : null))));
  }

  // ---- the data-quality report (qualityReport, when the schema has it) -----------------
  const REPORT_COLUMNS = ["System", "Table", "Field", "Records", "Filled", "Invalid", "Stale", "Conflicting", "Examples"];

  async function openQualityReport() {
    const schema = await loadSchema();
    const root = field(schema.query, "qualityReport");
    const view = $("quality-report");
    showView("quality-report");
    if (!root) {
      view.replaceChildren(h("h1", { id: "quality-title", tabindex: "-1" }, "Data quality"),
        h("p", {}, "This gateway has no quality report."));
      return;
    }
    const sample = Number($("quality-sample")?.value) || null;
    say("Checking a sample of customers across every source…");
    const body = await gql(`query CustviewQuality($sample: Int) { qualityReport${sample ? "(sample: $sample)" : ""} {
      customers records fullScan staleAfterDays checks
      entries { source table field records filled completeness invalid stale conflicting examples } } }`,
      sample ? { sample } : {});
    showPartial(body);
    const report = body.data?.qualityReport;
    if (!report) {
      renderReport(null, errorText(body.errors) || "The report could not be made.");
      return;
    }
    renderReport(report, null);
    say(`Quality of ${report.customers} customers (${report.records} records).`);
  }

  function renderReport(report, problem) {
    const view = $("quality-report");
    const form = h("form", { class: "report-form", id: "quality-form" },
      h("label", { for: "quality-sample" }, "Customers to check"),
      h("input", { id: "quality-sample", type: "number", min: "1", value: $("quality-sample")?.value || "", placeholder: "default" }),
      h("button", { type: "submit" }, "Check"));
    form.addEventListener("submit", (event) => { event.preventDefault(); guarded(openQualityReport); });
    const head = [h("h1", { id: "quality-title", tabindex: "-1" }, "Data quality"),
      h("p", { class: "muted" }, "Per source table and golden field: how many values are filled, fail their check, " +
        "sit in stale records or disagree with the golden value. Fix them in the source system."), form];
    if (!report) {
      view.replaceChildren(...head, h("p", { class: "unavailable" }, problem));
      $("quality-title").focus();
      return;
    }
    const checks = Object.entries(report.checks || {}).map(([f, c]) => `${words(f)}: ${c}`).join(", ");
    const pct = (n) => `${Math.round(n * 100)} %`;
    const num = (n, bad) => h("td", { class: n && bad ? "num bad" : "num" }, String(n));
    view.replaceChildren(...head,
      h("p", {}, `${report.customers} customers${report.fullScan ? " (all of them)" : " (a sample)"}, ` +
        `${report.records} source records; stale after ${report.staleAfterDays} days.`),
      checks ? h("p", { class: "muted" }, `Checks: ${checks}.`) : null,
      h("table", { class: "report", id: "quality-table" },
        h("thead", {}, h("tr", {}, REPORT_COLUMNS.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, report.entries.map((e) => h("tr", { "data-source": e.source, "data-field": e.field },
          h("td", {}, h("span", { class: sourceClass(e.source) }, e.source)),
          h("td", {}, e.table),
          h("td", {}, words(e.field)),
          num(e.records, false),
          h("td", { class: e.completeness < 1 ? "num warn" : "num" }, `${e.filled} (${pct(e.completeness)})`),
          num(e.invalid, true), num(e.stale, true), num(e.conflicting, true),
          h("td", {}, e.examples.map((ref, i) => [i ? ", " : "", h("code", {}, ref)])))))));
    $("quality-title").focus();
  }

  // One view at a time in <main>: the welcome text, search results, a profile or the report.
  function showView(id) {
    for (const name of ["welcome", "results", "profile", "quality-report"]) $(name).hidden = name !== id;
  }

  // ---- errors and partial data ------------------------------------------------------
  function fieldErrors(errors) {
    const map = new Map();
    for (const e of errors || []) {
      const path = e.path || [];
      if (path.length >= 2 && path[0] === "customer") {
        const code = e.extensions?.code || "error";
        const text = code === "FORBIDDEN_FIELD" ? "hidden for your role"
          : e.extensions?.source ? `${e.extensions.source}: ${code}` : code;
        map.set(String(path[1]), text);
      }
    }
    return map;
  }

  function errorText(errors) {
    return (errors || []).map((e) => e.message).join(" ");
  }

  function showPartial(body) {
    const info = body?.extensions?.custview;
    if (!info?.incomplete) return;
    const failed = Object.entries(info.failedSources || {});
    const banner = h("div", { class: "banner partial", role: "alert", id: "partial-banner" },
      h("strong", {}, "Partial data. "),
      failed.length
        ? ["These sources did not answer: ",
          failed.map(([source, code], i) => [i ? ", " : "", h("span", { class: sourceClass(source) }, source), ` (${code})`]),
          ". Their fields and records are missing; everything else is live."]
        : "Some sources did not answer; the view is incomplete.");
    $("alerts").replaceChildren(banner);
  }

  function clearAlerts() {
    $("alerts").replaceChildren();
  }

  function say(text) {
    $("status").textContent = text;
  }

  async function guarded(fn) {
    try {
      await fn();
    } catch (err) {
      if (err instanceof ApiError) say(err.message);
      else { say(`Something went wrong: ${err.message}`); console.error(err); }
    }
  }

  // ---- routing ------------------------------------------------------------------------
  function route() {
    if (location.hash === "#quality") {
      state.customerId = null;
      guarded(openQualityReport);
      return;
    }
    const match = /^#customer=(.+)$/.exec(location.hash);
    if (!match) return;
    const id = decodeURIComponent(match[1]);
    if (id === state.customerId && !$("profile").hidden) return;
    guarded(() => openCustomer("id", id, false));
  }

  function closeTips(event) {
    if (event.key === "Escape") {
      for (const open of document.querySelectorAll(".badge-wrap.open")) open.classList.remove("open");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    initCredentials();
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      guarded(() => search($("search-input").value));
    });
    $("search-input").addEventListener("keydown", resultKeys);
    $("results-list").addEventListener("keydown", resultKeys);
    $("results-more").addEventListener("click", () => guarded(() => searchByName(true)));
    document.addEventListener("keydown", closeTips);
    window.addEventListener("hashchange", route);
    route();
    if (!location.hash) $("search-input").focus();
  });
})();
