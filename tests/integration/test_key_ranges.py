"""Hash rule 2 (key ranges): every published hash is the documented rule of the served bytes,
a publication re-hashes only the ranges its changes touch, versions published under rule 1
keep their hashes, and isd-sync names the key range of a damaged local copy."""

from __future__ import annotations

import hashlib
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text, update

from isd_service.adapters import key_ranges
from isd_service.adapters.orm import Record, RecordRange, Version
from isd_service.entrypoints.flask_db import session
from isd_service.sync import cli as sync_cli
from tests import hash_rule
from tests.conftest import serving

API = "/api/v1"
HEADER = "market_participant_id,market_participant_name,pool_member_id\n"
# Keys beyond ASCII: the database's range must be the SHA-256 of the key's UTF-8 bytes.
EXTRA = ["ÉLAN", "ZÜRI", "NAÏF", "ŁÓDŹ", "ÆGIR"]


def load_and_publish(app: Flask, tmp_path: Path, name: str, body: str,
                     mode: str = "upsert") -> int:
    path = tmp_path / name / "market_participant.csv"
    path.parent.mkdir()
    path.write_text(HEADER + body, encoding="utf-8")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["load", "--format", "csv", "--mode", mode, str(path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["publish"])
    assert result.exit_code == 0, result.output
    return int(result.output.strip().splitlines()[-1])


def check_version(client: FlaskClient, number: int) -> dict[str, Any]:
    """The manifest's hashes are the documented rule of the served snapshot, and each
    entity's served ranges are the ranges of its served records."""
    manifest = client.get(f"{API}/versions/{number}").get_json()
    rule = manifest.get("hash_rule", 1)
    snapshot = client.get(f"{API}/versions/{number}/snapshot?format=json").get_json()
    catalogue = client.get(f"{API}/catalogue?version={number}").get_json()["entities"]
    keys = {e["id"]: e["key"] for e in catalogue}
    for eid, records in snapshot["entities"].items():
        assert manifest["entities"][eid] == hash_rule.entity_hash(records, keys[eid], rule), \
            (number, eid)
        if rule == 2:
            served = client.get(f"{API}/versions/{number}/ranges/{eid}.json").get_json()
            assert {r["range"]: (r["records"], r["sha256"]) for r in served["ranges"]} \
                == hash_rule.ranges(records, keys[eid]), (number, eid)
            assert (served["records"], served["sha256"]) == (
                manifest["entities"][eid]["records"], manifest["entities"][eid]["sha256"])
    assert manifest["sha256"] == hash_rule.version_hash(
        catalogue, {e: h["sha256"] for e, h in manifest["entities"].items()})
    return manifest


def test_every_hash_is_the_documented_rule_of_the_served_bytes(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    extra = "".join(f"{k},Participant {k},{k}\n" for k in EXTRA)
    numbers = [1, load_and_publish(app, tmp_path, "insert", extra)]
    numbers.append(load_and_publish(app, tmp_path, "update", "EXDA,Renamed Ltd,EXDA\n"))
    # Replace mode: every participant but two goes (ranges empty out), one is renamed.
    numbers.append(load_and_publish(app, tmp_path, "delete",
                                    "EXDA,Renamed Again Ltd,EXDA\nÉLAN,Élan,ÉLAN\n",
                                    mode="replace"))
    for number in numbers:
        assert check_version(client, number)["hash_rule"] == 2
    # Older versions' ranges are unchanged by later publications.
    v2 = client.get(f"{API}/versions/{numbers[1]}/ranges/market_participant.json")
    assert v2.status_code == 200 and "immutable" in v2.headers["Cache-Control"]
    assert v2.get_json()["records"] == len(client.get(
        f"{API}/versions/{numbers[1]}/snapshot?format=json&entity=market_participant"
    ).get_json()["entities"]["market_participant"])


def test_the_database_computes_the_documented_range_of_every_key(
        app: Flask, tmp_path: Path) -> None:
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    load_and_publish(app, tmp_path, "insert",
                     "".join(f"{k},Participant {k},{k}\n" for k in EXTRA))
    with app.app_context():
        rows = session().execute(select(Record.key, Record.key_range)).all()
    assert {k for k, _ in rows} >= set(EXTRA)
    for key, key_range in rows:
        assert f"{key_range:04x}" == hashlib.sha256(key.encode()).hexdigest()[:4], key


def test_a_publication_rehashes_only_the_ranges_its_changes_touch(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    bulk = "".join(f"P{i:03d},Participant {i},P{i:03d}\n" for i in range(600))
    load_and_publish(app, tmp_path, "bulk", bulk)
    number = load_and_publish(app, tmp_path, "one", "P007,Renamed,P007\nNEW1,New,NEW1\n")
    with app.app_context():
        written = session().execute(
            select(RecordRange.entity_id, RecordRange.key_range)
            .where(RecordRange.valid_from == number)).all()
        live = session().scalar(select(func.count()).select_from(RecordRange).where(
            RecordRange.entity_id == "market_participant", RecordRange.valid_to.is_(None)))
    touched = {hashlib.sha256(k.encode()).hexdigest()[:4] for k in ("P007", "NEW1")}
    assert {(e, f"{r:04x}") for e, r in written} == {("market_participant", r) for r in touched}
    assert live is not None and live > 500  # the other ranges were kept, not rewritten
    check_version(client, number)


def test_a_change_touching_more_ranges_than_a_batch_walks_the_entity_once(
        app: Flask, client: FlaskClient, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A batch of 20 ranges stands in for the real thousand: 60 changes touch more than a
    # batch, so publication reads the whole entity once instead of range batches.
    monkeypatch.setattr(key_ranges, "IN_BATCH", 20)
    # Each statement that reads market_participant's live rows: the ranges it names (None:
    # the whole entity).
    walks: list[Any] = []
    stream = key_ranges._stream

    def spy(session: Any, stmt: Any) -> Any:
        params = stmt.compile().params
        if "market_participant" in params.values():
            walks.append(next((set(v) for v in params.values() if isinstance(v, list)), None))
        return stream(session, stmt)
    monkeypatch.setattr(key_ranges, "_stream", spy)
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    bulk = "".join(f"P{i:03d},Participant {i},P{i:03d}\n" for i in range(300))
    load_and_publish(app, tmp_path, "bulk", bulk)
    changes = "".join(f"P{i:03d},Renamed {i},P{i:03d}\n" for i in range(0, 300, 5))
    walks.clear()
    number = load_and_publish(app, tmp_path, "many", changes)
    assert walks == [None]
    few = load_and_publish(app, tmp_path, "few", "P001,Renamed once,P001\n")
    assert walks[1:] == [{int(hashlib.sha256(b"P001").hexdigest()[:4], 16)}]
    # Replace mode: 200 participants go, whole ranges empty out.
    kept = "".join(f"P{i:03d},Participant {i},P{i:03d}\n" for i in range(100))
    last = load_and_publish(app, tmp_path, "fewer", kept, mode="replace")
    with app.app_context():
        written = set(session().scalars(
            select(RecordRange.key_range).where(RecordRange.valid_from == number,
                                                RecordRange.entity_id == "market_participant")))
    renamed = {int(hashlib.sha256(f"P{i:03d}".encode()).hexdigest()[:4], 16)
               for i in range(0, 300, 5)}
    assert written == renamed  # every range walked, only the changed ones written
    for version in (number, few, last):
        check_version(client, version)


def test_versions_published_under_rule_1_keep_their_hashes(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    # Version 1 as a deployment published it before key ranges existed (the migration to
    # rule 2 leaves published versions as they are).
    snapshot = client.get(f"{API}/versions/1/snapshot?format=json").get_json()["entities"]
    catalogue = client.get(f"{API}/catalogue?version=1").get_json()["entities"]
    keys = {e["id"]: e["key"] for e in catalogue}
    old = {eid: hash_rule.entity_hash(records, keys[eid], 1)
           for eid, records in snapshot.items()}
    with app.app_context():
        s = session()
        s.execute(update(Version).where(Version.number == 1).values(
            hash_rule=1, entities=old,
            sha256=hash_rule.version_hash(catalogue, {e: h["sha256"] for e, h in old.items()})))
        s.execute(text("DELETE FROM record_range"))
        s.commit()
    number = load_and_publish(app, tmp_path, "v2", "EXDA,Renamed Ltd,EXDA\n")

    assert "hash_rule" not in client.get(f"{API}/versions/1").get_json()
    assert check_version(client, 1)["entities"] == old
    # Every entity of the next version is hashed by rule 2, changed or not.
    assert check_version(client, number)["hash_rule"] == 2
    no_ranges = client.get(f"{API}/versions/1/ranges/market_participant.json")
    assert no_ranges.status_code == 404
    assert "rule 1" in no_ranges.get_json()["detail"]
    assert client.get(f"{API}/versions/{number}/ranges/nothing.json").status_code == 404
    # The ISD files' "changed" flag cannot compare hashes of two rules: the rows tell.
    for entity, flag in (("market_participant", "Y"), ("gsp_group", "N")):
        first = client.get(f"/api/ISD?filter={entity}&version={number}").get_data(
            as_text=True).splitlines()[0]
        assert first.endswith(f',"{flag}"'), first

    # isd-sync verifies both rules: the snapshot of 1, then the delta to 2.
    with serving(app) as base:
        for version in ("1", str(number)):
            code, _out, err = run_sync(["pull", "--server", base, "--dir", str(tmp_path / "c"),
                                       "--version", version])
            assert code == 0, err


def run_sync(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = sync_cli.main(args)
    return code, out.getvalue(), err.getvalue()


def test_isd_sync_verify_names_the_key_range_of_a_damaged_copy(
        app: Flask, tmp_path: Path) -> None:
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    load_and_publish(app, tmp_path, "more",
                     "".join(f"P{i:03d},Participant {i},P{i:03d}\n" for i in range(200)))
    copy = tmp_path / "copy"
    with serving(app) as base:
        assert run_sync(["pull", "--server", base, "--dir", str(copy)])[0] == 0
        code, out, _err = run_sync(["verify", "--server", base, "--dir", str(copy)])
        assert code == 0 and "verifies" in out

        held = copy / "current" / "market_participant.csv"
        held.write_text(held.read_text(encoding="utf-8").replace(
            "Participant 123,", "Participant 321,"), encoding="utf-8")
        code, out, err = run_sync(["verify", "--server", base, "--dir", str(copy)])
    assert code == 1
    damaged = hashlib.sha256(b"P123").hexdigest()[:4]
    assert "entity market_participant does not verify: 1 of " in out
    assert out.rstrip().endswith(f": {damaged}")
    assert "damaged" in err


def test_a_bulk_publication_leaves_fresh_statistics_and_no_dead_staged_rows(
        app: Flask, tmp_path: Path, monkeypatch: Any) -> None:
    from isd_service.service_layer import publishing

    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    monkeypatch.setattr(publishing, "BULK_CHANGES", 10)  # as a load of a million rows is
    number = load_and_publish(app, tmp_path, "bulk",
                              "".join(f"P{i:03d},Participant {i},P{i:03d}\n" for i in range(50)))
    with app.app_context():
        s = session()
        assert s.scalar(select(Version.number).order_by(Version.number.desc())) == number
        if s.get_bind().dialect.name != "postgresql":
            return  # SQLite has neither autovacuum nor dead rows to plan around
        vacuumed, analysed = s.execute(text(
            "SELECT last_vacuum, last_analyze FROM pg_stat_user_tables "
            "WHERE relname = 'staged_change'")).one()
        record_analysed = s.scalar(text(
            "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'record'"))
    assert vacuumed is not None and analysed is not None and record_analysed is not None
