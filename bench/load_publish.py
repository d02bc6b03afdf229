"""Load, publish and delta timings on a real MDD version, with baselines from the same run.

    python bench/load_publish.py [--mdd ../shared/mdd] [--pg postgresql+psycopg://...]

For each database: load version A (a full MDD version into an empty store) and publish it,
then load and publish version B. Baselines measured alongside, on the same machine and run:
- parse: reading the same CSV files with the csv module alone (the floor of any load);
- copy (PostgreSQL): COPY of the same rows into a plain table (the floor of any write);
- full diff: reading both full snapshots and comparing them, against the delta query.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text

from isd_service import PROJECT_ROOT
from isd_service.adapters.repository import (
    get_version,
    iter_snapshot,
    rows_between,
    working_catalogue,
)
from isd_service.domain.delta import net_changes
from isd_service.domain.formats import InputFile
from isd_service.entrypoints.app import create_app
from isd_service.entrypoints.cli.database import upgrade_database
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer.catalogue import set_relations
from isd_service.service_layer.drafts import load
from isd_service.service_layer.publishing import publish
from isd_service.service_layer.unit_of_work import UnitOfWork


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def without_relations(unit: UnitOfWork) -> None:
    """Remove the catalogue's declared relations: synthetic versions (isd bench generate)
    draw every key at random, so their records do not meet the real MDD's relations."""
    for eid, entity in working_catalogue(unit.session).entities.items():
        if entity.foreign_keys:
            set_relations(unit, eid, [], actor="bench", organisation=None)


def files_of(folder: Path) -> list[InputFile]:
    return [InputFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))]


def parse_only(files: list[InputFile]) -> int:
    rows = 0
    for f in files:
        rows += sum(1 for _ in csv.reader(io.StringIO(f.data.decode("utf-8"))))
    return rows


def fresh_postgres(url: str) -> None:
    """Empty the benchmark's database, creating it first on a machine that lacks it."""
    target = make_url(url)
    server = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                        {"name": target.database}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    server.dispose()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def copy_baseline(url: str, files: list[InputFile]) -> float:
    """COPY the same CSV files into plain tables (logged, no index, a text column a field).

    PostgreSQL parses the CSV itself and checks nothing: the floor of what loading the same
    rows can cost. Returns the seconds of the COPYs and their commit.
    """
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        tables = []
        for i, f in enumerate(files):
            header = next(csv.reader(io.StringIO(f.data.decode("utf-8-sig"))))
            columns = ", ".join(f"c{n} text" for n in range(len(header)))
            conn.execute(f"CREATE TABLE copy_floor_{i} ({columns})")
            tables.append(f"copy_floor_{i}")
        conn.commit()
        start = time.perf_counter()
        for table, f in zip(tables, files, strict=True):
            with conn.cursor().copy(
                    f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                copy.write(f.data)
        conn.commit()
        seconds = time.perf_counter() - start
        for table in tables:
            conn.execute(f"DROP TABLE {table}")
        conn.commit()
        return seconds


def full_diff(db: Any, entities: list[str], old: int, new: int) -> int:
    changes = 0
    for eid in entities:
        before = dict(iter_snapshot(db, eid, old))
        after = dict(iter_snapshot(db, eid, new))
        changes += sum(1 for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return changes


def run(name: str, url: str, mdd: Path, first: int, second: int) -> list[tuple[str, str]]:
    app = create_app({"DATABASE_URL": url})
    out: list[tuple[str, str]] = []
    with app.app_context():
        upgrade_database(app)
        unit = uow()
        db = unit.session
        files_a, files_b = files_of(mdd / str(first)), files_of(mdd / str(second))
        parse_s, rows = timed(lambda: parse_only(files_a))
        load_s, rec = timed(lambda: load(unit, files=files_a, fmt="mdd-csv", mode="replace",
                                         actor="bench", organisation=None))
        pub_s, ver = timed(lambda: publish(unit, actor="bench", organisation=None,
                                           version=first))
        load2_s, rec2 = timed(lambda: load(unit, files=files_b, fmt="mdd-csv", mode="replace",
                                           actor="bench", organisation=None))
        pub2_s, _ = timed(lambda: publish(unit, actor="bench", organisation=None))
        entities = list(get_version(db, second).entities)  # type: ignore[union-attr]
        delta_s, n_changes = timed(lambda: sum(
            len(net_changes(e, rows_between(db, e, first, second), first, second))
            for e in entities))
        diff_s, n_diff = timed(lambda: full_diff(db, entities, first, second))
        assert n_changes == n_diff, (n_changes, n_diff)
        records = ver.record_count
        out += [
            (f"{name}: load {first} ({records} records)",
             f"{load_s:.2f} s, {records / load_s:,.0f} records/s, "
             f"{load_s / parse_s:.1f}x csv parse alone ({parse_s:.2f} s)"),
            (f"{name}: publish {first}", f"{pub_s:.2f} s"),
            (f"{name}: load {second} ({rec2.inserted + rec2.updated + rec2.deleted} changes)",
             f"{load2_s:.2f} s"),
            (f"{name}: publish {second}", f"{pub2_s:.2f} s"),
            (f"{name}: delta {first}->{second} ({n_changes} changes)",
             f"{delta_s * 1000:.1f} ms, {diff_s / delta_s:.0f}x faster than diffing "
             f"both snapshots ({diff_s:.2f} s)"),
        ]
        if url.startswith("postgresql"):
            copy_s = copy_baseline(url, files_a)
            out.append((f"{name}: load {first} against COPY of the same rows",
                        f"{load_s / copy_s:.1f}x COPY ({copy_s:.2f} s)"))
        db.close()
        del rows, rec
    app.extensions["isd_db"].engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mdd", type=Path, default=PROJECT_ROOT.parent / "shared" / "mdd")
    parser.add_argument("--pg", default=os.environ.get(
        "ISD_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/isd_bench"))
    parser.add_argument("--first", type=int, default=370)
    parser.add_argument("--second", type=int, default=371)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python "
          f"{platform.python_version()}, {platform.platform()}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results += run("sqlite", f"sqlite:///{tmp}/bench.sqlite3", args.mdd, args.first,
                       args.second)
    try:
        fresh_postgres(args.pg)
    except Exception as exc:  # the benchmark still reports SQLite
        print(f"PostgreSQL skipped: {exc.__class__.__name__}: {exc}")
    else:
        results += run("postgresql", args.pg, args.mdd, args.first, args.second)
    width = max(len(k) for k, _ in results)
    for key, value in results:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
