"""Field-level changes over HTTP: deltas, the release preview, the diff and history pages; and
hostile values shown as text on every public page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

API = "/api/v1"
HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


def publish(app: Flask, tmp_path: Path, name: str, text: str, *args: str) -> None:
    runner = app.test_cli_runner()
    path = tmp_path / name / "market_participant.csv"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(args=["load", "--format", "csv", "--mode", "upsert", str(path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["publish", *args])
    assert result.exit_code == 0, result.output


def two_versions(app: Flask, tmp_path: Path, name: str = "Renamed Ltd") -> None:
    """1: the seed; 2: EXDA renamed and its pool member id changed, EXNE inserted."""
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    publish(app, tmp_path, "v2", "market_participant_id,market_participant_name,"
            f"pool_member_id\nEXDA,\"{name.replace(chr(34), chr(34) * 2)}\",POOL\n"
            "EXNE,New Entrant,EXNE\n")


def test_every_update_in_a_delta_names_its_changed_fields(app: Flask, client: FlaskClient,
                                                         tmp_path: Path) -> None:
    two_versions(app, tmp_path)
    body = client.get(f"{API}/deltas?from=1&to=2&entity=market_participant").get_json()
    ops = {c["key"]["market_participant_id"]: c for c in body["changes"]}
    assert ops["EXDA"]["op"] == "update"
    assert ops["EXDA"]["changed"] == ["market_participant_name", "pool_member_id"]
    assert "previous" not in ops["EXDA"]
    assert "changed" not in ops["EXNE"]  # an insert
    detailed = client.get(f"{API}/deltas?from=1&to=2&entity=market_participant"
                          "&detail=previous").get_json()
    [update] = [c for c in detailed["changes"] if c["op"] == "update"]
    assert update["previous"] == {"market_participant_id": "EXDA",
                                  "market_participant_name": "Exemplar Distribution East Ltd",
                                  "pool_member_id": "EXDA"}
    assert update["record"]["market_participant_name"] == "Renamed Ltd"
    # ndjson carries the same.
    lines = client.get(f"{API}/deltas?from=1&to=2&format=ndjson&detail=previous"
                       ).get_data(as_text=True).splitlines()
    assert any('"changed":["market_participant_name","pool_member_id"]' in line
               and '"previous":' in line for line in lines)
    bad = client.get(f"{API}/deltas?from=1&to=2&detail=everything")
    assert bad.status_code == 400


def test_snapshot_plus_delta_is_still_the_next_snapshot(app: Flask, client: FlaskClient,
                                                       tmp_path: Path) -> None:
    two_versions(app, tmp_path)
    held = client.get(f"{API}/versions/1/snapshot").get_json()["entities"]
    changes = client.get(f"{API}/deltas?from=1&to=2&detail=previous").get_json()["changes"]
    assert any(c["op"] == "update" for c in changes)
    for c in changes:
        table = held.setdefault(c["entity"], [])
        same_key = [r for r in table if all(r[k] == v for k, v in c["key"].items())]
        assert len(same_key) == (0 if c["op"] == "insert" else 1), c
        if c["op"] == "update":
            assert same_key[0] == c["previous"]
        if same_key:
            table.remove(same_key[0])
        if c["op"] != "delete":
            table.append(c["record"])
    expected = client.get(f"{API}/versions/2/snapshot").get_json()["entities"]

    def canonical(entities: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
        return {eid: sorted(json.dumps(r, sort_keys=True) for r in rows)
                for eid, rows in entities.items() if rows}

    assert canonical(held) == canonical(expected)


def test_the_diff_and_history_pages_show_old_and_new_values(app: Flask, client: FlaskClient,
                                                           tmp_path: Path) -> None:
    two_versions(app, tmp_path)
    diff = client.get("/diff?from=1&to=2").get_data(as_text=True)
    assert "<del>Exemplar Distribution East Ltd</del>" in diff
    assert "<ins>Renamed Ltd</ins>" in diff
    assert "<del>EXDA</del>" in diff and "<ins>POOL</ins>" in diff
    history = client.get("/entities/market_participant/history?market_participant_id=EXDA"
                         ).get_data(as_text=True)
    assert ("Market Participant Name: <del>Exemplar Distribution East Ltd</del> → "
            "<ins>Renamed Ltd</ins>") in history


def test_hostile_values_are_shown_as_text_on_every_public_page(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    for i, hostile in enumerate(HOSTILE):
        if i == 0:
            two_versions(app, tmp_path, name=hostile)
        else:
            publish(app, tmp_path, f"v{i + 2}", "market_participant_id,"
                    "market_participant_name,pool_member_id\n"
                    f"EXDA,\"{hostile.replace(chr(34), chr(34) * 2)}\",POOL\n")
        latest = i + 2
        urls = ["/", "/versions", f"/versions/{latest}",
                f"/versions/{latest}/entities/market_participant",
                f"/versions/{latest}/entities/market_participant?q=EXDA",
                "/entities/market_participant/history?market_participant_id=EXDA",
                f"/diff?from={latest - 1}&to={latest}", "/releases"]
        shown = 0
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, url
            text = response.get_data(as_text=True)
            assert hostile not in text, url
            assert "<script>alert" not in text and "<img src=x" not in text, url
            shown += str(escape(hostile)) in text
        # The value is there, as text, on the pages that show records.
        assert shown >= 3, hostile


def test_a_release_preview_names_changed_fields_too(app: Flask, client: FlaskClient,
                                                   tmp_path: Path) -> None:
    from datetime import timedelta

    from tests.integration.test_scheduler import T0, Clock, plan

    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    path = tmp_path / "market_participant.csv"
    path.write_text("market_participant_id,market_participant_name,pool_member_id\n"
                    "EXDA,Exemplar Distribution East Ltd,POOL\n")
    assert app.test_cli_runner().invoke(
        args=["load", "--format", "csv", "--mode", "upsert", str(path)]).exit_code == 0
    deadline = T0 + timedelta(days=1)
    release_id = plan(app, deadline, T0 + timedelta(days=2))
    clock = Clock(app, deadline + timedelta(seconds=1))
    assert clock.runner.freeze_job(release_id, deadline).outcome == "frozen"
    [change] = client.get(f"{API}/releases/{release_id}/preview").get_json()["changes"]
    assert (change["op"], change["changed"]) == ("update", ["pool_member_id"])
    assert "previous" not in change
    [change] = client.get(f"{API}/releases/{release_id}/preview?detail=previous"
                          ).get_json()["changes"]
    assert change["previous"]["pool_member_id"] == "EXDA"
