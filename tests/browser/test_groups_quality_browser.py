"""The page shows a customer's business account and household, and the
data-quality report, in a real headless Chromium."""

from __future__ import annotations

from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from tests.browser.test_page_browser import gql, profile_title, wait

HOMES = "{ customers(first: 100) { nodes { id household { memberCount } } } }"
GROUPS = """query($id: ID) { customer(id: $id) { id
  business { id name memberCount members { id name } }
  household { id memberCount members { id name } } } }"""


def test_the_profile_shows_business_and_household_with_their_members(
    page: Any, gateway_url: str
) -> None:
    nodes = gql(gateway_url, HOMES)["data"]["customers"]["nodes"]
    shared = [n["id"] for n in nodes if n["household"] and n["household"]["memberCount"] >= 2]
    customer = next(
        c
        for c in (gql(gateway_url, GROUPS, id=i)["data"]["customer"] for i in shared)
        if c["business"] and c["business"]["memberCount"] >= 2
    )
    business, household = customer["business"], customer["household"]
    page.get(f"{gateway_url}/#customer={customer['id']}")
    profile_title(page)
    card = page.find_element(By.CSS_SELECTOR, ".card-business")
    assert card.find_element(By.CSS_SELECTOR, ".group-name").text == business["name"]
    assert card.find_element(By.CSS_SELECTOR, ".member-count").text == str(business["memberCount"])
    links = card.find_elements(By.CSS_SELECTOR, ".members a")
    others = {m["id"] for m in business["members"]} - {customer["id"]}
    assert {a.get_attribute("data-id") for a in links} == others
    assert "(this customer)" in card.text
    homes = page.find_element(By.CSS_SELECTOR, ".card-household")
    assert household["id"] in homes.text
    partner = next(m for m in household["members"] if m["id"] != customer["id"])
    homes.find_element(By.CSS_SELECTOR, f'.members a[data-id="{partner["id"]}"]').click()
    wait(page).until(lambda d: d.current_url.endswith(f"#customer={partner['id']}"))
    wait(page).until(
        lambda d: d.find_element(By.ID, "profile-title").text == (partner["name"] or partner["id"])
    )


def test_the_quality_report_lists_problems_per_source_and_field(
    page: Any, gateway_url: str
) -> None:
    report = gql(
        gateway_url,
        "{ qualityReport(sample: 200) { customers entries { source table field invalid } } }",
    )["data"]["qualityReport"]
    invalid = next(e for e in report["entries"] if e["invalid"])
    page.get(gateway_url + "/")
    page.find_element(By.ID, "quality-link").click()
    sample = wait(page).until(ec.visibility_of_element_located((By.ID, "quality-sample")))
    sample.send_keys("200")
    page.find_element(By.CSS_SELECTOR, "#quality-form button").click()
    wait(page).until(lambda d: "200 customers" in d.find_element(By.ID, "quality-report").text)
    rows = page.find_elements(By.CSS_SELECTOR, "#quality-table tbody tr")
    assert len(rows) == len(report["entries"])
    row = page.find_element(
        By.CSS_SELECTOR,
        f'#quality-table tr[data-source="{invalid["source"]}"][data-field="{invalid["field"]}"]',
    )
    cells = row.find_elements(By.TAG_NAME, "td")
    assert cells[5].text == str(invalid["invalid"]) and "bad" in cells[5].get_attribute("class")
    assert cells[8].text, "examples name the records to fix"
    assert page.switch_to.active_element == page.find_element(By.ID, "quality-title")
