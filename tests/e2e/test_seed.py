"""The project's own seed: the latest real MDD version and the ISD-only records, published
under the MDD version's number, so that a newcomer's first page shows the real data."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from flask import Flask

from isd_service import PROJECT_ROOT
from isd_service.entrypoints.app import create_app
from isd_service.entrypoints.cli.database import upgrade_database
from tests.conftest import database_of

SEED = PROJECT_ROOT / "seed_data"


def test_the_seed_publishes_the_real_mdd_version_under_its_number(tmp_path: Path) -> None:
    app: Flask = create_app({"TESTING": True,
                             "DATABASE_URL": f"sqlite:///{tmp_path / 'seed.sqlite3'}",
                             "DOWNLOADS_DIR": str(tmp_path / "downloads")})
    try:
        upgrade_database(app)
        result = app.test_cli_runner().invoke(args=["seed"])
        assert result.exit_code == 0, result.output
        [archive] = sorted((SEED / "mdd").glob("*.zip"))
        number = int(archive.stem.rsplit("_", 1)[1])
        assert result.output.strip().splitlines()[-1] == str(number)
        client = app.test_client()
        manifest = client.get("/api/v1/versions/latest").get_json()
        assert manifest["version"] == number
        with zipfile.ZipFile(archive) as portal:
            files = {name: portal.read(name) for name in portal.namelist()}
        catalogue = {e["source"]: e["id"]
                     for e in client.get("/api/v1/catalogue").get_json()["entities"]}
        expected = 0
        for name, data in files.items():
            rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))[1:]
            entity = catalogue[name.rsplit("_", 1)[0]]
            assert manifest["entities"][entity]["records"] == len(rows), name
            expected += len(rows)
            # Each MDD download is the portal's file, line for line.
            served = client.get(f"/api/v1/versions/{number}/mdd/{name}").get_data()
            assert sorted(served.splitlines()[1:]) == sorted(data.splitlines()[1:]), name
        for extra in sorted((SEED / "records").glob("*.csv")):
            rows = extra.read_text(encoding="utf-8").strip().splitlines()[1:]
            assert manifest["entities"][extra.stem]["records"] == len(rows)
            expected += len(rows)
        assert manifest["record_count"] == expected > 70_000
        home = client.get("/").get_data(as_text=True)
        assert f'href="/versions/{number}"' in home
    finally:
        database_of(app).engine.dispose()
