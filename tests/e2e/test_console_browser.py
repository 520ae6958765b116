"""The console in a real browser (spec §14): Debian's chromium, driven by Selenium through
its chromedriver, against the app served over HTTP. Every page is used by keyboard alone
(focus, typing, Enter), and any error in the browser's console fails the test.

With CONSOLE_SCREENSHOTS=DIR (`make screenshots`), each page is also saved as DIR/NAME.png:
the README's pictures come from here."""

from __future__ import annotations

import base64
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool
from werkzeug.serving import make_server

from app.config import Settings, parse_api_tokens
from app.devtools.simulate import message_received
from app.outbound.sender import Sender
from app.services import outbound
from app.web import create_app
from tests.conftest import (
    apply_received,
    drain_every_attempt,
    example,
    failed_event,
    fresh_ids,
    new_profile,
    wait_for,
)
from tests.webhook_receiver import webhook_receiver

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)
ADMIN = "browser-admin-secret"
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")


@pytest.fixture(scope="module")
def console_url(make_database: object, settings: Settings) -> Iterator[str]:
    tokens = parse_api_tokens(f"admin:{ADMIN}")
    app = create_app(
        replace(settings, api_tokens=tokens, secret_key="b" * 64, endpoints_allow_private=True)
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/console"
    server.shutdown()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER or ""), options=options)
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser: object, console_url: str) -> Iterator[object]:
    """The browser, signed in; after the test, no SEVERE entry in its console."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    browser.get(f"{console_url}/")
    if browser.find_element(By.TAG_NAME, "h1").text == "Log in":
        screenshot(browser, "login")
        focused = browser.switch_to.active_element
        assert focused.get_attribute("name") == "token"  # the field is ready to type in
        focused.send_keys(ADMIN, Keys.ENTER)
    heading(browser, "Overview")
    yield browser
    problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[attr-defined]
    assert problems == []


def screenshot(browser: object, name: str) -> None:
    """Save the whole page for the README when CONSOLE_SCREENSHOTS names a folder."""
    if not SCREENSHOTS:
        return
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    (Path(SCREENSHOTS) / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def settled(browser: object, read: Callable[[Any], Any]) -> Any:
    """What ``read`` finds once the page it needs has loaded (a keypress that submits or
    follows a link leaves the old page in place for a moment)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.wait import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(browser, 10, ignored_exceptions=ignored).until(read)


def heading(browser: object, expected: str) -> None:
    from selenium.webdriver.common.by import By

    settled(browser, lambda b: b.find_element(By.TAG_NAME, "h1").text == expected)


def go(browser: object, link: str) -> None:
    """Follow a link of the console's navigation by keyboard: focus it, press Enter."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    browser.find_element(By.CSS_SELECTOR, "nav").find_element(By.LINK_TEXT, link).send_keys(
        Keys.ENTER
    )
    heading(browser, link)


def notice(browser: object, expected: str) -> str:
    """The line the page shows after an action, once it holds ``expected``."""
    from selenium.webdriver.common.by import By

    def shown(b: Any) -> str | None:
        text = str(b.find_element(By.CSS_SELECTOR, '[role="status"]').text)
        return text if expected in text else None

    return str(settled(browser, shown))


def test_held_numbers_are_confirmed_and_dismissed_by_keyboard(
    page: object, settings: Settings
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(page, WebDriver)
    held = [fresh_ids(example("possible_opt_out"), new_profile()) for _ in range(2)]
    apply_received(settings.database_url or "", held)
    number = held[0]["data"]["payload"]["from"]["phone_number"]
    profiles = [h["data"]["payload"]["messaging_profile_id"] for h in held]
    go(page, "Review")
    screenshot(page, "review")
    confirm = page.find_element(
        By.XPATH, f"//tr[td='{profiles[0]}']//button[normalize-space()='Confirm']"
    )
    assert confirm.get_attribute("aria-label") == f"Confirm the opt-out of {number}"
    confirm.send_keys(Keys.ENTER)
    notice(page, f"{number} on {profiles[0]}: review_confirmed (review → opted_out)")
    dismiss = page.find_element(
        By.XPATH, f"//tr[td='{profiles[1]}']//button[normalize-space()='Dismiss']"
    )
    dismiss.send_keys(Keys.ENTER)
    notice(page, f"{number} on {profiles[1]}: review_dismissed")


def test_a_subscribers_history_is_found_by_typing_the_number(
    page: object, settings: Settings
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(page, WebDriver)
    number, profile = "+13125550177", new_profile()
    apply_received(
        settings.database_url or "",
        [
            message_received(
                text=text,
                from_number=number,
                to_number="+18885550123",
                profile_id=profile,
                occurred_at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
            )
            for text, minutes_ago in (("STOP", 2), ("START", 1))
        ],
    )
    go(page, "Subscribers")
    field = page.switch_to.active_element  # the search field has the focus
    assert field.get_attribute("name") == "phone"
    field.send_keys("+1 312 555 0177", Keys.ENTER)
    settled(page, lambda b: b.find_element(By.ID, "state").text.startswith(number))
    history = page.find_element(By.CSS_SELECTOR, "table.history")
    actions = [
        row.find_elements(By.TAG_NAME, "td")[3].text
        for row in history.find_elements(By.CSS_SELECTOR, "tbody tr")
        if row.find_elements(By.TAG_NAME, "td")[2].text == profile
    ]
    assert actions == ["opt_out", "carrier_block", "opt_in", "carrier_unblock"]
    screenshot(page, "subscriber")


def test_a_failed_event_is_seen_and_replayed(page: object, settings: Settings) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(page, WebDriver)
    url = settings.database_url or ""
    event_id = failed_event(url, "+13125550666")
    go(page, "Events")
    screenshot(page, "events")
    replay = page.find_element(By.CSS_SELECTOR, f'button[aria-label="Replay {event_id}"]')
    row = replay.find_element(By.XPATH, "./ancestor::tr")
    assert "CheckViolation" in row.text
    replay.send_keys(Keys.ENTER)
    notice(page, f"{event_id} is queued again")
    drain_every_attempt(url, max_attempts=1)
    page.refresh()
    assert not page.find_elements(By.CSS_SELECTOR, f'button[aria-label="Replay {event_id}"]')


def test_an_export_is_downloaded_for_a_date_range(page: object, downloads: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(page, WebDriver)
    go(page, "Exports")
    screenshot(page, "exports")
    today = datetime.now(UTC).date()
    for name in ("since", "until"):  # a date field takes the digits in the locale's order
        field = page.find_element(By.ID, name)
        page.execute_script("arguments[0].focus()", field)
        field.send_keys(f"{today:%m%d%Y}")
    assert page.find_element(By.ID, "since").get_attribute("value") == today.isoformat()
    page.find_element(By.XPATH, "//button[normalize-space()='Download']").send_keys(Keys.ENTER)
    deadline = time.monotonic() + 15
    # Chrome may name the file before it has written it: wait for its content as well.
    while not (done := [p for p in downloads.glob("optout-sync-audit-*.csv") if p.stat().st_size]):
        assert time.monotonic() < deadline, list(downloads.iterdir())
        time.sleep(0.1)
    while list(downloads.glob("*.crdownload")) and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = done[0].read_text().splitlines()
    assert lines[0].startswith("seq,recorded_at,event_id") and len(lines) > 1
    assert all(today.isoformat() in line.split(",")[1] for line in lines[1:])


def test_an_endpoint_is_tested_from_its_page(page: object, settings: Settings) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(page, WebDriver)
    url = settings.database_url or ""
    with webhook_receiver() as receiver:
        with psycopg.connect(url) as conn, conn.transaction():
            endpoint = outbound.add_endpoint(conn, receiver.url, None, None, allow_private=True)
        stop = message_received(
            text="STOP",
            from_number="+13125550178",
            to_number="+13125550100",
            profile_id=new_profile(),
        )
        apply_received(url, [stop])  # announced to the new endpoint, then delivered
        with (
            ConnectionPool(url, min_size=1, max_size=2, open=True) as pool,
            ThreadPoolExecutor(2) as threads,
        ):

            def deliver() -> list[object]:
                # Other tests' endpoints may have webhooks due on this shared database too.
                outbound.deliver_due(pool, Sender(allow_private=True), threads, batch=50)
                return list(receiver.delivered())

            wait_for(deliver)
        go(page, "Endpoints")
        section = page.find_element(By.XPATH, f"//section[@aria-labelledby='{endpoint.id}']")
        assert "healthy" in section.text
        (attempt,) = section.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert "consent.opted_out" in attempt.text and "HTTP 200" in attempt.text
        screenshot(page, "endpoints")
        section.find_element(By.XPATH, ".//button[normalize-space()='Test']").send_keys(Keys.ENTER)
        notice(page, f"Test ping to {endpoint.id}: HTTP 200")
        assert [b'"type":"ping"' in r.body for r in receiver.received] == [False, True]
    with psycopg.connect(settings.database_url or "") as conn, conn.transaction():
        outbound.remove_endpoint(conn, endpoint.id)


def test_the_overview_then_logging_out_by_tabbing_to_the_button(page: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(page, WebDriver)
    go(page, "Overview")
    assert len(page.find_elements(By.CSS_SELECTOR, ".chart rect")) == 30
    assert page.find_element(By.CSS_SELECTOR, '[data-figure="pending_reviews"]').text.isdigit()
    screenshot(page, "overview")
    page.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert page.switch_to.active_element.text == "Skip to content"
    for _ in range(40):  # on through the page's controls to the logout button
        active = page.switch_to.active_element
        if active.text == "Log out":
            break
        active.send_keys(Keys.TAB)
    assert page.switch_to.active_element.text == "Log out"
    page.switch_to.active_element.send_keys(Keys.ENTER)
    heading(page, "Log in")
