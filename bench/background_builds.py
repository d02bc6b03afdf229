"""Downloads built in the background after publication, on a synthetic version.

    .venv/bin/python bench/background_builds.py [--records 1000000] [--pg URL]
    .venv/bin/python bench/background_builds.py --pg URL --existing N

Generates a version with `isd bench generate`, loads it, starts a builder process (`isd
downloads worker`, as `isd serve` and the scheduler run one), publishes with `isd publish`,
and meanwhile asks for the new version's listed downloads every 0.2 s. Printed:

- the time from the publication's commit to every listed download built (the builder's
  pick-up, at most one poll, then its build), against a baseline from the same run:
  `isd downloads build` of the same version into another folder, what the first request for
  each file used to wait for in total;
- the latency of the 503 answers that requests got while the build ran (median, 95th
  percentile, worst), against the same baseline: each answered instead of waiting;
- that once built, every download is served with the hash its manifest lists.

The requests go through the app in this process (no HTTP server): their latency is the
service's own work.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from load_publish import fresh_postgres
from sqlalchemy import select, text

from isd_service.adapters.orm import DownloadBuild
from isd_service.entrypoints.app import create_app
from isd_service.entrypoints.cli.database import upgrade_database
from isd_service.entrypoints.flask_db import new_uow

URLS = ["/api/v1/versions/{n}/snapshot?format=json", "/api/v1/versions/{n}/snapshot.ndjson",
        "/api/v1/versions/{n}/mdd.zip", "/api/v1/versions/{n}/SHA256SUMS",
        "/api/v1/versions/{n}"]
DEADLINE = 3600.0  # bounds the wait for the builder


def job(app: Any, number: int) -> DownloadBuild | None:
    with app.app_context(), new_uow(app) as unit:
        return unit.session.scalar(select(DownloadBuild).where(DownloadBuild.version == number))


def cli(app: Any, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def run(url: str, records: int, tmp: Path, existing: int | None = None
        ) -> list[tuple[str, str]]:
    name = url.split(":")[0].split("+")[0]
    folder = tmp / "downloads"
    env = {**os.environ, "ISD_DATABASE_URL": url, "ISD_DOWNLOADS_DIR": str(folder)}
    app = create_app({"DATABASE_URL": url, "DOWNLOADS_DIR": str(folder)})
    if existing is not None:
        return built_in_background(app, env, name, existing, None, tmp)
    with app.app_context():
        upgrade_database(app)
        # Synthetic records name no real participants: the relations are not measured here.
        with app.extensions["isd_db"].engine.begin() as conn:
            conn.execute(text("UPDATE catalogue_entity SET foreign_keys = NULL"))
    cli(app, "bench", "generate", "--records", str(records), "--versions", "1",
        "--out", str(tmp / "generated"))
    files = sorted(str(p) for p in (tmp / "generated" / "1").glob("*.csv"))
    started = time.perf_counter()
    cli(app, "load", "--mode", "replace", *files)
    print(f"{name}: loaded {records:,} records in {time.perf_counter() - started:.1f}s",
          flush=True)

    return built_in_background(app, env, name, None, records, tmp)


def built_in_background(app: Any, env: dict[str, str], name: str, existing: int | None,
                        records: int | None, tmp: Path) -> list[tuple[str, str]]:
    """Publish the loaded draft (or, with ``existing``, take that version's build job, queued
    when it was published with no builder running) and time its background build."""
    out: list[tuple[str, str]] = []
    builder = subprocess.Popen(
        [sys.executable, "-c", "from isd_service.entrypoints.cli import main; main()",
         "downloads", "worker"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        started = time.perf_counter()
        if existing is None:
            number = int(cli(app, "publish").splitlines()[-1])
        else:
            number = existing
            queued = job(app, number)
            assert queued is not None and queued.state == "queued", \
                f"version {number} has no queued build job"
        committed = time.time()  # the commit is done when `isd publish` returns
        publish_s = time.perf_counter() - started
        client = app.test_client()
        waits: list[float] = []
        statuses: dict[int, int] = {}
        while time.time() - committed < DEADLINE:
            row = job(app, number)
            assert row is not None, "the publication queued no build"
            if row.state in ("done", "failed"):
                break
            for path in URLS:
                asked = time.perf_counter()
                # Not buffered: a file already built answers at once, and its body (GBs at
                # 10M records) is not read; a 503's few bytes are.
                response = client.get(path.format(n=number))
                if response.status_code != 200:
                    response.get_data()
                seconds = time.perf_counter() - asked
                response.close()
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 503:
                    assert response.headers["Retry-After"], "503 without Retry-After"
                    waits.append(seconds)
            time.sleep(0.2)
        row = job(app, number)
        assert row is not None and row.state == "done", row and (row.state, row.error)
        assert row.started_at and row.finished_at
    finally:
        builder.terminate()
        _, log = builder.communicate(timeout=60)
    ready_s = row.finished_at.timestamp() - committed
    build_s = (row.finished_at - row.started_at).total_seconds()
    pickup_s = row.started_at.timestamp() - committed

    manifest = client.get(f"/api/v1/versions/{number}", buffered=True).get_json()
    for entry in manifest["downloads"]:
        digest = hashlib.sha256()
        response = client.get(entry["url"])
        for chunk in response.response:  # streamed: a 10M snapshot is GBs
            digest.update(chunk)
        response.close()
        assert digest.hexdigest() == entry["sha256"], entry["url"]

    if existing is None:
        app.config["DOWNLOADS_DIR"] = str(tmp / "by-hand")
        started = time.perf_counter()
        cli(app, "downloads", "build", str(number))
        baseline_s = time.perf_counter() - started
        out.append((f"{name}: {records:,} records: publish (one transaction, job queued in "
                    "it)", f"{publish_s:.1f} s"))
        out.append((f"{name}: publication commit -> every listed download built "
                    f"({row.files} files, {(row.bytes or 0) / 1e6:,.0f} MB)",
                    f"{ready_s:.1f} s (pick-up {max(pickup_s, 0):.1f} s + build "
                    f"{build_s:.1f} s); {ready_s / baseline_s:.2f}x the baseline"))
        out.append((f"{name}: baseline: `isd downloads build` of the same version",
                    f"{baseline_s:.1f} s"))
    else:
        # No second build of a large version: the baseline is this build, what a request
        # would have waited for had it built the files itself.
        baseline_s = build_s
        out.append((f"{name}: version {number} ({row.files} files, "
                    f"{(row.bytes or 0) / 1e6:,.0f} MB): builder start -> every listed "
                    "download built",
                    f"{ready_s:.1f} s (pick-up {max(pickup_s, 0):.1f} s + build "
                    f"{build_s:.1f} s, the baseline)"))
    if waits:
        waits.sort()
        p95 = waits[min(len(waits) - 1, int(len(waits) * 0.95))]
        out.append((f"{name}: requests during the build: {len(waits)} answered 503 + "
                    f"Retry-After (statuses {dict(sorted(statuses.items()))})",
                    f"median {statistics.median(waits) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
                    f"worst {waits[-1] * 1000:.1f} ms; worst {waits[-1] / baseline_s:.5f}x "
                    "the baseline"))
    else:
        out.append((f"{name}: requests during the build", "none: the build was done first"))
    out.append((f"{name}: after the build", f"all {len(manifest['downloads'])} listed "
                "downloads served with their manifest's sha256"))
    if "built in" not in log:
        print(log, file=sys.stderr)
    return out


def main() -> None:
    logging.getLogger("isd_service.requests").disabled = True  # one line a request
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--pg", help="a PostgreSQL URL (emptied first) instead of SQLite")
    parser.add_argument("--existing", type=int, metavar="N",
                        help="with --pg: keep the store, and build version N, published "
                             "earlier with no builder running (its job queued)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if args.existing is not None:
            assert args.pg, "--existing needs --pg"
            url = args.pg
        elif args.pg:
            fresh_postgres(args.pg)
            url = args.pg
        else:
            url = f"sqlite:///{tmp / 'bench.sqlite3'}"
        for what, figure in run(url, args.records, tmp, args.existing):
            print(f"{what}: {figure}", flush=True)


if __name__ == "__main__":
    main()
