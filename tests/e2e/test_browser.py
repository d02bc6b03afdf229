"""The pages end to end in headless Chromium against a live server on 127.0.0.1.

Each page is loaded as a phone would (412 px wide) and its DOM checked; a screenshot of each is
saved in tests/screenshots/ (or ISD_SCREENSHOTS), which the run keeps and git ignores. The
browser is Debian's chromium (.ci/run installs it); without it these tests are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from isd_service import PROJECT_ROOT
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer import calendar
from tests.conftest import database_of, make_app, reset
from tests.integration.test_pages import three_versions

SHOTS = Path(os.environ.get("ISD_SCREENSHOTS", PROJECT_ROOT / "tests" / "screenshots"))
BROWSER = shutil.which("chromium")
pytestmark = pytest.mark.skipif(BROWSER is None,
                                reason="chromium is not installed (apt-get install chromium)")

PAGES = {
    "home": ("/", "Version 4\n     publishes 2099-01-12 12:00 UTC"),
    "versions": ("/versions", "<h1>Versions</h1>"),
    "version": ("/versions/3", "<h1>Version 3</h1>"),
    "entity": ("/versions/3/entities/line_loss_factor_class", "<h1>Line Loss Factor Class</h1>"),
    "history": ("/entities/gsp_group/history?gsp_group_id=_A", "East Anglia</mark>"),
    "diff": ("/diff?from=1&to=3", "Changes from version 1 to 3"),
    "releases": ("/releases", "<td>2099-01-20</td>"),
    "api-docs": ("/api-docs", "<code>GET /api/v1/deltas</code>"),
    "dictionary": ("/catalogue", "<h1>Data dictionary, version 3</h1>"),
    "dictionary-version": ("/versions/1/catalogue", "<h1>Data dictionary, version 1</h1>"),
}


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("browser")
    app: Flask = make_app(database_url, tmp)
    with app.app_context():
        reset(app)
    three_versions(app, tmp)
    with app.app_context():
        calendar.create_release(
            uow(), change_deadline=datetime(2099, 1, 5, 12, tzinfo=UTC),
            publish_at=datetime(2099, 1, 12, 12, tzinfo=UTC), go_live_date=date(2099, 1, 20),
            version=4, actor="test")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(30)
    database_of(app).engine.dispose()


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    command = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_renders_in_chromium(live: str, name: str, tmp_path: Path) -> None:
    path, expected = PAGES[name]
    dom = chromium(tmp_path, "--window-size=412,900", "--dump-dom", live + path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert expected in dom.stdout
    assert '<main id="main">' in dom.stdout and "Skip to content" in dom.stdout
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    result = chromium(tmp_path, "--window-size=412,1400", f"--screenshot={shot}", live + path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {shot}")
