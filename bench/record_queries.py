"""Filtered record queries: latency and requests/s, with baselines from the same run.

    python bench/record_queries.py [--mdd ../shared/mdd] [--version 374]
                                   [--records 1500000] [--pg postgresql+psycopg://...]
                                   [--only sqlite|postgresql]

On each database (a SQLite file, and the PostgreSQL database --pg names, which it empties):
real MDD version --version is loaded and published, then a generated
Valid_MTC_LLFC_SSC_PC_Combination of --records rows (`isd bench generate --entity`) as the
next version. Then:

- latency: server time of GET /api/v1/entities/{id}/records (the app in this process, no
  network), median of repeated calls, for a match and a no match on a field of each kind,
  a list of values, effective_on, and effective_on with a field; each against two
  baselines measured here: the first unfiltered page (key order), and the old path (the
  entity walked in key order, filtered in Python: what the view did before);
- requests/s: 8 clients against gunicorn with its default workers (gunicorn.conf.py) at
  MDD size, against the unfiltered first page; with wrk when it is installed (a C client
  leaves the CPUs to the server), else 8 Python threads, each a new connection per request.
  With each rate, the CPU time the server's processes spent per request (gunicorn's, and on
  PostgreSQL its backends for the database): on a shared machine a rate says how much CPU
  the service got, the CPU per request what it costs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from load_publish import files_of, fresh_postgres, timed
from run import free_port, process, requests_per_second, wait_for
from sqlalchemy import create_engine, text

from isd_service import PROJECT_ROOT
from isd_service.adapters.repository import iter_snapshot, working_catalogue
from isd_service.domain.catalogue import EntityDef, FieldDef
from isd_service.domain.records import decode, project
from isd_service.entrypoints.app import create_app
from isd_service.entrypoints.cli.bench import generate
from isd_service.entrypoints.cli.database import upgrade_database
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer.drafts import load
from isd_service.service_layer.publishing import publish

BIG = "valid_mtc_llfc_ssc_pc_combination"
CLIENTS = 8
Results = list[tuple[str, str]]


def old_path(db: Any, entity: EntityDef, version: int, equals: dict[str, Any],
             on: str | None, limit: int) -> list[dict[str, Any]]:
    """The view as it was: walk the entity in key order, filter each record in Python."""
    out: list[dict[str, Any]] = []
    with closing(iter_snapshot(db, entity.id, version)) as rows:
        for _key, data in rows:
            record = project(entity, decode(data))
            if all(record.get(f) == v for f, v in equals.items()):
                if on is not None:
                    start = record.get(entity.effective_from or "")
                    end = record.get(entity.effective_to) if entity.effective_to else None
                    if not ((start is None or start <= on) and (end is None or on <= end)):
                        continue
                if len(out) == limit + 1:
                    break
                out.append(record)
    return out


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm: plans, caches
    times = []
    for _ in range(runs):
        seconds, _ = timed(fn)
        times.append(seconds)
    return statistics.median(times) * 1000


def sample(db: Any, entity: EntityDef, version: int) -> Iterator[dict[str, Any]]:
    with closing(iter_snapshot(db, entity.id, version)) as rows:
        for _key, data in rows:
            yield project(entity, decode(data))


def absent(fdef: FieldDef, seen: set[Any]) -> Any:
    """A valid value of the field that no record holds, or None if every one is taken."""
    candidates: list[Any] = {
        "string": ["ZZZZZZZZZZ"[: fdef.max_length or 10], "Q"],
        "integer": [987654321, -1],
        "date": ["1901-01-01", "2999-12-31"],
        "time": [f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 30)],
        "enum": list(fdef.values or []),
    }[fdef.type]
    return next((c for c in candidates if c not in seen), None)


def queries(db: Any, entity: EntityDef, version: int, kinds: list[str], on: str
            ) -> list[tuple[str, dict[str, Any]]]:
    """(label, equals/effective_on) for a match and a no match on a field of each kind."""
    records = list(sample(db, entity, version)) if entity.id != BIG else []
    if entity.id == BIG:  # 1.5M rows: take values from one page in the middle
        with closing(iter_snapshot(db, entity.id, version)) as rows:
            for i, (_key, data) in enumerate(rows):
                if i >= 750_000:
                    records.append(project(entity, decode(data)))
                if len(records) == 2000:
                    break
    middle = records[len(records) // 2]
    out: list[tuple[str, dict[str, Any]]] = []
    for kind in kinds:
        fdef = next(f for f in entity.fields
                    if f.type == kind and middle.get(f.id) is not None
                    and f.id not in (entity.effective_to,))
        seen = {r.get(fdef.id) for r in records} if entity.id != BIG else set()
        out.append((f"{kind} {fdef.id}={middle[fdef.id]} (match)", {fdef.id: middle[fdef.id]}))
        missing = absent(fdef, seen)
        if missing is not None:
            out.append((f"{kind} {fdef.id}={missing} (no match)", {fdef.id: missing}))
    first = entity.fields[0]
    others = sorted({r[first.id] for r in records} - {middle[first.id]})[:2]
    out.append((f"list {first.id} of 3 values", {first.id: [middle[first.id], *others]}))
    if entity.effective_from:
        out.append((f"effective_on={on}", {"effective_on": on}))
        string = next(f for f in entity.fields if f.type == "string" and f.id != first.id)
        out.append((f"effective_on={on} and {string.id}", {
            "effective_on": on, string.id: middle[string.id]}))
    return out


def path_of(entity_id: str, version: int, params: dict[str, Any], limit: int = 100) -> str:
    pairs: list[tuple[str, Any]] = [("version", version), ("limit", limit)]
    for name, value in params.items():
        pairs += [(name, v) for v in value] if isinstance(value, list) else [(name, value)]
    return f"/api/v1/entities/{entity_id}/records?{urlencode(pairs)}"


def latency(app: Any, db: Any, entity: EntityDef, version: int, kinds: list[str],
            old_runs: int, label: str) -> Results:
    client = app.test_client()

    def get(path: str) -> Callable[[], Any]:
        def call() -> Any:
            response = client.get(path)
            assert response.status_code == 200, (path, response.get_json())
            return response.get_json()
        return call

    out: Results = []
    unfiltered = median_ms(get(path_of(entity.id, version, {})), 30)
    out.append((f"{label}: first page unfiltered (baseline)", f"{unfiltered:.1f} ms"))
    for name, params in queries(db, entity, version, kinds, "2026-01-01"):
        new = median_ms(get(path_of(entity.id, version, params)), 30)
        equals = {k: v for k, v in params.items() if k != "effective_on"}
        if any(isinstance(v, list) for v in equals.values()):
            old = None  # the old path took one value per field
        else:
            old = median_ms(lambda e=equals, p=params: old_path(
                db, entity, version, e, p.get("effective_on"), 100), old_runs)
        page = get(path_of(entity.id, version, params))()
        out.append((f"{label}: {name}", f"{new:.1f} ms ({len(page['records'])} records), "
                    f"{new / unfiltered:.1f}x the unfiltered page"
                    + (f", {old / new:,.0f}x faster than the old path ({old:,.0f} ms)"
                       if old is not None else "")))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes (Linux /proc), those gone counting none."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def server_pids(master: int, url: str) -> list[int]:
    """gunicorn's processes, and on PostgreSQL the backends serving the bench database."""
    children = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    pids = [master, *(int(p) for p in children.stdout.split())]
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.connect() as conn:
            pids += list(conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()")).scalars())
        engine.dispose()
    return pids


def rate(port: int, path: str, total: int) -> tuple[float, int, int]:
    """(requests/s, requests made, status of the last) of 8 clients on ``path``."""
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-t2", f"-c{CLIENTS}", "-d10s",
                              f"http://127.0.0.1:{port}{path}"],
                             capture_output=True, text=True, check=True).stdout
        made = re.search(r"(\d+) requests in", out)
        per_second = re.search(r"Requests/sec:\s+([\d.]+)", out)
        assert made and per_second, out
        return (float(per_second.group(1)), int(made.group(1)),
                500 if "Non-2xx" in out else 200)
    rps, status = requests_per_second(port, path, {}, total=total, clients=CLIENTS)
    return rps, total, status


def throughput(url: str, version: int, llfc: EntityDef, tmp: Path, label: str) -> Results:
    port = free_port()
    env = {**os.environ, "ISD_DATABASE_URL": url, "ISD_BIND": f"127.0.0.1:{port}",
           "ISD_LOG_LEVEL": "warning", "ISD_DOWNLOADS_DIR": str(tmp / "downloads")}
    env.pop("ISD_WORKERS", None)  # the service's default workers
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "gunicorn.conf.py")]
    client = "wrk" if shutil.which("wrk") else "Python threads"
    out: Results = []
    with process(gunicorn, env, tmp / f"gunicorn-{label}.log") as master:
        wait_for(port, "/api/v1/versions/latest")
        base_path = path_of(llfc.id, version, {})
        rate(port, base_path, 200)  # warm: every worker's pool and caches
        base = 0.0
        for name, params in [
                ("unfiltered first page (baseline)", {}),
                ("market_participant_id=ZZZZ (no match)", {"market_participant_id": "ZZZZ"}),
                ("effective_on=2026-01-01", {"effective_on": "2026-01-01"}),
                ("market_participant_id=EELC", {"market_participant_id": "EELC"})]:
            path = path_of(llfc.id, version, params)
            pids = server_pids(master.pid, url)
            before = cpu_seconds(pids)
            rps, made, status = rate(port, path, 1600)
            cpu_ms = (cpu_seconds(pids) - before) * 1000 / made
            assert status == 200
            base = base or rps
            out.append((f"{label}: requests/s, {CLIENTS} clients ({client}), {llfc.id} {name}",
                        f"{rps:,.0f} ({rps / base:.2f}x the unfiltered page), server CPU "
                        f"{cpu_ms:.1f} ms a request"))
    return out


def run(label: str, url: str, mdd: Path, number: int, big: Path | None, tmp: Path) -> Results:
    if url.startswith("postgresql"):
        fresh_postgres(url)
    app = create_app({"DATABASE_URL": url, "DOWNLOADS_DIR": str(tmp / f"downloads-{label}")})
    out: Results = []
    with app.app_context():
        upgrade_database(app)
        unit = uow()
        load(unit, files=files_of(mdd / str(number)), fmt="mdd-csv", mode="replace",
             actor="bench", organisation=None)
        publish(unit, actor="bench", organisation=None, version=number)
        if big is not None:
            load_s, _ = timed(lambda: load(unit, files=files_of(big), fmt="mdd-csv",
                                           mode="replace", actor="bench", organisation=None))
            pub_s, _ = timed(lambda: publish(unit, actor="bench", organisation=None))
            out.append((f"{label}: load and publish the generated {BIG}",
                        f"{load_s:.0f} s + {pub_s:.0f} s"))
        db = unit.session
        if url.startswith("postgresql"):
            db.connection().exec_driver_sql("ANALYZE record")  # as autovacuum would
        db.commit()
        catalogue = working_catalogue(db)
        llfc, clock = catalogue.entities["line_loss_factor_class"], \
            catalogue.entities["clock_interval"]
        out += latency(app, db, llfc, number, ["string", "date", "enum"], 5,
                       f"{label} MDD {number}")
        out += latency(app, db, clock, number, ["integer", "time"], 5, f"{label} MDD {number}")
        if big is not None:
            out += latency(app, db, catalogue.entities[BIG], number + 1, ["string", "date"], 1,
                           f"{label} {BIG}")
        unit.close()
    app.extensions["isd_db"].engine.dispose()
    out += throughput(url, number, llfc, tmp, label)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mdd", type=Path, default=PROJECT_ROOT.parent / "shared" / "mdd")
    parser.add_argument("--version", type=int, default=374)
    parser.add_argument("--records", type=int, default=1_500_000,
                        help="rows of the generated entity (0: none)")
    parser.add_argument("--pg", default=os.environ.get(
        "ISD_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/isd_bench"))
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    results: Results = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        big = None
        if args.records:
            app = create_app({"DATABASE_URL": f"sqlite:///{tmp / 'catalogue.sqlite3'}"})
            with app.app_context():
                upgrade_database(app)
                generate(working_catalogue(uow().session), records=args.records, versions=1,
                         out=tmp / "generated", seed=1, change_share=0.0,
                         first=args.version + 1, only=[BIG])
            app.extensions["isd_db"].engine.dispose()
            big = tmp / "generated" / str(args.version + 1)
        if args.only != "postgresql":
            results += run("sqlite", f"sqlite:///{tmp / 'bench.sqlite3'}", args.mdd,
                           args.version, big, tmp)
        if args.only != "sqlite":
            results += run("postgresql", args.pg, args.mdd, args.version, big, tmp)
    width = max(len(label) for label, _ in results)
    for label, figure in results:
        print(f"| {label:<{width}} | {figure} |")


if __name__ == "__main__":
    main()
