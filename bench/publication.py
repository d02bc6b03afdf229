"""A small publication on a large store: its cost should follow the changes, not the store.

    python bench/publication.py [--records 1000000] [--changes 1000]
                                [--pg postgresql+psycopg://...] [--sqlite]

A synthetic version of --records records (isd bench generate) is loaded and published into a
fresh store, then a second version with about --changes changes spread over every entity.
Figures, each against a baseline of the same run:
- the second publication, against the first (the whole store hashed: what every publication
  cost when an entity's hash was one pass over it in key order);
- the same against re-hashing the changed entities from first key to last (hash rule 1's
  cost, measured on the published rows, outside any transaction).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from load_publish import files_of, fresh_postgres, timed, without_relations
from run import high_water_mib

from isd_service.adapters.repository import snapshot_data, working_catalogue
from isd_service.domain.records import entity_hash
from isd_service.entrypoints.app import create_app
from isd_service.entrypoints.cli.bench import generate
from isd_service.entrypoints.cli.database import upgrade_database
from isd_service.entrypoints.flask_db import session, uow
from isd_service.service_layer.drafts import load
from isd_service.service_layer.publishing import publish


def measure(url: str, records: int, changes: int, tmp: Path) -> dict[str, Any]:
    app = create_app({"DATABASE_URL": url})
    out: dict[str, Any] = {}
    with app.app_context():
        upgrade_database(app)
        catalogue = working_catalogue(session())
        generate(catalogue, records=records, versions=2, out=tmp, seed=1,
                 change_share=changes / records, first=1)
        unit = uow()
        without_relations(unit)
        for number in (1, 2):
            files = files_of(tmp / str(number))
            load_s, loaded = timed(lambda f=files: load(  # type: ignore[misc]
                unit, files=f, fmt="mdd-csv", mode="replace", actor="bench",
                organisation=None))
            publish_s, version = timed(lambda: publish(unit, actor="bench", organisation=None))
            out[number] = {"load_s": load_s, "publish_s": publish_s,
                           "records": version.record_count,
                           "changes": loaded.inserted + loaded.updated + loaded.deleted,
                           "peak_rss_mib": high_water_mib()}
            # As it goes: a run at 10M takes most of an hour.
            print(f"version {number}: {out[number]}", flush=True)
            shutil.rmtree(tmp / str(number))
        # What hash rule 1 cost: every changed entity read and hashed in key order.
        changed = [eid for eid in catalogue.entities if version.entities[eid]["records"]]
        out["rule1_s"], _ = timed(lambda: [
            entity_hash(catalogue.entities[eid], snapshot_data(session(), eid, 2))
            for eid in changed])
        session().close()
    app.extensions["isd_db"].engine.dispose()
    return out


def report(name: str, found: dict[str, Any]) -> list[str]:
    first, second = found[1], found[2]
    return [
        f"{name}: load of {first['records']:,} records into an empty store: "
        f"{first['load_s']:.1f} s, peak RSS of the process so far "
        f"{first['peak_rss_mib']:,.0f} MiB",
        f"{name}: load of the next version ({second['changes']:,} changes): "
        f"{second['load_s']:.1f} s, peak RSS {second['peak_rss_mib']:,.0f} MiB",
        f"{name}: first publication, {first['records']:,} records: {first['publish_s']:.1f} s",
        f"{name}: publication of {second['changes']:,} changes on the "
        f"{second['records']:,}-record store: {second['publish_s']:.2f} s "
        f"({second['publish_s'] / first['publish_s']:.3f}x the first; "
        f"{second['publish_s'] / found['rule1_s']:.3f}x re-hashing the changed entities "
        f"in key order, {found['rule1_s']:.1f} s, as rule 1 did)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/isd_bench")
    parser.add_argument("--sqlite", action="store_true", help="SQLite too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines = []
        fresh_postgres(args.pg)
        lines += report("postgresql", measure(args.pg, args.records, args.changes,
                                              Path(tmp) / "pg"))
        if args.sqlite:
            lines += report("sqlite", measure(f"sqlite:///{tmp}/bench.sqlite3", args.records,
                                              args.changes, Path(tmp) / "sqlite"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
