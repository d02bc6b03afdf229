"""The admin console driven for real: Selenium with Debian's headless chromium and
chromium-driver (the driver's path given, nothing ever downloaded) against a live server.

The whole story with four eyes on: a publisher (alice) signs in, uploads a broken file and
sees its errors, uploads the fixed file, reviews the field-level diff and requests
publication; a second publisher (bob) approves; the new version is on the public home page.
A screenshot of each admin page goes where the public pages' screenshots go. Without chromium
or its driver these tests are skipped.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from isd_service.entrypoints.flask_db import uow
from tests.conftest import create_token, database_of, make_app, reset
from tests.e2e.test_browser import SHOTS

DRIVER = Path("/usr/bin/chromedriver")
BROWSER = shutil.which("chromium")
webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.skipif(
    BROWSER is None or not DRIVER.exists(),
    reason="chromium or chromium-driver is not installed (apt-get install chromium "
           "chromium-driver)")

BROKEN = "gsp_group_id,gsp_group_name\n_A,East Anglia\n_B,\n_TOO_LONG_ID,x\n"
FIXED = "gsp_group_id,gsp_group_name\n_A,East Anglia\n_B,East Midlands\n"


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[str, dict[str, str], int]]:
    tmp = tmp_path_factory.mktemp("admin-browser")
    app: Flask = make_app(database_url, tmp)
    app.config["PUBLICATION_APPROVALS"] = 1
    with app.app_context():
        reset(app)
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    seeded = app.test_client().get("/api/v1/versions/latest").get_json()["version"]
    with app.app_context():
        tokens = {name: create_token(uow(), organisation="ISDA", roles=[role], name=name)
                  for name, role in (("alice", "publisher"), ("bob", "publisher"),
                                     ("carol", "admin"))}
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", tokens, seeded
    server.shutdown()
    thread.join(30)
    database_of(app).engine.dispose()


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    # Never let Selenium Manager fetch a browser or a driver: both paths are given.
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1400",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"admin-{name}.png"
    path.unlink(missing_ok=True)
    assert driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {path}")


def by(css: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    return By.CSS_SELECTOR, css


def sign_in(driver: Any, base: str, token: str, *, screenshot: bool = False) -> None:
    driver.get(f"{base}/admin/sign-in")
    driver.find_element(*by("#token")).send_keys(token)
    if screenshot:
        shot(driver, "sign-in")
    submit(driver, driver.find_element(*by("form button[type=submit]")))
    assert "Signed in as" in driver.page_source


def submit(driver: Any, button: Any) -> None:
    """Click a form's button and wait for the page it leads to (a click does not wait for the
    navigation it starts: reading the page at once may read the old one).

    The old page is marked with a script variable and the wait is for a complete document
    without it. Asking the driver about the old button instead (staleness) races the
    navigation: chromedriver may then answer "unknown error: Node with given id does not
    belong to the document" rather than "stale element", so errors during the switch are
    retried, not raised."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.isdOldPage = true;")
    button.click()
    WebDriverWait(driver, 30, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return window.isdOldPage === undefined && document.readyState === 'complete';"))


def sign_out(driver: Any) -> None:
    submit(driver, driver.find_element(*by("nav.admin-nav form button")))
    assert "signed out" in driver.page_source


def upload(driver: Any, base: str, path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    driver.get(f"{base}/admin/upload")
    driver.find_element(*by("#files")).send_keys(str(path))
    Select(driver.find_element(*by("#format"))).select_by_value("csv")
    Select(driver.find_element(*by("#mode"))).select_by_value("upsert")
    submit(driver, driver.find_element(*by("form[enctype] button[type=submit]")))


def test_the_story_in_chromium(live: tuple[str, dict[str, str], int], browser: Any,
                               tmp_path: Path) -> None:
    base, tokens, seeded = live
    broken, fixed = tmp_path / "broken" / "gsp_group.csv", tmp_path / "fixed" / "gsp_group.csv"
    for path, content in ((broken, BROKEN), (fixed, FIXED)):
        path.parent.mkdir()
        path.write_text(content, encoding="utf-8")

    sign_in(browser, base, tokens["alice"], screenshot=True)
    upload(browser, base, broken)
    assert "Refused: nothing was loaded" in browser.page_source
    rows = browser.find_elements(*by("table.errors tbody tr"))
    lines = [int(r.find_elements(*by("td"))[2].text or 0) for r in rows]
    assert lines == sorted(lines) and {3, 4} <= set(lines)
    shot(browser, "upload-refused")

    upload(browser, base, fixed)
    assert "accepted" in browser.page_source
    changes = browser.find_element(*by("table.field-changes")).text
    assert "Eastern" in changes and "East Anglia" in changes  # old -> new
    shot(browser, "draft")

    browser.get(f"{base}/admin/publications")
    submit(browser, browser.find_element(*by("form[action$='/admin/publications'] button")))
    assert "awaits 1 approval" in browser.page_source
    request_button = browser.find_element(*by("button[id^=approve-]"))
    request_id = request_button.get_attribute("id").removeprefix("approve-")
    shot(browser, "publications")
    submit(browser, request_button)  # alice asked: refused
    assert "alice asked for publication request" in browser.page_source
    browser.get(f"{base}/admin/")
    sign_out(browser)

    sign_in(browser, base, tokens["bob"])
    assert f"#request-{request_id}" in browser.page_source
    shot(browser, "dashboard")
    browser.get(f"{base}/admin/publications")
    submit(browser, browser.find_element(*by(f"#approve-{request_id}")))
    assert f"approved: version {seeded + 1} is published" in browser.page_source
    browser.get(f"{base}/")
    assert f"Latest version: {seeded + 1}" in browser.find_element(*by("main")).text
    browser.get(f"{base}/admin/")
    sign_out(browser)


@pytest.mark.parametrize("page", ["releases", "catalogue", "tokens", "webhooks"])
def test_each_admin_page_renders_for_an_admin(live: tuple[str, dict[str, str], int],
                                              browser: Any, page: str) -> None:
    base, tokens, _seeded = live
    sign_in(browser, base, tokens["carol"])
    browser.get(f"{base}/admin/{page}")
    assert browser.find_element(*by("main h1")).text
    assert "Refused" not in browser.page_source
    shot(browser, page)

