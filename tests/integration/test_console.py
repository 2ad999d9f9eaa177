"""The console in a real headless Chromium, against the test stack: press Run and read what a
person would see: the rows, the bars, the numbers, and no error in the browser's log."""

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from bench.harness.results import run_meta, write_json
from tests.integration.stack import REQUIRE_DOCKER, ROOT, Stack, record

pytestmark = [pytest.mark.integration, pytest.mark.timing]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Where the screenshots go, one per race kind: reports/console/ (make screenshot puts the
# README's in docs/results/).
SHOTS = Path(os.environ.get("CONSOLE_SHOTS", ROOT / "reports" / "console"))
SHOT_PREFIX = os.environ.get("CONSOLE_SHOT_PREFIX", "")
K = 10
RACE_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        reason = "the browser test needs Debian's chromium and chromium-driver (make install)"
        if os.environ.get(REQUIRE_DOCKER) == "1":
            pytest.fail(f"{REQUIRE_DOCKER}=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--window-size=1280,800"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def run_race(browser: WebDriver, stack: Stack, name: str, **settings: str) -> dict[str, float]:
    """Open the page with these settings (its deep link), press Run, wait for "done", save a
    screenshot; returns each side's wall time in ms as the page shows it."""
    query = "&".join(f"{key}={value}" for key, value in {"requests": str(K), **settings}.items())
    browser.get(f"http://127.0.0.1:{stack.env['CONSOLE_PORT']}/?{query}")
    browser.find_element(By.ID, "run").click()
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, RACE_TIMEOUT_S).until(
        lambda _: (
            status.text in ("done", "the race ended early") or status.text.startswith("refused")
        )
    )
    assert status.text == "done", status.text
    save_full_page(browser, name)
    walls = {}
    for side in ("sync", "async"):
        cell = browser.find_element(By.CSS_SELECTOR, f"#side-{side} td[data-name='wall time']")
        walls[side] = float(cell.get_attribute("data-value") or "nan")
    return walls


def save_full_page(browser: WebDriver, name: str) -> None:
    """The whole page, every row and the colour key below them, as Chromium draws it (the
    DevTools protocol's capture beyond the viewport: a headless window is no taller than its
    screen), and beside it what made it: the command, the commit and the date."""
    # Before the picture is written: a new one makes the checkout dirty.
    meta = run_meta(f"make screenshot (the browser test's {name} race)")
    page = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": page["width"], "height": page["height"], "scale": 1}
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / f"{SHOT_PREFIX}{name}.png").write_bytes(base64.b64decode(shot["data"]))
    write_json(SHOTS / f"{SHOT_PREFIX}{name}.json", {"meta": meta})


def delays_ms(browser: WebDriver) -> list[float]:
    legend = browser.find_element(By.ID, "legend").get_attribute("data-delays") or "{}"
    return list(json.loads(legend).values())


def rows(browser: WebDriver, side: str) -> list[int]:
    """How many source bars each drawn row of one side has."""
    drawn = browser.find_elements(By.CSS_SELECTOR, f"#side-{side} svg g.row")
    return [len(row.find_elements(By.CSS_SELECTOR, "rect.call")) for row in drawn]


def no_browser_errors(browser: WebDriver) -> None:
    log = browser.get_log("browser")  # type: ignore[no-untyped-call]
    errors = [entry for entry in log if entry["level"] == "SEVERE"]
    assert errors == []


def test_the_race_shows_the_staircase_and_the_overlap(browser: WebDriver, stack: Stack) -> None:
    walls = run_race(browser, stack, "news")
    assert rows(browser, "sync") == [3] * K and rows(browser, "async") == [3] * K
    delays = delays_ms(browser)
    # K=10 fits the threadpool and the pool: each side's last answer waits one fan-out.
    sync_ratio, async_ratio = walls["sync"] / sum(delays), walls["async"] / max(delays)
    record("console K=10: sync wall / sum(d)", sync_ratio, "0.98 to 1.5")
    record("console K=10: async wall / max(d)", async_ratio, "0.98 to 1.5")
    assert 0.98 <= sync_ratio <= 1.5 and 0.98 <= async_ratio <= 1.5
    no_browser_errors(browser)


def test_the_blocking_route_queues_across_requests(browser: WebDriver, stack: Stack) -> None:
    walls = run_race(browser, stack, "blocking", async_route="blocking")
    delays = delays_ms(browser)
    # One event loop: the last of K waits about K fan-outs of sum(d).
    ratio = walls["async"] / (K * sum(delays))
    record("console K=10 blocking: last answer / (K x one alone)", ratio, "0.75 to 1.5")
    assert 0.75 <= ratio <= 1.5
    no_browser_errors(browser)


def test_a_fault_shows_red_bars_and_partial_answers(browser: WebDriver, stack: Stack) -> None:
    run_race(browser, stack, "fault", fault="gazette:error")
    for side in ("sync", "async"):
        failed = browser.find_elements(By.CSS_SELECTOR, f"#side-{side} rect.call.failed")
        partial = browser.find_elements(By.CSS_SELECTOR, f"#side-{side} g.row.partial")
        assert len(failed) == K and len(partial) == K
        assert {bar.get_attribute("data-source") for bar in failed} == {"gazette"}
    no_browser_errors(browser)


def test_bad_input_is_refused_with_the_field_named(browser: WebDriver, stack: Stack) -> None:
    """The page takes its settings from its link, and shows the console's 422 as text."""
    browser.get(f"http://127.0.0.1:{stack.env['CONSOLE_PORT']}/?requests=3&fault=reuters:hang")
    assert browser.find_element(By.NAME, "fault").get_attribute("value") == "reuters:hang"
    browser.find_element(By.ID, "run").click()
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 30).until(lambda _: status.text.startswith("refused"))
    assert status.text.startswith("refused: fault: ") and "unknown source" in status.text


def test_the_page_fits_a_narrow_screen(browser: WebDriver, stack: Stack) -> None:
    browser.set_window_size(420, 900)
    try:
        run_race(browser, stack, "narrow", requests="3")
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0  # nothing scrolls sideways: the two sides stack
    finally:
        browser.set_window_size(1280, 800)
