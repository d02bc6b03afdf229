"""Where a load's time goes, step by step, against COPY floors measured in the same run.

    python bench/load_phases.py FOLDER [--pg postgresql+psycopg://...]

FOLDER holds MDD CSV files (a real version, or `isd bench generate` output). The script
empties the PostgreSQL database (default isd_bench), then times:

- csv parse: the csv module alone over the files;
- read + validate + encode: the load's pure steps (formats/, validation.py), no database
  (the rows' key texts and stored data made, a batch at a time, and let go);
- load: the whole `drafts.load` into an empty store (what `isd load` does);
- COPY floor: the same CSV files into plain tables (bench/load_publish.py's baseline);
- the draft's rows (key text and canonical JSON, as the load wrote them) COPYed again, by
  the server alone, into a temporary table, a plain table and a plain table with the
  draft's primary key: what storing those bytes durably and indexed costs, without Python.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psycopg
from load_publish import copy_baseline, files_of, fresh_postgres, parse_only, timed

from isd_service.adapters.repository import working_catalogue
from isd_service.domain.formats import InputFile, parse_files
from isd_service.domain.validation import Problem, check_batches
from isd_service.entrypoints.app import create_app
from isd_service.entrypoints.cli.database import upgrade_database
from isd_service.entrypoints.flask_db import session, uow
from isd_service.service_layer.drafts import load

DRAFT_COLUMNS = ("entity_id varchar(63), key text COLLATE \"C\", op varchar(8), data text, "
                 "load_id bigint")


def validate_only(files: list[InputFile]) -> int:
    catalogue = working_catalogue(session())
    groups, problems = parse_files(catalogue, files, "mdd-csv", None)
    assert not problems, problems[:3]
    count = 0
    for g in groups:
        found: list[Problem] = []
        for checked in check_batches(g.entity, g.in_batches(), found, dates=g.dates,
                                     file=g.file):
            count += len(checked.keys)
        assert not found and not g.problems, (found[:3], g.problems[:3])
    return count


def draft_copies(url: str) -> list[tuple[str, float, int]]:
    """COPY the draft's rows out, then into three kinds of table; (kind, seconds, bytes)."""
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        chunks = []
        with conn.cursor().copy("COPY (SELECT entity_id, key, op, data, load_id "
                                "FROM staged_change) TO STDOUT") as copy:
            for chunk in copy:
                chunks.append(bytes(chunk))
        rows = b"".join(chunks)
        out = []
        for kind, table, create in (
                ("temporary table", "t_temp", "CREATE TEMP TABLE t_temp ({})"),
                ("plain table", "t_plain", "CREATE TABLE t_plain ({})"),
                ("plain table + primary key", "t_pk",
                 "CREATE TABLE t_pk ({}, PRIMARY KEY (entity_id, key))")):
            conn.execute(create.format(DRAFT_COLUMNS))
            conn.commit()
            seconds, _ = timed(lambda t=table: _copy_in(conn, t, rows))  # type: ignore[misc]
            out.append((kind, seconds, len(rows)))
            conn.execute(f"DROP TABLE {table}")
            conn.commit()
        return out


def _copy_in(conn: psycopg.Connection, table: str, rows: bytes) -> None:
    with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
        copy.write(rows)
    conn.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--pg", default=os.environ.get(
        "ISD_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/isd_bench"))
    args = parser.parse_args()
    files = files_of(args.folder)
    if not files:
        sys.exit(f"no CSV files in {args.folder}")
    size = sum(len(f.data) for f in files)
    fresh_postgres(args.pg)
    app = create_app({"DATABASE_URL": args.pg})
    with app.app_context():
        upgrade_database(app)
        unit = uow()
        db = unit.session
        parse_s, _ = timed(lambda: parse_only(files))
        validate_s, records = timed(lambda: validate_only(files))
        load_s, _ = timed(lambda: load(unit, files=files, fmt="mdd-csv", mode="replace",
                                       actor="bench", organisation=None))
        db.close()
    app.extensions["isd_db"].engine.dispose()
    floor = copy_baseline(args.pg, files)
    print(f"{records:,} records in {len(files)} files, {size / 1e6:.0f} MB of CSV")
    print(f"COPY floor (the CSV into plain tables): {floor:.2f} s")
    for name, seconds in (("csv parse alone", parse_s),
                          ("read + validate + encode (Python, no database)", validate_s),
                          ("whole load", load_s)):
        print(f"{name}: {seconds:.2f} s = {seconds / floor:.1f}x the floor")
    for kind, seconds, nbytes in draft_copies(args.pg):
        print(f"the load's draft rows ({nbytes / 1e6:.0f} MB) COPYed into a {kind}: "
              f"{seconds:.2f} s = {seconds / floor:.1f}x the floor")


if __name__ == "__main__":
    main()
