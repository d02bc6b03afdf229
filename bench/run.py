"""The benchmark suite, one command; every figure is a ratio against a baseline of the same run.

    python bench/run.py [--records 1000000 10000000] [--small 100000]
                        [--pg postgresql+psycopg://...] [--mdd ../shared/mdd]
                        [--results bench/RESULTS.md]

Needs a PostgreSQL database it may empty (default isd_bench on 127.0.0.1), Debian's nginx
(`apt-get install -y nginx-light`) and curl. It measures:

- load: records/s for a real MDD version and for synthetic versions of each --records size,
  against PostgreSQL COPY of the same rows into a plain table, and the peak RSS of the
  process that loaded (a child, bench/load_once.py);
- publish: seconds for each --records size, and for about 1,000 changes on each store;
- delta(N-1, N) with about 1,000 changes on a --small store and on each --records store,
  against diffing the two full snapshots;
- background builds: the largest store's second version's downloads built by a builder
  process while requests ask for them (bench/background_builds.py);
- download: a full snapshot of the largest store through gunicorn (gunicorn.conf.py) against
  nginx serving the same file, with curl;
- memory: peak RSS of the gunicorn worker that built and streamed that snapshot;
- "anything new?": requests/s for /versions/latest with and without If-None-Match.

It also runs bench/load_publish.py (real MDD versions on SQLite and PostgreSQL) and writes
everything, with the machine, to the results file.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from background_builds import run as background_run
from load_publish import (
    copy_baseline,
    files_of,
    fresh_postgres,
    full_diff,
    timed,
    without_relations,
)
from load_publish import run as run_real_mdd

from isd_service import PROJECT_ROOT
from isd_service.adapters.repository import get_version, rows_between, working_catalogue
from isd_service.domain import delta
from isd_service.entrypoints.app import create_app
from isd_service.entrypoints.cli.bench import generate
from isd_service.entrypoints.cli.database import upgrade_database
from isd_service.entrypoints.flask_db import session, uow
from isd_service.service_layer.drafts import load
from isd_service.service_layer.publishing import publish

Results = list[tuple[str, str]]
NOTES = "## Notes"


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        memory = f"{int(mem) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        memory = "unknown RAM"
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{cpu}, {os.cpu_count()} cpus, {memory}; {platform.platform()}; Python "
            f"{platform.python_version()}; {pg or 'psql not found'}")


def high_water_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_and_publish(url: str, folders: list[Path], first: int) -> dict[str, Any]:
    """Load and publish each folder into a fresh store; time the first and the deltas."""
    fresh_postgres(url)
    app = create_app({"DATABASE_URL": url})
    out: dict[str, Any] = {}
    with app.app_context():
        upgrade_database(app)
        unit = uow()
        db = unit.session
        without_relations(unit)
        for i, folder in enumerate(folders):
            files = files_of(folder)
            if i == 0:
                # In a process of its own, from the files' paths, as `isd load` runs: its
                # peak RSS is the load's (this process has held two snapshots by now).
                child = subprocess.run(
                    [sys.executable, str(Path(__file__).parent / "load_once.py"), url,
                     str(folder)], check=True, capture_output=True, text=True)
                first_load = json.loads(child.stdout.splitlines()[-1])
                load_s = first_load["load_s"]
                out.update(load_peak=first_load["load_peak"],
                           peak_before=first_load["peak_before"])
            else:
                load_s, record = timed(lambda f=files: load(  # type: ignore[misc]
                    unit, files=f, fmt="mdd-csv", mode="replace", actor="bench",
                    organisation=None))
            number = first if i == 0 else None
            pub_s, version = timed(lambda n=number: publish(  # type: ignore[misc]
                unit, actor="bench", organisation=None, version=n))
            if i == 0:
                out.update(files=files, load_s=load_s, publish_s=pub_s,
                           records=version.record_count)
            else:
                out.update(changes=record.inserted + record.updated + record.deleted,
                           publish_changes_s=pub_s)
        if len(folders) > 1:
            old = get_version(db, first + len(folders) - 2)
            new = get_version(db, first + len(folders) - 1)
            assert old is not None and new is not None
            times = []
            for _ in range(5):
                seconds, count = timed(lambda: sum(1 for _ in delta.iter_changes(
                    old, new, lambda e, m, n: rows_between(db, e, m, n))))
                times.append(seconds)
            entities = list(new.entities)
            diff_s, diff_count = timed(lambda: full_diff(db, entities, old.number, new.number))
            assert count == diff_count, (count, diff_count)
            out.update(delta_s=statistics.median(times), delta_count=count, diff_s=diff_s)
        db.close()
    app.extensions["isd_db"].engine.dispose()
    return out


# --- web processes ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, path: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                conn.close()
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answered on port {port} within {seconds}s")


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def curl_throughput(url: str, runs: int = 5) -> tuple[float, int]:
    """Median bytes/s of full downloads to /dev/null, and the size."""
    speeds, size = [], 0
    for _ in range(runs):
        result = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}",
             url], capture_output=True, text=True, check=True, timeout=600)
        speed, size_text = result.stdout.split()
        speeds.append(float(speed))
        size = int(size_text)
    return statistics.median(speeds), size


def requests_per_second(port: int, path: str, headers: dict[str, str], total: int = 2000,
                        clients: int = 4) -> tuple[float, int]:
    """Requests/s of ``clients`` threads, each a new connection per request; and the status."""
    statuses: list[int] = []
    per_client = total // clients

    def work() -> None:
        for _ in range(per_client):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
            conn.close()

    threads = [threading.Thread(target=work) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    return len(statuses) / seconds, statuses[-1]


NGINX_CONF = """worker_processes 2;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ application/x-ndjson ndjson; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def web_benchmarks(url: str, number: int, tmp: Path) -> Results:
    """Serve the store at ``url`` with gunicorn, and the same file with nginx; compare."""
    out: Results = []
    downloads = tmp / "downloads"
    port = free_port()
    env = {**os.environ, "ISD_DATABASE_URL": url, "ISD_BIND": f"127.0.0.1:{port}",
           "ISD_WORKERS": "2", "ISD_DOWNLOADS_DIR": str(downloads), "ISD_LOG_LEVEL": "warning",
           # The first request builds the snapshot (minutes at 10M records), as no builder
           # runs here: what a request costs without one.
           "ISD_TIMEOUT": "3600", "ISD_DOWNLOAD_BUILDS": "on-request"}
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "gunicorn.conf.py")]
    with process(gunicorn, env, tmp / "gunicorn.log") as proc:
        wait_for(port, "/api/v1/versions/latest")
        workers = children(proc.pid)
        before = {pid: peak_rss_mib(pid) for pid in workers}
        path = f"/api/v1/versions/{number}/snapshot?format=ndjson"
        build_s, _ = timed(lambda: subprocess.run(
            ["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}{path}"],
            check=True, timeout=1800))
        built = peak_rss_mib_max(workers)
        service_bps, size = curl_throughput(f"http://127.0.0.1:{port}{path}")
        streamed = peak_rss_mib_max(workers)
        out.append(("snapshot build on first request (ndjson)",
                    f"{build_s:.1f} s for {size / 1e6:.0f} MB"))
        out.append(("web worker peak RSS",
                    f"{max(before.values()):.0f} MiB at start, {built:.0f} MiB after building "
                    f"the {size / 1e6:.0f} MB snapshot, {streamed:.0f} MiB after streaming "
                    f"it 5 more times"))
        latest = "/api/v1/versions/latest"
        rps_full, status_full = requests_per_second(port, latest, {})
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", latest)
        response = conn.getresponse()
        response.read()
        etag = response.headers["ETag"]
        conn.close()
        rps_304, status_304 = requests_per_second(port, latest, {"If-None-Match": etag})
        assert (status_full, status_304) == (200, 304), (status_full, status_304)
        out.append(("`latest` requests/s (4 clients, 2 workers)",
                    f"{rps_full:,.0f} with a body (200), {rps_304:,.0f} with If-None-Match "
                    f"(304): {rps_304 / rps_full:.2f}x"))
    files = [p for p in downloads.rglob("snapshot.ndjson")]
    assert len(files) == 1, files
    nginx_root = tmp / "nginx_root"
    nginx_root.mkdir()
    os.link(files[0], nginx_root / "snapshot.ndjson")
    for d in (tmp, nginx_root):
        d.chmod(0o755)
    nginx_port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=nginx_port, root=nginx_root))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with process([nginx, "-c", str(conf), "-p", str(tmp)], dict(os.environ),
                 tmp / "nginx.log"):
        wait_for(nginx_port, "/snapshot.ndjson")
        nginx_bps, nginx_size = curl_throughput(f"http://127.0.0.1:{nginx_port}/snapshot.ndjson")
    assert nginx_size == size
    out.append(("full snapshot download, gunicorn vs nginx (curl, median of 5)",
                f"{service_bps / 1e6:,.0f} MB/s vs {nginx_bps / 1e6:,.0f} MB/s: "
                f"{service_bps / nginx_bps:.2f}x nginx (target >= 0.7x)"))
    return out


def peak_rss_mib_max(pids: list[int]) -> float:
    return max(peak_rss_mib(pid) for pid in pids)


# --- the whole run ---------------------------------------------------------------------------

def step(results: Results, name: str, fn: Callable[[], Results]) -> None:
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    for key, value in fn():
        print(f"   {key}: {value}", flush=True)
        results.append((key, value))
    print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)


def main() -> None:
    # One log line per request: the background build step asks every 0.2 s.
    logging.getLogger("isd_service.requests").disabled = True
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="sizes of the big synthetic stores, smallest first")
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--mdd", type=Path, default=PROJECT_ROOT.parent / "shared" / "mdd")
    parser.add_argument("--pg", default=os.environ.get(
        "ISD_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/isd_bench"))
    parser.add_argument("--results", type=Path, default=PROJECT_ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    results: Results = []
    started = datetime.now(UTC)
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        app = create_app({"DATABASE_URL": f"sqlite:///{tmp}/catalogue.sqlite3"})
        with app.app_context():
            upgrade_database(app)
            catalogue = working_catalogue(session())
            session().close()
        app.extensions["isd_db"].engine.dispose()

        stores: dict[str, dict[str, Any]] = {}

        def synthetic(records: int, changes: int) -> tuple[Path, Path]:
            out = tmp / f"synthetic_{records}"
            generate(catalogue, records=records, versions=2, out=out, seed=1,
                     change_share=changes / records, first=1)
            return out / "1", out / "2"

        def real_mdd() -> Results:
            out = run_real_mdd("sqlite", f"sqlite:///{tmp}/real.sqlite3", args.mdd, 370, 371)
            fresh_postgres(args.pg)
            out += run_real_mdd("postgresql", args.pg, args.mdd, 370, 371)
            return out

        def small() -> Results:
            first, second = synthetic(args.small, 1000)
            found = load_and_publish(args.pg, [first, second], 1)
            stores["small"] = found
            return [(f"delta on a {found['records']:,}-record store "
                     f"({found['delta_count']} changes)",
                     f"{found['delta_s'] * 1000:.0f} ms, {found['diff_s'] / found['delta_s']:.0f}x "
                     f"faster than diffing both snapshots ({found['diff_s']:.1f} s)")]

        def big(records: int) -> Results:
            first, second = synthetic(records, 1000)
            found = load_and_publish(args.pg, [first, second], 1)
            shutil.rmtree(first.parent)
            copy_s = copy_baseline(args.pg, found["files"])
            n = found["records"]
            little = stores["small"]
            return [
                (f"load {n:,} synthetic records (PostgreSQL)",
                 f"{found['load_s']:.1f} s, {n / found['load_s']:,.0f} records/s; COPY of the "
                 f"same rows {copy_s:.1f} s: load is {found['load_s'] / copy_s:.1f}x COPY "
                 f"(target within 8x); the process's peak RSS rose from "
                 f"{found['peak_before']:,.0f} to {found['load_peak']:,.0f} MiB during it "
                 f"(target at most 1 GiB)"),
                (f"publish {n:,} records (PostgreSQL)",
                 f"{found['publish_s']:.1f} s" + (" (target < 60 s)" if n <= 1_000_000 else "")),
                (f"publish {found['changes']:,} changes on the {n:,}-record store (PostgreSQL)",
                 f"{found['publish_changes_s']:.2f} s, "
                 f"{found['publish_changes_s'] / found['publish_s']:.3f}x the first "
                 f"publication (target at most 10 s)"),
                (f"delta on a {n:,}-record store ({found['delta_count']} changes)",
                 f"{found['delta_s'] * 1000:.0f} ms, {found['diff_s'] / found['delta_s']:.0f}x "
                 f"faster than diffing both snapshots ({found['diff_s']:.1f} s); "
                 f"{found['delta_s'] / little['delta_s']:.2f}x the time on the "
                 f"{little['records']:,}-record store (target within 2x)"),
            ]

        step(results, "real MDD versions (bench/load_publish.py)", real_mdd)
        step(results, f"synthetic {args.small:,}-record store", small)
        for records in sorted(args.records):
            step(results, f"synthetic {records:,}-record store",
                 lambda r=records: big(r))  # type: ignore[misc]
        largest = max(args.records)

        def background() -> Results:
            # Version 2 of the largest store, published above with no builder running: its
            # build job waits; a builder takes it while requests ask for its downloads.
            folder = tmp / "background"
            folder.mkdir()
            try:
                return background_run(args.pg, largest, folder, existing=2)
            finally:
                shutil.rmtree(folder)

        step(results, f"downloads of version 2 of the {largest:,}-record store, built in the "
             "background (bench/background_builds.py)", background)
        step(results, "web: gunicorn vs nginx, memory, latest", lambda: web_benchmarks(
            args.pg, 2, tmp))
    finished = datetime.now(UTC)
    old = args.results.read_text(encoding="utf-8") if args.results.exists() else ""
    before, when = previous_results(old)
    lines = ["# Benchmark results", "",
             f"`python bench/run.py --records {' '.join(map(str, sorted(args.records)))} "
             f"--small {args.small}`, "
             f"{started:%Y-%m-%d %H:%M} to {finished:%H:%M} UTC.", "",
             f"Machine: {machine()}.", "",
             f"| measure | result | previous run{f' ({when})' if when else ''} |",
             "|---|---|---|"]
    lines += [f"| {k} | {v} | {before.get(k, '-')} |" for k, v in results]
    # The written notes (what the figures mean, what limits them) outlive a new run.
    notes = old[old.index(NOTES):] if NOTES in old else ""
    args.results.write_text("\n".join(lines) + "\n" + (f"\n{notes}" if notes else ""),
                            encoding="utf-8")
    print(f"written to {args.results}")


def previous_results(text: str) -> tuple[dict[str, str], str]:
    """The previous run's figures by measure (its first table) and when it ran, so that the
    new table shows them side by side."""
    head = text.split(NOTES)[0]
    found = re.search(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}) to", head)
    figures = {}
    for line in head.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and cells[0] not in ("measure", "---"):
            figures[cells[0]] = cells[1]
    return figures, found.group(1) if found else ""


if __name__ == "__main__":
    main()
