"""The console in a real browser (spec §14): Debian's chromium, driven by Selenium through
its chromedriver, against the app served over HTTP. Log in and out by keyboard alone; no
errors in the browser's console."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest
from werkzeug.serving import make_server

from app.config import Settings, parse_api_tokens
from app.web import create_app
from tests.conftest import apply_received, example, fresh_ids, new_profile

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)
ADMIN = "browser-admin-secret"


@pytest.fixture(scope="module")
def console_url(make_database: object, settings: Settings) -> Iterator[str]:
    tokens = parse_api_tokens(f"admin:{ADMIN}")
    app = create_app(replace(settings, api_tokens=tokens, secret_key="b" * 64))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/console"
    server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER or ""), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def test_log_in_confirm_a_held_number_and_log_out_by_keyboard_with_no_console_errors(
    browser: object, console_url: str, settings: Settings
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    browser.get(f"{console_url}/")  # signed out: sent to the login page
    assert browser.find_element(By.TAG_NAME, "h1").text == "Log in"
    focused = browser.switch_to.active_element
    assert focused.get_attribute("name") == "token"  # the field is ready to type in
    focused.send_keys(ADMIN, Keys.ENTER)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"
    assert browser.find_element(By.CSS_SELECTOR, '[data-figure="pending_reviews"]').text.isdigit()

    held = fresh_ids(example("possible_opt_out"), new_profile())
    apply_received(settings.database_url or "", [held])
    number = held["data"]["payload"]["from"]["phone_number"]
    browser.find_element(By.LINK_TEXT, "Review").send_keys(Keys.ENTER)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Review"
    confirm = f'button[aria-label="Confirm the opt-out of {number}"]'
    browser.find_element(By.CSS_SELECTOR, confirm).send_keys(Keys.ENTER)
    done = browser.find_element(By.CSS_SELECTOR, '[role="status"]').text
    assert done.startswith(f"{number} on ") and "review_confirmed (review → opted_out)" in done

    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
    for _ in range(40):  # on through the page's controls to the logout button
        active = browser.switch_to.active_element
        if active.text == "Log out":
            break
        active.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Log out"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Log in"

    problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[attr-defined]
    assert problems == []
