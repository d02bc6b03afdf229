"""Downloads with a failing downloads folder, on the real MDD version of the seed (about 81,000
records): what streaming from the database costs against serving a built file.

Times are printed against baselines measured in the same run: the first request of a
download with a healthy folder (which builds its file) and a request served from that file.
The failing folder is one that cannot be created (its parent is a file), so no root is needed.
Every streamed answer is checked to be the very bytes of the built file.

    .venv/bin/python bench/degraded_downloads.py [--pg URL]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from load_publish import fresh_postgres

from isd_service.entrypoints.app import create_app
from isd_service.entrypoints.cli.database import upgrade_database

URLS = ["/api/v1/versions/374/snapshot?format=json", "/api/v1/versions/374/snapshot?format=csv",
        "/api/v1/versions/374/mdd.zip", "/api/v1/versions/374/mdd/Market_Participant_Role.csv"]


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def run(url: str, tmp: Path) -> list[tuple[str, str]]:
    healthy, broken = tmp / "healthy", tmp / "not-a-folder" / "downloads"
    (tmp / "not-a-folder").write_text("a file where the folder's parent should be")
    # Built on request: this measures that path (and streaming), not the background builder.
    app = create_app({"DATABASE_URL": url, "DOWNLOADS_DIR": str(healthy),
                      "DOWNLOAD_BUILDS": "on-request"})
    with app.app_context():
        upgrade_database(app)
    result = app.test_cli_runner().invoke(args=["seed", "--if-empty"])
    assert result.exit_code == 0, result.output
    client = app.test_client()

    def get(path: str, **headers: str) -> bytes:
        response = client.get(path, headers=headers, buffered=True)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return response.get_data()

    out = []
    name = url.split(":")[0]
    manifest_s, _ = timed(lambda: get("/api/v1/versions/374"))
    out.append((f"{name}: manifest, nothing built (hashes every listed download)",
                f"{manifest_s:.2f} s"))
    app.config["DOWNLOADS_DIR"] = str(tmp / "built-by-cli")
    build_s, _ = timed(lambda: app.test_cli_runner().invoke(args=["downloads", "build"]))
    out.append((f"{name}: isd downloads build (every listed file, what a manifest did before)",
                f"{build_s:.2f} s, the manifest's hashing {manifest_s / build_s:.2f}x of it"))
    for path in URLS:
        app.config["DOWNLOADS_DIR"] = str(healthy)
        build_s, body = timed(lambda p=path: get(p, **{"Accept-Encoding": "identity"}))
        file_s, again = timed(lambda p=path: get(p, **{"Accept-Encoding": "identity"}))
        assert again == body
        app.config["DOWNLOADS_DIR"] = str(broken)
        stream_s, streamed = timed(lambda p=path: get(p, **{"Accept-Encoding": "identity"}))
        gz_s, _ = timed(lambda p=path: get(p, **{"Accept-Encoding": "gzip"}))
        assert hashlib.sha256(streamed).digest() == hashlib.sha256(body).digest()
        short = path.removeprefix("/api/v1/versions/374/")
        out.append((f"{name}: {short} ({len(body):,} bytes) streamed, failing folder",
                    f"{stream_s:.2f} s = {stream_s / file_s:.0f}x serving the file "
                    f"({file_s * 1000:.0f} ms), {stream_s / build_s:.2f}x its first "
                    f"(building) request ({build_s:.2f} s); gzip {gz_s:.2f} s"))
    app.extensions["isd_db"].engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="a PostgreSQL URL (its database is emptied) as well")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        (tmp / "sqlite").mkdir()
        rows = run(f"sqlite:///{tmp / 'sqlite' / 'isd.sqlite3'}", tmp / "sqlite")
        if args.pg:
            (tmp / "pg").mkdir()
            fresh_postgres(args.pg)
            rows += run(args.pg, tmp / "pg")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
