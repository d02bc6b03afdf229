"""The cost of checking the catalogue's relations at publication, on real MDD versions,
against what publication reads anyway, measured in the same run.

    python bench/relations.py [--mdd ../shared/mdd] [--pg postgresql+psycopg://...]

For each database: load version A into an empty store and publish it (every relation is
checked: a first version has no previous one to rely on), then time on its own
- the full check of every declared relation over the whole version;
- the baseline: reading and hashing every entity of the version, which publishing does;
then load version B and time the draft review's check and B's publication (only the
relations with a changed end are read).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from load_publish import files_of, fresh_postgres, timed

from isd_service import PROJECT_ROOT
from isd_service.adapters import repository
from isd_service.domain.records import entity_hash
from isd_service.entrypoints.app import create_app
from isd_service.entrypoints.cli.database import upgrade_database
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer import relations
from isd_service.service_layer.drafts import load
from isd_service.service_layer.publishing import publish


def run(name: str, url: str, mdd: Path, first: int, second: int) -> list[tuple[str, str]]:
    app = create_app({"DATABASE_URL": url})
    out: list[tuple[str, str]] = []
    with app.app_context():
        upgrade_database(app)
        unit = uow()
        db = unit.session
        load(unit, files=files_of(mdd / str(first)), fmt="mdd-csv", mode="replace",
             actor="bench", organisation=None)
        pub_s, version = timed(lambda: publish(unit, actor="bench", organisation=None,
                                               version=first))
        catalogue = repository.working_catalogue(db)
        count = len(catalogue.relations())
        check_s, _ = timed(lambda: relations.check_version(db, catalogue, first, None))

        def read_and_hash() -> int:
            return sum(entity_hash(e, repository.snapshot_data(db, e.id, first))[0]
                       for e in catalogue.entities.values())

        hash_s, records = timed(read_and_hash)
        db.rollback()
        load(unit, files=files_of(mdd / str(second)), fmt="mdd-csv", mode="replace",
             actor="bench", organisation=None)
        changed = repository.staged_entities(db)
        review_s, review = timed(lambda: relations.draft_review(db, catalogue, changed))
        db.rollback()
        pub2_s, _ = timed(lambda: publish(unit, actor="bench", organisation=None))
        out += [
            (f"{name}: publish {first} ({records} records, {count} relations, all checked)",
             f"{pub_s:.2f} s"),
            (f"{name}: check of every relation of {first}",
             f"{check_s:.2f} s, {check_s / hash_s:.2f}x reading and hashing the version "
             f"({hash_s:.2f} s)"),
            (f"{name}: draft review of {second} ({len(review['checked'])} relations with "
             f"a changed end)", f"{review_s:.2f} s"),
            (f"{name}: publish {second}", f"{pub2_s:.2f} s"),
        ]
        del version
        db.close()
    app.extensions["isd_db"].engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mdd", type=Path, default=PROJECT_ROOT.parent / "shared" / "mdd")
    parser.add_argument("--pg", default=os.environ.get(
        "ISD_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/isd_bench"))
    parser.add_argument("--first", type=int, default=370)
    parser.add_argument("--second", type=int, default=371)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python "
          f"{platform.python_version()}")
    results: list[Any] = []
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
