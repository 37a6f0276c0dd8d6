"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium) against a real gateway served by uvicorn on 127.0.0.1
over the generated demo sources.

Without the browser these tests skip locally and FAIL under ``CI=true``
(``.ci/run`` installs it). Every test leaves a screenshot in
``test-artifacts/browser/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.serving import DEMO_HEADERS
from gateway.settings import DEMO_CONFIG, load_settings
from tests.e2e.conftest import demo_dir, feedback_url  # noqa: F401  (shared demo fixtures)
from tests.support.servers import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("CUSTVIEW_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CUSTVIEW_CHROMEDRIVER", "/usr/bin/chromedriver")
DEAD_SUPPORT = "postgresql+asyncpg://custview:hunter2@127.0.0.1:1/support"
"""Nothing listens on port 1: connections are refused at once."""


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is missing (apt-get install chromium chromium-driver; .ci/run does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the browser tests need Chromium: {reason}", pytrace=False)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1600",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    # an explicit driver path: Selenium Manager never tries to download one
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture()
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The shared browser, with a clean tab state; a screenshot after the test."""
    browser.get("about:blank")  # a fresh document for every test
    browser.delete_all_cookies()
    yield browser
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
    browser.execute_script("window.sessionStorage.clear()")


def _gateway(config: Path, demo: Path, feedback: str) -> Callable[[], Any]:
    def serve() -> Any:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("CUSTVIEW_DEMO_DIR", str(demo))
            env.setenv("CUSTVIEW_FEEDBACK_URL", feedback)
            loaded = load_settings(config)
        return serve_in_thread(create_app(loaded, DEMO_HEADERS), lifespan="on")

    return serve


@pytest.fixture(scope="module")
def gateway_url(demo_dir: Path, feedback_url: str) -> Iterator[str]:  # noqa: F811
    """The demo gateway as `custview demo` serves it (key pre-filled)."""
    with _gateway(DEMO_CONFIG, demo_dir, feedback_url)() as url:
        yield url


@pytest.fixture(scope="module")
def degraded_gateway_url(
    demo_dir: Path,  # noqa: F811
    feedback_url: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The demo gateway with the support desk pointed at a refusing port."""
    config = tmp_path_factory.mktemp("degraded") / "degraded.yaml"
    config.write_text(
        DEMO_CONFIG.read_text().replace(
            '"sqlite+aiosqlite:///${CUSTVIEW_DEMO_DIR:-demo-data}/support.db"',
            f'"{DEAD_SUPPORT}"',
        )
    )
    with _gateway(config, demo_dir, feedback_url)() as url:
        yield url
