"""The largest MDD file at its real size: a generated Valid_MTC_LLFC_SSC_PC_Combination of
about 1.5 million rows, loaded and published, then a following version with 1% changed.

Checks what the suite checks at a small size (tests/e2e/test_mdd_portal.py): the MDD export
holds the source's lines, and the delta's counts equal an independent diff of the two files.
Times are printed against baselines measured in the same run: parsing the CSV alone, and
(PostgreSQL) a COPY of the same CSV into a plain table.

    .venv/bin/python bench/mdd_portal.py [--records 1500000] [--pg URL] [--sqlite]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import sys
import tempfile
from collections import Counter
from pathlib import Path

from load_publish import copy_baseline, files_of, fresh_postgres, parse_only, timed

from isd_service.adapters.repository import rows_between, working_catalogue
from isd_service.domain.delta import net_changes
from isd_service.entrypoints.app import create_app
from isd_service.entrypoints.cli.bench import generate
from isd_service.entrypoints.cli.database import upgrade_database
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer.downloads import Downloads
from isd_service.service_layer.drafts import load
from isd_service.service_layer.publishing import publish

ENTITY = "valid_mtc_llfc_ssc_pc_combination"
STEM = "Valid_MTC_LLFC_SSC_PC_Combination"


def keyed(path: Path, key: list[int]) -> dict[tuple[str, ...], tuple[str, ...]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        next(rows)
        return {tuple(r[i] for i in key): tuple(r) for r in rows}


def independent_diff(old: Path, new: Path, key: list[int]) -> Counter[str]:
    before, after = keyed(old, key), keyed(new, key)
    counts: Counter[str] = Counter()
    for k in before.keys() | after.keys():
        if k not in before:
            counts["insert"] += 1
        elif k not in after:
            counts["delete"] += 1
        elif before[k] != after[k]:
            counts["update"] += 1
    return counts


def sorted_lines(data: bytes) -> list[bytes]:
    lines = data.splitlines()
    return [lines[0], *sorted(lines[1:])]


def run(name: str, url: str, folders: list[Path], tmp: Path) -> list[tuple[str, str]]:
    if url.startswith("postgresql"):
        fresh_postgres(url)
    app = create_app({"DATABASE_URL": url, "DOWNLOADS_DIR": str(tmp / f"downloads-{name}")})
    out: list[tuple[str, str]] = []
    with app.app_context():
        upgrade_database(app)
        unit = uow()
        entity = working_catalogue(unit.session).entities[ENTITY]
        fields = [f.id for f in entity.fields]
        key = [fields.index(k) for k in entity.key]
        for number, folder in enumerate(folders, start=1):
            files = files_of(folder)
            parse_s, rows = timed(lambda f=files: parse_only(f))  # type: ignore[misc]
            load_s, record = timed(lambda f=files: load(  # type: ignore[misc]
                unit, files=f, fmt="mdd-csv", mode="replace", actor="bench",
                organisation=None))
            pub_s, version = timed(lambda n=number: publish(  # type: ignore[misc]
                unit, actor="bench", organisation=None, version=n))
            changes = record.inserted + record.updated + record.deleted
            out.append((f"{name}: load version {number} ({rows - 1:,} rows, {changes:,} changes)",
                        f"{load_s:.1f} s, {(rows - 1) / load_s:,.0f} rows/s, "
                        f"{load_s / parse_s:.1f}x parsing the CSV alone ({parse_s:.1f} s)"))
            out.append((f"{name}: publish version {number}", f"{pub_s:.1f} s"))
            if url.startswith("postgresql") and number == 1:
                copy_s = copy_baseline(url, files)
                out.append((f"{name}: load version 1 against COPY of the same CSV",
                            f"{load_s / copy_s:.1f}x COPY ({copy_s:.1f} s)"))
            built, _name = Downloads(unit.session, tmp / f"downloads-{name}").mdd_file(
                version, entity)
            source = files[0].data
            assert sorted_lines(built.path.read_bytes()) == sorted_lines(source), \
                f"version {number}'s MDD export differs from its source"
        delta_s, changes = timed(lambda: net_changes(
            ENTITY, rows_between(unit.session, ENTITY, 1, 2), 1, 2))
        ops = Counter(c.op for c in changes)
        expected = independent_diff(folders[0] / f"{STEM}_1.csv",
                                    folders[1] / f"{STEM}_2.csv", key)
        assert ops == expected, (ops, expected)
        out.append((f"{name}: delta 1->2", f"{delta_s * 1000:.0f} ms for {sum(ops.values()):,} "
                                           f"changes ({dict(ops)}), equal to an independent "
                                           "diff of the files"))
        unit.close()
    app.extensions["isd_db"].engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_500_000)
    parser.add_argument("--pg", default=os.environ.get(
        "ISD_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/isd_bench"))
    parser.add_argument("--sqlite", action="store_true", help="also on SQLite")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python "
          f"{platform.python_version()}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        app = create_app({"DATABASE_URL": f"sqlite:///{tmp / 'catalogue.sqlite3'}"})
        with app.app_context():
            upgrade_database(app)
            catalogue = working_catalogue(uow().session)
            generate(catalogue, records=args.records, versions=2, out=tmp / "versions",
                     seed=1, change_share=0.01, first=1, only=[ENTITY])
        app.extensions["isd_db"].engine.dispose()
        folders = [tmp / "versions" / "1", tmp / "versions" / "2"]
        results = run("postgresql", args.pg, folders, tmp)
        if args.sqlite:
            results += run("sqlite", f"sqlite:///{tmp / 'bench.sqlite3'}", folders, tmp)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    width = max(len(label) for label, _ in results)
    for label, figure in results:
        print(f"{label:<{width}}  {figure}")
    print(f"peak RSS of this process: {peak:,.0f} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
