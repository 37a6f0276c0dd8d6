"""The Customer 360 page and GraphiQL in a real headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from gateway.serving import DEMO_HEADERS
from tests.e2e.test_partial_results import _three_system_email

WAIT = 30


def wait(driver: Any) -> WebDriverWait[Any]:
    return WebDriverWait(driver, WAIT)


def search(driver: Any, base: str, text: str) -> None:
    driver.get(base + "/")
    box = wait(driver).until(ec.element_to_be_clickable((By.ID, "search-input")))
    box.clear()
    box.send_keys(text, Keys.ENTER)


def profile_title(driver: Any) -> Any:
    return wait(driver).until(ec.visibility_of_element_located((By.ID, "profile-title")))


def record_sources(driver: Any) -> set[str]:
    cells = driver.find_elements(By.CSS_SELECTOR, ".card-records tbody td:first-child")
    return {c.text for c in cells}


def gql(base: str, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        base + "/graphql", json={"query": query, "variables": variables}, headers=DEMO_HEADERS
    )
    body: dict[str, Any] = response.json()
    return body


def test_search_by_email_opens_a_profile_with_values_from_three_sources(
    page: Any, gateway_url: str, demo_dir: Path
) -> None:
    email = _three_system_email(demo_dir)
    expected = gql(
        gateway_url,
        "query($e: String) { customer(email: $e) { id name email provenance { field source } } }",
        e=email,
    )["data"]["customer"]
    search(page, gateway_url, email)
    assert profile_title(page).text == expected["name"]
    assert page.current_url.endswith(f"#customer={expected['id']}")
    assert {"crm", "support", "sales"} <= record_sources(page)
    # golden values carry a provenance badge naming their source system
    badges = page.find_elements(By.CSS_SELECTOR, ".card-golden button.badge")
    by_field = {b.get_attribute("data-field"): b.text.split()[0] for b in badges}
    for p in expected["provenance"]:
        assert by_field[p["field"]] == p["source"]
    golden_email = page.find_element(
        By.XPATH, "//dt[.='Email']/following-sibling::dd[1]/span[@class='value']"
    )
    assert golden_email.text == expected["email"]
    # related data: every relation has its section, orders (sales) are listed
    for relation in ("tickets", "orders", "opportunities", "surveys"):
        assert page.find_element(By.CSS_SELECTOR, f".card-{relation} h2").is_displayed()
    assert page.find_elements(By.CSS_SELECTOR, ".card-orders tbody tr")
    assert page.find_elements(By.CSS_SELECTOR, "#timeline-list li time")
    assert not page.find_elements(By.ID, "partial-banner")


def test_a_conflicting_value_shows_on_hover_and_on_focus(page: Any, gateway_url: str) -> None:
    found = gql(
        gateway_url,
        "{ customers(first: 100) { nodes { id provenance { field alternatives } } } }",
    )["data"]["customers"]["nodes"]
    customer, field, alternative = next(
        (c["id"], p["field"], p["alternatives"][0]["value"])
        for c in found
        for p in c["provenance"]
        if p["alternatives"] and p["field"] == "email"
    )
    page.get(f"{gateway_url}/#customer={customer}")
    profile_title(page)
    badge = page.find_element(By.CSS_SELECTOR, f'button.badge[data-field="{field}"]')
    tip = page.find_element(By.ID, badge.get_attribute("aria-describedby"))
    assert not tip.is_displayed()
    badge.send_keys("")  # focus it, as Tab would
    page.execute_script("arguments[0].focus()", badge)
    wait(page).until(lambda _: tip.is_displayed())
    assert alternative in tip.text and "Rule:" in tip.text
    assert "conflicting" in (badge.get_attribute("aria-label") or "")


def test_the_keyboard_alone_finds_and_opens_a_customer(page: Any, gateway_url: str) -> None:
    nodes = gql(gateway_url, "{ customers(first: 200) { nodes { id lastName } } }")["data"][
        "customers"
    ]["nodes"]
    counts: dict[str, int] = {}
    for n in nodes:
        if n["lastName"]:
            counts[n["lastName"]] = counts.get(n["lastName"], 0) + 1
    surname = max(counts, key=lambda name: counts[name])
    assert counts[surname] >= 2
    page.get(gateway_url + "/")
    box = wait(page).until(ec.element_to_be_clickable((By.ID, "search-input")))
    assert page.switch_to.active_element == box, "the search box has focus on arrival"
    page.switch_to.active_element.send_keys(surname, Keys.ENTER)
    results = wait(page).until(
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, "#results-list .result")) >= 2
            and d.find_elements(By.CSS_SELECTOR, "#results-list .result")
        )
    )
    page.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    assert page.switch_to.active_element == results[0]
    page.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    assert page.switch_to.active_element == results[1]
    page.switch_to.active_element.send_keys(Keys.ARROW_UP, Keys.ARROW_UP)
    assert page.switch_to.active_element == box
    page.switch_to.active_element.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN)
    wanted = results[1].get_attribute("data-id")
    page.switch_to.active_element.send_keys(Keys.ENTER)
    title = profile_title(page)
    wait(page).until(lambda d: d.switch_to.active_element == title)
    assert page.current_url.endswith(f"#customer={wanted}")
    # Tab reaches the first provenance badge, and its explanation opens on focus
    for _ in range(50):
        page.switch_to.active_element.send_keys(Keys.TAB)
        active = page.switch_to.active_element
        if "badge" in (active.get_attribute("class") or ""):
            break
    else:
        pytest.fail("Tab never reached a provenance badge")
    tip = page.find_element(By.ID, active.get_attribute("aria-describedby"))
    assert tip.is_displayed() and "Rule:" in tip.text
    outline = active.value_of_css_property("outline-style")
    assert outline != "none", "focus is visible"


def test_the_timeline_pages_through_older_events(page: Any, gateway_url: str) -> None:
    nodes = gql(
        gateway_url,
        "{ customers(first: 200) { nodes { id"
        " timeline(first: 10) { pageInfo { hasNextPage } } } } }",
    )["data"]["customers"]["nodes"]
    busy = next(n["id"] for n in nodes if n["timeline"]["pageInfo"]["hasNextPage"])
    page.get(f"{gateway_url}/#customer={busy}")
    profile_title(page)
    events = page.find_elements(By.CSS_SELECTOR, "#timeline-list li")
    assert len(events) == 10
    more = page.find_element(By.ID, "timeline-more")
    more.click()
    wait(page).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#timeline-list li")) > 10)
    times = [
        e.get_attribute("datetime")
        for e in page.find_elements(By.CSS_SELECTOR, "#timeline-list li time")
    ]
    assert times == sorted(times, reverse=True), "newest first, across pages"


def test_a_stopped_source_shows_the_partial_data_banner(
    page: Any, degraded_gateway_url: str, demo_dir: Path
) -> None:
    search(page, degraded_gateway_url, _three_system_email(demo_dir))
    profile_title(page)
    banner = wait(page).until(ec.visibility_of_element_located((By.ID, "partial-banner")))
    assert banner.get_attribute("role") == "alert"
    assert "Partial data" in banner.text
    assert "support (SOURCE_UNAVAILABLE)" in banner.text
    assert "hunter2" not in page.page_source
    assert "support" not in record_sources(page)
    assert {"crm", "sales"} <= record_sources(page)
    tickets = page.find_element(By.CSS_SELECTOR, ".card-tickets")
    assert "Unavailable: support: SOURCE_UNAVAILABLE" in tickets.text
    assert page.find_elements(By.CSS_SELECTOR, ".card-orders tbody tr"), "the rest still answers"


def test_graphiql_loads_and_runs_a_query(page: Any, gateway_url: str) -> None:
    page.get(gateway_url + "/graphql")
    run = wait(page).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, "button.graphiql-execute-button"))
    )
    run.click()
    wait(page).until(
        lambda d: '"customers"' in d.find_element(By.CSS_SELECTOR, ".result-window").text
    )
    result = page.find_element(By.CSS_SELECTOR, ".result-window").text
    assert '"sourceRecords"' in result and "UNAUTHENTICATED" not in result


def test_quality_warnings_show_next_to_the_value_and_in_their_card(
    page: Any, gateway_url: str, demo_dir: Path
) -> None:
    import csv

    with (demo_dir / "quality_truth.csv").open(newline="") as fh:
        flaw = next(r for r in csv.DictReader(fh) if r["column"] == "postcode")
    ref = f"{flaw['source']}/{flaw['table']}/{flaw['record_id']}"
    search(page, gateway_url, ref)
    profile_title(page)
    row = page.find_element(
        By.XPATH, "//dl[@class='golden']/dt[.='Postcode']/following-sibling::dd[1]"
    )
    assert f"invalid in {ref}" in row.find_element(By.CSS_SELECTOR, ".qbadge.q-invalid").text
    card = page.find_element(By.ID, "quality-issues")
    invalid = card.find_element(By.CSS_SELECTOR, 'li[data-kind="INVALID"]')
    assert flaw["value"] in invalid.text and ref in invalid.text
    assert "Checks passed" in page.find_element(By.CSS_SELECTOR, ".card-quality").text


def test_a_masked_field_shows_masked_for_a_restricted_key(
    page: Any, gateway_url: str, demo_dir: Path
) -> None:
    email = _three_system_email(demo_dir)
    page.get(gateway_url + "/")
    wait(page).until(ec.element_to_be_clickable((By.ID, "search-input")))
    page.find_element(By.CSS_SELECTOR, "#credentials summary").click()
    key = page.find_element(By.ID, "api-key")
    key.clear()
    key.send_keys("support-key", Keys.TAB)  # the demo's support role masks contact details
    box = page.find_element(By.ID, "search-input")
    box.send_keys(email, Keys.ENTER)
    profile_title(page)
    shown = page.find_element(
        By.XPATH, "//dt[.='Email']/following-sibling::dd[1]/span[@class='value']"
    ).text
    local = email.strip().lower().partition("@")[0]
    assert shown.startswith(local[0]) and "***@" in shown and email not in page.page_source
    street = page.find_element(By.XPATH, "//dt[.='Street']/following-sibling::dd[1]")
    assert street.text == "hidden for your role"
    assert "***" in page.find_element(By.ID, "profile-title").text, "the name is masked too"
