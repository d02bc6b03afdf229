"""The whole MDD portal catalogue on real and generated files: all 18 files in one load (as a
folder and as a zip), the three combination entities round-tripped with exact deltas.

The 344 file is real (../shared/mdd-extra); the two larger combination files are not at
hand, so they are generated (`isd bench generate --entity`): bench/mdd_portal.py runs the
largest at its real size (about 1.5 million rows), this test the same path at a small one.
"""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from frictionless import validate

from isd_service import PROJECT_ROOT
from tests.conftest import mdd_files, serving

# Real versions publish with the seed catalogue's relations declared: they must hold.
pytestmark = [pytest.mark.mdd, pytest.mark.relations]

API = "/api/v1"
EXTRA = Path(PROJECT_ROOT.parent / "shared" / "mdd-extra")
VMTCLC = EXTRA / "Valid_MTC_LLFC_Combination_344.csv"
COMBINATIONS = {"valid_mtc_llfc_ssc_combination": "Valid_MTC_LLFC_SSC_Combination",
                "valid_mtc_llfc_ssc_pc_combination": "Valid_MTC_LLFC_SSC_PC_Combination"}




def cli(app: Flask, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def rows(data: bytes) -> tuple[bytes, list[bytes]]:
    lines = data.splitlines()
    return lines[0], sorted(lines[1:])


def keyed(data: bytes, key: list[int]) -> dict[tuple[str, ...], tuple[str, ...]]:
    records = list(csv.reader(io.StringIO(data.decode("utf-8"))))[1:]
    return {tuple(r[i] for i in key): tuple(r) for r in records}


def diff_counts(old: bytes, new: bytes, key: list[int]) -> Counter[str]:
    """Inserts, updates and deletes between two files, keyed independently of the service."""
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


def served_mdd(client: FlaskClient, number: int, stem: str) -> bytes:
    response = client.get(f"{API}/versions/{number}/mdd/{stem}_{number}.csv")
    assert response.status_code == 200
    return response.get_data()


def test_all_eighteen_mdd_files_load_in_one_go_as_a_folder_or_a_zip(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    if not VMTCLC.is_file():
        pytest.skip(f"the real Valid_MTC_LLFC_Combination file is not at {VMTCLC}")
    portal = tmp_path / "portal"
    portal.mkdir()
    for path in mdd_files(374):
        shutil.copyfile(path, portal / path.name)
    shutil.copyfile(VMTCLC, portal / VMTCLC.name)
    generated = tmp_path / "generated"
    cli(app, "bench", "generate", "--records", "3000", "--versions", "1", "--first", "374",
        "--out", str(generated), *[f"--entity={eid}" for eid in COMBINATIONS])
    for path in (generated / "374").iterdir():
        shutil.copyfile(path, portal / path.name)
    assert len(list(portal.iterdir())) == 18

    cli(app, "load", str(portal))
    number = int(cli(app, "publish", "--version", "374").strip().splitlines()[-1])
    manifest = client.get(f"{API}/versions/{number}").get_json()
    for path in sorted(portal.iterdir()):
        stem = path.name.rsplit("_", 1)[0]
        assert rows(served_mdd(client, number, stem)) == rows(path.read_bytes()), stem

    # The same 18 files as the portal's zip: nothing changes.
    archive = tmp_path / "MDD_374.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(portal.iterdir()):
            out.write(path, path.name)
    output = cli(app, "load", str(archive))
    from_mdd = sum(v["records"] for k, v in manifest["entities"].items()
                   if k not in ("dip_market_role", "mpid_dip_id_mapping"))
    assert f"inserted 0, updated 0, deleted 0, unchanged {from_mdd} " in output


def test_the_real_valid_mtc_llfc_combination_round_trips_with_exact_deltas(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    if not VMTCLC.is_file():
        pytest.skip(f"the real Valid_MTC_LLFC_Combination file is not at {VMTCLC}")
    source = VMTCLC.read_bytes()
    cli(app, "load", str(VMTCLC))
    cli(app, "publish", "--version", "344")
    assert rows(served_mdd(client, 344, "Valid_MTC_LLFC_Combination")) == rows(source)
    # The version that the 344 file makes passes frictionless too, over HTTP.
    with serving(app) as base:
        report = validate(f"{base}{API}/versions/344/datapackage.json")
    assert report.valid, report.flatten(["resourceName", "rowNumber", "type", "note"])[:10]
    assert {t.name: t.stats.get("rows") for t in report.tasks}[
        "valid_mtc_llfc_combination"] == len(source.splitlines()) - 1

    # A following version: some combinations end, some go, some come.
    header, lines = source.split(b"\n", 1)[0], source.splitlines()[1:]
    changed = [line.replace(b'""', b'"31/03/2027"', 1) if i % 97 == 0 else line
               for i, line in enumerate(lines) if i % 113 != 5]
    changed.append(b'"999","01/04/2026","EELC","01/04/2026","999","01/04/2026",""')
    following = tmp_path / "Valid_MTC_LLFC_Combination_345.csv"
    following.write_bytes(b"\n".join([header, *changed]) + b"\n")
    cli(app, "load", str(following))
    cli(app, "publish", "--version", "345")
    assert rows(served_mdd(client, 345, "Valid_MTC_LLFC_Combination")) == \
        rows(following.read_bytes())
    delta = client.get(f"{API}/deltas?from=344&to=345").get_json()
    ops = Counter(c["op"] for c in delta["changes"])
    # The key: MTC, MPID, LLFC and the combination's effective-from (columns 0, 2, 4, 5).
    assert ops == diff_counts(source, following.read_bytes(), [0, 2, 4, 5])
    assert ops["update"] and ops["delete"] and ops["insert"]


@pytest.mark.parametrize("entity", sorted(COMBINATIONS))
def test_a_generated_combination_file_round_trips_with_exact_deltas(
        app: Flask, client: FlaskClient, tmp_path: Path, entity: str) -> None:
    """The path bench/mdd_portal.py runs at 1.5 million rows, at 5,000."""
    out = tmp_path / "generated"
    cli(app, "bench", "generate", "--records", "5000", "--versions", "2", "--changes", "0.02",
        "--first", "1", "--out", str(out), "--entity", entity)
    stem = COMBINATIONS[entity]
    first, second = out / "1" / f"{stem}_1.csv", out / "2" / f"{stem}_2.csv"
    for number, path in ((1, first), (2, second)):
        cli(app, "load", str(path))
        cli(app, "publish", "--version", str(number))
        assert rows(served_mdd(client, number, stem)) == rows(path.read_bytes())
    catalogue = {e["id"]: e for e in client.get(f"{API}/catalogue").get_json()["entities"]}
    fields = [f["id"] for f in catalogue[entity]["fields"]]
    key = [fields.index(k) for k in catalogue[entity]["key"]]
    delta = client.get(f"{API}/deltas?from=1&to=2").get_json()
    assert Counter(c["op"] for c in delta["changes"]) == diff_counts(
        first.read_bytes(), second.read_bytes(), key)
