"""Loads, publications and what readers get from them, through the HTTP API only.

Inputs are small hand-made files in the three formats, shaped by seed_data/catalogue.json.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import zipfile
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests import hash_rule
from tests.conftest import Rows, database_of, restore, saved_rows

API = "/api/v1"
ADMIN = f"{API}/admin"
Headers = dict[str, str]
Keyed = dict[str, dict[tuple[Any, ...], dict[str, Any]]]


# --- inputs -----------------------------------------------------------------------------------

GSP_370 = """gsp_group_id,gsp_group_name
_A,Eastern
_B,East Midlands
_C,London
_D,Merseyside and North Wales
0A,Test Zero
AB,Test Upper
ab,Test Lower
Z_,Gwynedd – Môn
"""
MARKET_ROLE_370 = """market_participant_role_code,market_role_description
X,Supplier
R,Distributor
M,Meter Operator
8,Meter Asset Provider (MAP)
"""
SSC_370 = """standard_settlement_configuration_id,effective_from_settlement_date_ssc,\
effective_to_settlement_date_ssc,standard_settlement_configuration_description,\
standard_settlement_configuration_type,teleswitch_user_id,teleswitch_group_id
0393,1996-04-01,,Unrestricted,I,,
393,1996-04-01,,Not the same id as 0393,I,,
0006,1996-04-01,,Two Rate Teleswitched,I,7,102
"""
PROFILE_HEADER = ('"Profile Class ID","Effective From Settlement Date (PCLA)",'
                  '"Profile Class Description","Switched Load Profile Class Ind",'
                  '"Effective To Settlement Date (PCLA)"\n')
PROFILE_370 = PROFILE_HEADER + (
    '"1","01/04/1996","Domestic Unrestricted","F",""\n'
    '"2","01/04/1996","Domestic Economy 7","T",""\n'
    '"3","01/04/1996","Non-domestic Unrestricted","F",""\n'
    '"4","01/04/1996","Non-domestic Economy 7","T",""\n')


def clock(tpr: str, day: int, month: int, start: str, end: str) -> dict[str, Any]:
    return {"time_pattern_regime_id": tpr, "day_of_the_week_id": day, "start_day": 1,
            "start_month": month, "end_day": 31, "end_month": 12, "start_time": start,
            "end_time": end}


CLOCK_370 = {"entities": {"clock_interval": [
    clock("00001", 1, 1, "00:00", "24:00"),
    clock("00001", 1, 2, "00:00", "07:00"),
    clock("00001", 1, 10, "07:00", "24:00"),
    clock("00210", 7, 4, "23:30", "24:00"),
]}}


# --- helpers ----------------------------------------------------------------------------------

def load(client: FlaskClient, headers: Headers, files: dict[str, str | bytes], *,
         fmt: str = "csv", mode: str = "replace", entity: str | None = None,
         status: int = 201) -> dict[str, Any]:
    data: dict[str, Any] = {"format": fmt, "mode": mode}
    if entity is not None:
        data["entity"] = entity
    data["files"] = [(io.BytesIO(c.encode() if isinstance(c, str) else c), name)
                     for name, c in files.items()]
    response = client.post(f"{ADMIN}/loads", headers=headers, data=data,
                           content_type="multipart/form-data")
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def load_json(client: FlaskClient, headers: Headers, doc: Any, *, mode: str = "replace",
              entity: str | None = None, status: int = 201) -> dict[str, Any]:
    return load(client, headers, {"records.json": json.dumps(doc)}, fmt="json", mode=mode,
                entity=entity, status=status)


def publish(client: FlaskClient, headers: Headers, *, status: int = 201,
            **body: Any) -> dict[str, Any]:
    response = client.post(f"{ADMIN}/publications", headers=headers, json=body)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json(force=True)


def fetch(client: FlaskClient, path: str, status: int = 200) -> TestResponse:
    response = client.get(API + path)
    response.get_data()  # read streamed answers to the end
    assert response.status_code == status, (path, response.get_data(as_text=True))
    return response


def get(client: FlaskClient, path: str, status: int = 200) -> Any:
    return json.loads(fetch(client, path, status).get_data(as_text=True))


def snapshot(client: FlaskClient, version: int, entity: str | None = None) -> dict[str, Any]:
    query = f"&entity={entity}" if entity else ""
    return get(client, f"/versions/{version}/snapshot?format=json{query}")["entities"]


def catalogue(client: FlaskClient, version: int) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in get(client, f"/catalogue?version={version}")["entities"]}


def delta(client: FlaskClient, old: int, new: int, entity: str | None = None) -> dict[str, Any]:
    query = f"&entity={entity}" if entity else ""
    return get(client, f"/deltas?from={old}&to={new}{query}")


def draft(client: FlaskClient, headers: Headers) -> dict[str, Any]:
    response = client.get(f"{ADMIN}/draft", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def key_of(definition: dict[str, Any], record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record[k] for k in definition["key"])


def keyed(client: FlaskClient, version: int) -> Keyed:
    """A version's records by entity and key tuple (version 0: nothing)."""
    if version == 0:
        return {}
    defs = catalogue(client, version)
    out: Keyed = {}
    for eid, records in snapshot(client, version).items():
        by_key = {key_of(defs[eid], r): r for r in records}
        assert len(by_key) == len(records), f"{eid}: a key twice in the snapshot"
        out[eid] = by_key
    return out


def apply_delta(base: Keyed, change_set: dict[str, Any]) -> Keyed:
    """What a participant holding `base` gets by applying a delta strictly."""
    state = copy.deepcopy(base)
    definitions: dict[str, dict[str, Any]] = {}
    for c in change_set["catalogue"]:
        if c["op"] == "delete":
            state.pop(c["entity"])
            continue
        definitions[c["entity"]] = c["definition"]
        fields = [f["id"] for f in c["definition"]["fields"]]
        records = state.setdefault(c["entity"], {})
        assert (c["op"] == "insert") == (c["entity"] not in base), c
        for key, record in records.items():  # a changed definition: every field, null if unset
            records[key] = {f: record.get(f) for f in fields}
    for ch in change_set["changes"]:
        records = state.setdefault(ch["entity"], {})
        key = tuple(ch["key"].values())
        if ch["op"] == "delete":
            assert ch["record"] is None
            assert key in records, f"delete of a key the base does not have: {ch}"
            del records[key]
            continue
        record = ch["record"]
        assert {k: record[k] for k in ch["key"]} == ch["key"]
        if ch["op"] == "insert":
            assert key not in records, f"insert of a key the base has: {ch}"
        else:
            assert ch["op"] == "update", ch
            assert key in records, f"update of a key the base does not have: {ch}"
            assert records[key] != record, f"an update that changes nothing: {ch}"
        records[key] = record
    return state


def changes_of(change_set: dict[str, Any]) -> set[tuple[str, str, tuple[Any, ...]]]:
    return {(c["entity"], c["op"], tuple(c["key"].values())) for c in change_set["changes"]}


def assert_problem(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status and body["detail"]
    return body


# --- a hand-made history: 370 to 373 ------------------------------------------------------------

def publish_370(client: FlaskClient, h: Headers, **body: Any) -> dict[str, Any]:
    load(client, h, {"gsp_group.csv": GSP_370, "market_role.csv": MARKET_ROLE_370,
                     "standard_settlement_configuration.csv": SSC_370})
    load(client, h, {"Profile_Class_370.csv": PROFILE_370}, fmt="mdd-csv")
    load_json(client, h, CLOCK_370)
    return publish(client, h, version=370, **body)


def make_371(client: FlaskClient, h: Headers) -> dict[str, Any]:
    gsp = GSP_370.replace("_B,East Midlands", "_B,East Midlands Region")
    gsp = gsp.replace("_C,London\n", "") + "_E,Midlands\n"
    counts = load(client, h, {"gsp_group.csv": gsp})
    assert counts["entities"]["gsp_group"] == {
        "inserted": 1, "updated": 1, "deleted": 1, "unchanged": 6}
    load_json(client, h, {"entities": {"market_role": [{"market_participant_role_code": "M"}]}},
              mode="delete")
    load(client, h, {"Profile_Class_371.csv": PROFILE_HEADER
                     + '"4","01/04/1996","Non-domestic Economy 7","T","31/03/2026"\n'
                     + '"5","01/04/1996","Non-domestic Max Demand <20%","F",""\n'},
         fmt="mdd-csv", mode="upsert")
    load(client, h, {"ssc.csv": SSC_370.replace("Not the same id as 0393", "Renamed 393")},
         entity="standard_settlement_configuration")
    return publish(client, h)


def make_372(client: FlaskClient, h: Headers) -> dict[str, Any]:
    load(client, h, {"gsp_group.csv": "gsp_group_id,gsp_group_name\n_C,London\n"
                     "_B,East Midlands\n"}, mode="upsert")
    load(client, h, {"market_role.csv": "market_participant_role_code,market_role_description\n"
                     "M,Meter Operator\n"}, mode="upsert")
    load(client, h, {"Profile_Class.csv": PROFILE_HEADER
                     + '"4","01/04/1996","Non-domestic Economy 7","T",""\n'},
         fmt="mdd-csv", mode="upsert")
    load(client, h, {"Profile_Class.csv": PROFILE_HEADER
                     + '"5","01/04/1996","Non-domestic Max Demand <20%","F",""\n'},
         fmt="mdd-csv", mode="delete")
    load_json(client, h, {"entities": {"clock_interval": []}})
    return publish(client, h, go_live_date="2026-03-26")


def make_373(client: FlaskClient, h: Headers) -> dict[str, Any]:
    load(client, h, {"gsp_group.csv": "gsp_group_id,gsp_group_name\n"})
    load_json(client, h, [clock("00001", 1, 1, "00:00", "23:30")], entity="clock_interval")
    load(client, h, {"standard_settlement_configuration.csv": SSC_370.splitlines()[0] + "\n"
                     "0393,1996-04-01,,Unrestricted,I,,\n"}, mode="delete")
    return publish(client, h)


HISTORY = [370, 371, 372, 373]


@pytest.fixture(scope="module")
def history_rows() -> list[Rows]:
    """The rows of the first history built (tokens aside), for the next tests to write back."""
    return []


@pytest.fixture
def history(app: Flask, client: FlaskClient, publisher_headers: Headers,
            history_rows: list[Rows]) -> list[int]:
    if history_rows:  # the same loads and publications as below, without doing them again
        restore(app, history_rows[0], keep=("api_token",))
        return HISTORY
    publish_370(client, publisher_headers)
    make_371(client, publisher_headers)
    make_372(client, publisher_headers)
    make_373(client, publisher_headers)
    history_rows.append(saved_rows(app, keep=("api_token",)))
    return HISTORY


# --- version numbers, empty drafts, go-live dates ----------------------------------------------

def test_the_first_version_number_is_chosen_and_each_next_is_previous_plus_one(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    first = publish_370(client, publisher_headers, go_live_date="2025-12-04")
    assert first["version"] == 370 and first["previous_version"] is None
    load(client, publisher_headers, {"gsp_group.csv": GSP_370 + "_F,Northern\n"})
    second = publish(client, publisher_headers)
    assert second["version"] == 371 and second["previous_version"] == 370
    load(client, publisher_headers, {"gsp_group.csv": GSP_370})
    third = publish(client, publisher_headers, version=372)
    assert third["version"] == 372 and third["previous_version"] == 371
    assert get(client, "/versions/latest")["version"] == 372


@pytest.mark.parametrize("wrong", [370, 369, 1])
def test_a_version_number_not_above_the_latest_is_refused_409(
    client: FlaskClient, publisher_headers: Headers, wrong: int
) -> None:
    publish_370(client, publisher_headers)
    load(client, publisher_headers, {"gsp_group.csv": GSP_370 + "_F,Northern\n"})
    pending = draft(client, publisher_headers)
    body = assert_problem(client.post(f"{ADMIN}/publications", headers=publisher_headers,
                                      json={"version": wrong}), 409)
    assert "370" in body["detail"] and "371" in body["detail"]
    assert [v["version"] for v in get(client, "/versions")["versions"]] == [370]
    assert draft(client, publisher_headers) == pending  # the staged change is still there
    assert publish(client, publisher_headers, version=371)["version"] == 371


def test_version_numbers_may_leave_gaps_as_mdd_s_do(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    """375 is not among MDD's public versions: 376 follows 374. Deltas span the gap."""
    v370 = publish_370(client, publisher_headers)
    load(client, publisher_headers, {"gsp_group.csv": GSP_370 + "_F,Northern\n"})
    gap = publish(client, publisher_headers, version=374)
    assert (gap["version"], gap["previous_version"]) == (374, 370)
    load(client, publisher_headers, {"gsp_group.csv": GSP_370})
    after = publish(client, publisher_headers)
    assert (after["version"], after["previous_version"]) == (375, 374)
    fetch(client, "/versions/371", 404)
    for old, new in ((370, 374), (374, 375), (370, 375), (0, 374)):
        assert apply_delta(keyed(client, old), delta(client, old, new)) == keyed(client, new)
    assert delta(client, 370, 375)["changes"] == []
    assert delta(client, 370, 374)["from_sha256"] == v370["sha256"]


@pytest.mark.parametrize("bad", [0, -5, "370", 2**31])
def test_an_impossible_first_version_number_is_refused_422(
    client: FlaskClient, publisher_headers: Headers, bad: Any
) -> None:
    load(client, publisher_headers, {"gsp_group.csv": GSP_370})
    assert_problem(client.post(f"{ADMIN}/publications", headers=publisher_headers,
                               json={"version": bad}), 422)
    fetch(client, "/versions/latest", 404)


def test_an_empty_draft_is_refused_unless_forced(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    v370 = publish_370(client, publisher_headers)
    assert draft(client, publisher_headers)["empty"] is True
    body = assert_problem(client.post(f"{ADMIN}/publications", headers=publisher_headers,
                                      json={}), 409)
    assert "empty" in body["detail"]
    assert get(client, "/versions/latest")["version"] == 370
    # loading what is already published changes nothing: still empty
    counts = load(client, publisher_headers, {"gsp_group.csv": GSP_370})
    assert (counts["inserted"], counts["updated"], counts["deleted"], counts["unchanged"]) == (
        0, 0, 0, 8)
    assert_problem(client.post(f"{ADMIN}/publications", headers=publisher_headers, json={}), 409)

    forced = publish(client, publisher_headers, force=True)
    assert forced["version"] == 371 and forced["previous_version"] == 370
    assert forced["sha256"] == v370["sha256"]
    assert forced["entities"] == v370["entities"]
    assert forced["record_count"] == v370["record_count"]
    assert snapshot(client, 371) == snapshot(client, 370)
    nothing = delta(client, 370, 371)
    assert nothing["changes"] == [] and nothing["catalogue"] == []
    assert nothing["from_sha256"] == nothing["to_sha256"]


def test_go_live_date_is_stored_and_shown(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers, go_live_date="2025-12-04")
    assert get(client, "/versions/370")["go_live_date"] == "2025-12-04"
    load(client, publisher_headers, {"gsp_group.csv": GSP_370 + "_F,Northern\n"})
    assert_problem(client.post(f"{ADMIN}/publications", headers=publisher_headers,
                               json={"go_live_date": "2026-02-30"}), 422)
    assert get(client, "/versions/latest")["version"] == 370
    publish(client, publisher_headers)
    assert get(client, "/versions/371")["go_live_date"] is None
    listed = {v["version"]: v["go_live_date"] for v in get(client, "/versions")["versions"]}
    assert listed == {371: None, 370: "2025-12-04"}


def test_versions_are_listed_newest_first_with_cursor_paging(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    for _ in range(6):
        publish(client, publisher_headers, force=True)
    assert get(client, "/versions/latest")["version"] == 376
    seen: list[int] = []
    path = "/versions?limit=3"
    for _ in range(10):
        page = get(client, path)
        assert len(page["versions"]) <= 3
        seen += [v["version"] for v in page["versions"]]
        if page["next_cursor"] is None:
            break
        path = f"/versions?limit=3&cursor={page['next_cursor']}"
    assert seen == [376, 375, 374, 373, 372, 371, 370]
    manifest = get(client, "/versions/373")
    assert {"version", "published_at", "go_live_date", "previous_version", "sha256",
            "entities", "loads"} <= set(manifest)
    assert manifest["previous_version"] == 372
    fetch(client, "/versions/369", 404)
    fetch(client, "/versions/377", 404)


# --- published versions never change ---------------------------------------------------------

def everything_about(client: FlaskClient, version: int) -> dict[str, bytes]:
    paths = [f"/versions/{version}", f"/versions/{version}/snapshot",
             f"/versions/{version}/snapshot?format=ndjson",
             f"/versions/{version}/snapshot?format=csv",
             f"/versions/{version}/snapshot?format=json&entity=gsp_group",
             f"/versions/{version}/mdd/GSP_Group.csv",
             f"/versions/{version}/mdd/Profile_Class.csv",
             f"/catalogue?version={version}",
             f"/entities/gsp_group/records?version={version}",
             f"/entities/profile_class/records?version={version}&effective_on=2026-04-01"]
    return {p: fetch(client, p).get_data() for p in paths}


def test_a_published_version_never_changes(
    client: FlaskClient, publisher_headers: Headers, admin_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    first = everything_about(client, 370)
    make_371(client, publisher_headers)
    after_371 = everything_about(client, 371)
    make_372(client, publisher_headers)
    make_373(client, publisher_headers)
    # a catalogue change and more loads on top
    response = client.post(f"{ADMIN}/catalogue/entities/gsp_group/fields", headers=admin_headers,
                           json={"id": "gsp_group_region", "name": "GSP Group Region",
                                 "type": "string", "max_length": 20})
    assert response.status_code == 201
    load(client, publisher_headers, {"gsp_group.csv": GSP_370})
    publish(client, publisher_headers)
    assert everything_about(client, 370) == first
    assert everything_about(client, 371) == after_371


# --- load modes and what the draft holds ----------------------------------------------------

def test_replace_works_out_inserts_updates_and_deletes(
    client: FlaskClient, publisher_headers: Headers, loader_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    gsp = (GSP_370.replace("_B,East Midlands", "_B,East Midlands Region")
           .replace("_C,London\n", "").replace("0A,Test Zero\n", "") + "_E,Midlands\n")
    counts = load(client, loader_headers, {"gsp_group.csv": gsp})
    assert (counts["inserted"], counts["updated"], counts["deleted"], counts["unchanged"]) == (
        1, 1, 2, 5)
    assert counts["entities"] == {"gsp_group": {
        "inserted": 1, "updated": 1, "deleted": 2, "unchanged": 5}}
    assert counts["mode"] == "replace" and counts["format"] == "csv"
    assert counts["files"][0]["name"] == "gsp_group.csv"
    assert counts["files"][0]["sha256"] == hashlib.sha256(gsp.encode()).hexdigest()
    pending = draft(client, loader_headers)
    assert pending["base_version"] == 370 and pending["next_version"] == 371
    assert pending["entities"] == {"gsp_group": {"inserts": 1, "updates": 1, "deletes": 2}}
    assert pending["catalogue"] == [] and pending["empty"] is False

    published = publish(client, publisher_headers)
    assert published["entities"]["gsp_group"]["records"] == 7
    assert changes_of(delta(client, 370, 371)) == {
        ("gsp_group", "insert", ("_E",)), ("gsp_group", "update", ("_B",)),
        ("gsp_group", "delete", ("_C",)), ("gsp_group", "delete", ("0A",))}
    loads = get(client, "/versions/371")["loads"]
    assert [ld["id"] for ld in loads] == [counts["id"]]
    assert loads[0]["files"] == ["gsp_group.csv"] and loads[0]["organisation"] == "EXDA"


def test_replace_only_touches_the_entities_it_loads(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    load(client, publisher_headers, {"market_role.csv": MARKET_ROLE_370 + "Z,Other\n"})
    publish(client, publisher_headers)
    assert changes_of(delta(client, 370, 371)) == {("market_role", "insert", ("Z",))}


def test_upsert_changes_only_the_records_given(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    counts = load(client, publisher_headers, {"gsp_group.csv": (
        "gsp_group_id,gsp_group_name\n_B,East Midlands Region\n_F,Northern\n_A,Eastern\n")},
        mode="upsert")
    assert (counts["inserted"], counts["updated"], counts["deleted"], counts["unchanged"]) == (
        1, 1, 0, 1)
    assert draft(client, publisher_headers)["entities"] == {
        "gsp_group": {"inserts": 1, "updates": 1, "deletes": 0}}
    publish(client, publisher_headers)
    after = {r["gsp_group_id"]: r["gsp_group_name"] for r in snapshot(client, 371)["gsp_group"]}
    before = {r["gsp_group_id"]: r["gsp_group_name"] for r in snapshot(client, 370)["gsp_group"]}
    assert after == {**before, "_B": "East Midlands Region", "_F": "Northern"}


def test_delete_removes_the_records_given(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    counts = load(client, publisher_headers, {"gsp_group.csv": (
        "gsp_group_id,gsp_group_name\n_B,East Midlands\nab,Test Lower\n")}, mode="delete")
    assert (counts["inserted"], counts["updated"], counts["deleted"], counts["unchanged"]) == (
        0, 0, 2, 0)
    counts = load_json(client, publisher_headers, [
        {"time_pattern_regime_id": "00001", "day_of_the_week_id": 1, "start_month": 10,
         "start_time": "07:00"}], entity="clock_interval", mode="delete")
    assert counts["deleted"] == 1
    assert draft(client, publisher_headers)["entities"] == {
        "gsp_group": {"inserts": 0, "updates": 0, "deletes": 2},
        "clock_interval": {"inserts": 0, "updates": 0, "deletes": 1}}
    publish(client, publisher_headers)
    assert changes_of(delta(client, 370, 371)) == {
        ("gsp_group", "delete", ("_B",)), ("gsp_group", "delete", ("ab",)),
        ("clock_interval", "delete", ("00001", 1, 10, "07:00"))}


def test_a_delete_file_may_hold_only_the_key_columns(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    counts = load(client, publisher_headers,
                  {"gsp_group.csv": "gsp_group_id\n_B\n"}, mode="delete")
    assert counts["deleted"] == 1
    counts = load(client, publisher_headers, {"Profile_Class.csv": (
        '"Profile Class ID","Effective From Settlement Date (PCLA)"\n"3","01/04/1996"\n')},
        fmt="mdd-csv", mode="delete")
    assert counts["deleted"] == 1


def test_deleting_a_key_that_is_not_there_is_refused_and_changes_nothing(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    load(client, publisher_headers, {"market_role.csv": MARKET_ROLE_370 + "Z,Other\n"})
    before = draft(client, publisher_headers)
    loads_before = client.get(f"{ADMIN}/loads", headers=publisher_headers).get_json()
    body = load(client, publisher_headers, {"gsp_group.csv": (
        "gsp_group_id,gsp_group_name\n_A,Eastern\n_Q,Nowhere\n")}, mode="delete", status=422)
    assert body["errors"][0]["line"] == 3 and body["errors"][0]["value"] == "_Q"
    assert draft(client, publisher_headers) == before
    assert client.get(f"{ADMIN}/loads", headers=publisher_headers).get_json() == loads_before


def test_a_refused_load_reports_every_problem_and_stages_nothing(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    good = "market_role.csv", MARKET_ROLE_370 + "Z,Other\n"
    bad = ("gsp_group_id,gsp_group_name\n"
           "_F,Northern\n"                     # fine
           "_GX,Too long an id\n"              # line 3: longer than 2
           "_H,\n"                             # line 4: name missing
           "_F,Northern again\n")              # line 5: duplicate key
    response = client.post(f"{ADMIN}/loads", headers=publisher_headers,
                           content_type="multipart/form-data",
                           data={"format": "csv", "files": [
                               (io.BytesIO(good[1].encode()), good[0]),
                               (io.BytesIO(bad.encode()), "gsp_group.csv")]})
    body = assert_problem(response, 422)
    assert sorted((e["file"], e["line"]) for e in body["errors"]) == [
        ("gsp_group.csv", 3), ("gsp_group.csv", 4), ("gsp_group.csv", 5)]
    assert body["error_count"] == 3
    assert draft(client, publisher_headers)["entities"] == {}
    assert_problem(client.post(f"{ADMIN}/publications", headers=publisher_headers, json={}), 409)
    profile_bad = PROFILE_HEADER + '"6","2026-04-01","ISO date in an MDD file","F",""\n'
    body = load(client, publisher_headers, {"Profile_Class.csv": profile_bad}, fmt="mdd-csv",
                status=422)
    assert body["errors"][0]["field"] == "effective_from_settlement_date_pcla"
    assert body["errors"][0]["line"] == 2


def test_a_record_added_then_removed_before_publication_is_not_in_the_delta(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    load(client, publisher_headers, {"gsp_group.csv": "gsp_group_id,gsp_group_name\n"
                                     "_F,Northern\n"}, mode="upsert")
    load(client, publisher_headers, {"market_role.csv": MARKET_ROLE_370 + "Z,Other\n"})
    assert draft(client, publisher_headers)["entities"]["gsp_group"]["inserts"] == 1
    counts = load(client, publisher_headers, {"gsp_group.csv": "gsp_group_id,gsp_group_name\n"
                                              "_F,Northern\n"}, mode="delete")
    assert counts["deleted"] == 1
    assert "gsp_group" not in draft(client, publisher_headers)["entities"]
    published = publish(client, publisher_headers)
    assert changes_of(delta(client, 370, 371)) == {("market_role", "insert", ("Z",))}
    assert published["entities"]["gsp_group"] == get(client, "/versions/370")["entities"][
        "gsp_group"]


def test_a_record_changed_and_changed_back_produces_no_change(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    v370 = publish_370(client, publisher_headers)
    load(client, publisher_headers, {"gsp_group.csv": GSP_370.replace("_A,Eastern",
                                                                      "_A,East Anglia")})
    load(client, publisher_headers, {"Profile_Class.csv": PROFILE_HEADER
                                     + '"2","01/04/1996","Domestic Economy 7","T","31/12/2030"\n'},
         fmt="mdd-csv", mode="upsert")
    assert draft(client, publisher_headers)["entities"] == {
        "gsp_group": {"inserts": 0, "updates": 1, "deletes": 0},
        "profile_class": {"inserts": 0, "updates": 1, "deletes": 0}}
    load(client, publisher_headers, {"gsp_group.csv": GSP_370})
    load(client, publisher_headers, {"Profile_Class.csv": PROFILE_370}, fmt="mdd-csv")
    pending = draft(client, publisher_headers)
    assert pending["entities"] == {} and pending["empty"] is True
    assert_problem(client.post(f"{ADMIN}/publications", headers=publisher_headers, json={}), 409)
    forced = publish(client, publisher_headers, force=True)
    assert forced["sha256"] == v370["sha256"]
    assert delta(client, 370, 371)["changes"] == []


def test_discarding_the_draft_drops_every_staged_change(
    client: FlaskClient, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    load(client, publisher_headers, {"gsp_group.csv": "gsp_group_id,gsp_group_name\n"
                                     "_F,Northern\n"}, mode="upsert")
    load(client, publisher_headers, {"market_role.csv": (
        "market_participant_role_code,market_role_description\nX,Supplier\n")}, mode="delete")
    response = client.delete(f"{ADMIN}/draft", headers=publisher_headers)
    assert response.status_code == 200 and response.get_json() == {"discarded": 2}
    assert draft(client, publisher_headers)["entities"] == {}
    assert_problem(client.post(f"{ADMIN}/publications", headers=publisher_headers, json={}), 409)


def test_reloading_a_json_snapshot_changes_nothing_and_can_roll_back(
    client: FlaskClient, publisher_headers: Headers, history: list[int]
) -> None:
    latest = fetch(client, "/versions/373/snapshot").get_data()
    counts = load(client, publisher_headers, {"snapshot_373.json": latest}, fmt="json")
    assert (counts["inserted"], counts["updated"], counts["deleted"], counts["unchanged"]) == (
        0, 0, 0, get(client, "/versions/373")["record_count"])
    assert draft(client, publisher_headers)["empty"] is True
    # correcting mistakes: publish 371's records again as 374
    older = fetch(client, "/versions/371/snapshot").get_data()
    load(client, publisher_headers, {"snapshot_371.json": older}, fmt="json")
    publish(client, publisher_headers)
    assert snapshot(client, 374) == snapshot(client, 371)
    assert get(client, "/versions/374")["sha256"] == get(client, "/versions/371")["sha256"]


# --- deltas -----------------------------------------------------------------------------------

def test_net_changes_over_several_versions(client: FlaskClient, history: list[int]) -> None:
    assert changes_of(delta(client, 370, 371)) == {
        ("gsp_group", "insert", ("_E",)), ("gsp_group", "update", ("_B",)),
        ("gsp_group", "delete", ("_C",)), ("market_role", "delete", ("M",)),
        ("profile_class", "update", ("4", "1996-04-01")),
        ("profile_class", "insert", ("5", "1996-04-01")),
        ("standard_settlement_configuration", "update", ("393", "1996-04-01"))}
    # _B and profile 4 changed and back, _C and M deleted and back, 5 came and went
    assert changes_of(delta(client, 370, 372)) == {
        ("gsp_group", "insert", ("_E",)),
        ("standard_settlement_configuration", "update", ("393", "1996-04-01")),
        ("clock_interval", "delete", ("00001", 1, 1, "00:00")),
        ("clock_interval", "delete", ("00001", 1, 2, "00:00")),
        ("clock_interval", "delete", ("00001", 1, 10, "07:00")),
        ("clock_interval", "delete", ("00210", 7, 4, "23:30"))}
    back = next(c for c in delta(client, 371, 372)["changes"]
                if c["entity"] == "profile_class")
    # a field emptied is sent as null, never left out (MDD's CP1033)
    assert back["op"] == "update" and back["record"] == {
        "profile_class_id": "4", "effective_from_settlement_date_pcla": "1996-04-01",
        "profile_class_description": "Non-domestic Economy 7",
        "switched_load_profile_class_ind": "T", "effective_to_settlement_date_pcla": None}
    assert delta(client, 372, 372)["changes"] == []


def test_snapshot_plus_delta_gives_the_next_snapshot(
    client: FlaskClient, history: list[int]
) -> None:
    versions = [0, *history]
    snaps = {v: keyed(client, v) for v in versions}
    for i, old in enumerate(versions):
        for new in versions[i + 1:]:
            change_set = delta(client, old, new)
            assert change_set["from"] == old and change_set["to"] == new
            assert apply_delta(snaps[old], change_set) == snaps[new], (old, new)


def test_a_delta_from_0_is_the_full_snapshot_as_inserts(
    client: FlaskClient, history: list[int]
) -> None:
    for version in history:
        full = delta(client, 0, version)
        assert full["from_sha256"] is None
        assert full["to_sha256"] == get(client, f"/versions/{version}")["sha256"]
        assert {c["op"] for c in full["changes"]} <= {"insert"}
        defs = catalogue(client, version)
        assert [c["op"] for c in full["catalogue"]] == ["insert"] * len(defs)
        assert {c["entity"]: c["definition"] for c in full["catalogue"]} == defs
        got: dict[str, list[dict[str, Any]]] = {eid: [] for eid in defs}
        for c in full["changes"]:
            got[c["entity"]].append(c["record"])
        assert got == snapshot(client, version)


def test_ndjson_deltas_carry_the_same_changes(client: FlaskClient, history: list[int]) -> None:
    for old, new in [(0, 373), (370, 372), (371, 373)]:
        lines = fetch(client, f"/deltas?from={old}&to={new}&format=ndjson").get_data(
            as_text=True).splitlines()
        head = json.loads(lines[0])
        as_json = delta(client, old, new)
        assert head == {k: v for k, v in as_json.items() if k != "changes"}
        assert [json.loads(line) for line in lines[1:]] == as_json["changes"]


def test_a_delta_for_one_entity_holds_only_that_entity(
    client: FlaskClient, history: list[int]
) -> None:
    whole = delta(client, 0, 372)
    for entity in ("gsp_group", "clock_interval"):
        one = delta(client, 0, 372, entity)
        assert one["changes"] == [c for c in whole["changes"] if c["entity"] == entity]
        assert [c["entity"] for c in one["catalogue"]] == [entity]
    fetch(client, "/deltas?from=370&to=372&entity=no_such_entity", 404)


def test_a_delta_backwards_or_to_an_unknown_version_is_refused(
    client: FlaskClient, history: list[int]
) -> None:
    fetch(client, "/deltas?from=372&to=371", 400)
    fetch(client, "/deltas?from=370&to=374", 404)
    fetch(client, "/deltas?from=369&to=371", 404)
    assert get(client, "/deltas?from=371")["to"] == 373


# --- snapshot formats and hashes -------------------------------------------------------------

def typed(definition: dict[str, Any], row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in definition["fields"]:
        raw = row[f["id"]]
        out[f["id"]] = None if raw == "" else int(raw) if f["type"] == "integer" else raw
    return out


def test_ndjson_and_csv_snapshots_carry_the_same_records_as_json(
    client: FlaskClient, history: list[int]
) -> None:
    for version in (370, 371, 373):
        records = snapshot(client, version)
        defs = catalogue(client, version)
        lines = fetch(client, f"/versions/{version}/snapshot?format=ndjson").get_data(
            as_text=True).splitlines()
        manifest = get(client, f"/versions/{version}")
        # The ndjson's manifest line cannot list downloads: one of them is this very file.
        assert json.loads(lines[0]) == {k: v for k, v in manifest.items()
                                        if k not in ("loads", "downloads")}
        from_ndjson: dict[str, list[dict[str, Any]]] = {eid: [] for eid in defs}
        for line in lines[1:]:
            item = json.loads(line)
            from_ndjson[item["entity"]].append(item["record"])
        assert from_ndjson == records

        response = fetch(client, f"/versions/{version}/snapshot?format=csv")
        assert response.mimetype == "application/zip"
        with zipfile.ZipFile(io.BytesIO(response.get_data())) as zf:
            assert sorted(zf.namelist()) == sorted(f"{eid}.csv" for eid in defs)
            from_csv = {}
            for eid, definition in defs.items():
                text = zf.read(f"{eid}.csv").decode("utf-8")
                reader = csv.DictReader(io.StringIO(text, newline=""))
                assert reader.fieldnames == [f["id"] for f in definition["fields"]]
                from_csv[eid] = [typed(definition, row) for row in reader]
        assert from_csv == records
        assert sum(len(r) for r in records.values()) == manifest["record_count"]


def test_a_snapshot_of_one_entity_in_every_format(
    client: FlaskClient, history: list[int]
) -> None:
    whole = snapshot(client, 371)
    assert snapshot(client, 371, "profile_class") == {"profile_class": whole["profile_class"]}
    lines = fetch(client, "/versions/371/snapshot?format=ndjson&entity=profile_class").get_data(
        as_text=True).splitlines()[1:]
    assert [json.loads(line)["record"] for line in lines] == whole["profile_class"]
    data = fetch(client, "/versions/371/snapshot?format=csv&entity=profile_class").get_data()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["profile_class.csv"]
    fetch(client, "/versions/371/snapshot?entity=no_such_entity", 404)
    fetch(client, "/versions/369/snapshot", 404)


def test_mdd_csv_files_come_back_as_they_were_loaded(
    client: FlaskClient, history: list[int]
) -> None:
    response = fetch(client, "/versions/370/mdd/Profile_Class.csv")
    assert response.mimetype == "text/csv"
    assert response.get_data(as_text=True) == PROFILE_370
    assert "Profile_Class_370.csv" in response.headers["Content-Disposition"]
    assert fetch(client, "/versions/370/mdd/Profile_Class_370.csv").get_data(
        as_text=True) == PROFILE_370
    fetch(client, "/versions/370/mdd/No_Such_Stem.csv", 404)


def test_manifest_hashes_can_be_recomputed_by_the_documented_rule(
    client: FlaskClient, history: list[int]
) -> None:
    for version in history:
        manifest = get(client, f"/versions/{version}")
        defs = catalogue(client, version)
        records = snapshot(client, version)
        assert set(manifest["entities"]) == set(defs)
        for eid, definition in defs.items():
            ordered = sorted(records[eid], key=lambda r, d=definition: "\x1f".join(
                str(r[k]) for k in d["key"]))
            assert records[eid] == ordered, f"{eid} is not in key order"
            assert manifest["entities"][eid] == hash_rule.entity_hash(
                ordered, definition["key"], manifest.get("hash_rule", 1)), eid
        catalogue_sha = hashlib.sha256(json.dumps(
            list(defs.values()), sort_keys=True, separators=(",", ":"),
            ensure_ascii=False).encode("utf-8")).hexdigest()
        assert manifest["catalogue_sha256"] == catalogue_sha
        whole = f"catalogue {catalogue_sha}\n" + "".join(
            f"{eid} {manifest['entities'][eid]['sha256']}\n" for eid in sorted(defs))
        assert manifest["sha256"] == hashlib.sha256(whole.encode("utf-8")).hexdigest()
    # keys order by code point: digits, upper case, "_", lower case
    ids = [r["gsp_group_id"] for r in snapshot(client, 370)["gsp_group"]]
    assert ids == ["0A", "AB", "Z_", "_A", "_B", "_C", "_D", "ab"]


def test_a_streamed_snapshot_gives_its_database_connection_back(
    app: Flask, client: FlaskClient, history: list[int]
) -> None:
    pool = database_of(app).engine.pool
    for path in ("/versions/373/snapshot", "/versions/373/snapshot?format=ndjson",
                 "/deltas?from=370&to=373", "/versions/373/mdd/GSP_Group.csv"):
        fetch(client, path)  # read to the end, as a client does
        assert pool.checkedout() == 0, f"{path} left a connection checked out"


# --- records of one entity ------------------------------------------------------------------

def llfc_rows() -> list[dict[str, Any]]:
    rows = []
    for mp in ("EXDA", "EXDL", "EXDS"):
        for n in range(1, 9):
            base = {"market_participant_id": mp, "market_participant_role_code": "R",
                    "effective_from_date_mpr": "1996-04-01",
                    "line_loss_factor_class_id": f"{n:03d}",
                    "ms_specific_llf_class_indicator": "ABCD"[n % 4]}
            if n % 3 == 0:  # two periods, the first ending the day before the second starts
                rows.append({**base, "effective_from_settlement_date_llfc": "1996-04-01",
                             "line_loss_factor_class_description": f"{mp} class {n} old",
                             "effective_to_settlement_date_llfc": "2017-03-31"})
                rows.append({**base, "effective_from_settlement_date_llfc": "2017-04-01",
                             "line_loss_factor_class_description": f"{mp} class {n}",
                             "effective_to_settlement_date_llfc": None})
            elif n % 3 == 1:
                rows.append({**base, "effective_from_settlement_date_llfc": "2010-10-01",
                             "line_loss_factor_class_description": f"{mp} class {n}",
                             "effective_to_settlement_date_llfc": "2020-01-01"})
            else:
                rows.append({**base, "effective_from_settlement_date_llfc": "2020-01-02",
                             "line_loss_factor_class_description": f"{mp} class {n}",
                             "effective_to_settlement_date_llfc": None})
    rows.append({"market_participant_id": "EXDA", "market_participant_role_code": "R",
                 "effective_from_date_mpr": "1996-04-01", "line_loss_factor_class_id": "1",
                 "effective_from_settlement_date_llfc": "2010-10-01",
                 "line_loss_factor_class_description": "Not class 001",
                 "ms_specific_llf_class_indicator": "C",
                 "effective_to_settlement_date_llfc": None})
    return rows


def expected_records(rows: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if any(k != "effective_on" and r[k] != v for k, v in query.items()):
            continue
        on = query.get("effective_on")
        end = r["effective_to_settlement_date_llfc"]
        if on is not None and not (r["effective_from_settlement_date_llfc"] <= on
                                   and (end is None or on <= end)):
            continue
        out.append(r)
    return out


def all_pages(client: FlaskClient, query: dict[str, str], limit: int) -> list[dict[str, Any]]:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    base = f"/entities/line_loss_factor_class/records?limit={limit}&{params}"
    got: list[dict[str, Any]] = []
    path = base
    for _ in range(200):
        page = get(client, path)
        assert page["entity"] == "line_loss_factor_class"
        assert len(page["records"]) <= limit
        got += page["records"]
        if page["next_cursor"] is None:
            return got
        path = f"{base}&cursor={page['next_cursor']}"
    raise AssertionError("paging did not end")


QUERIES = [
    {},
    {"market_participant_id": "EXDA"},
    {"effective_on": "2020-01-01"},
    {"effective_on": "2020-01-02"},
    {"market_participant_id": "EXDL", "effective_on": "2017-04-01"},
    {"ms_specific_llf_class_indicator": "A", "effective_on": "2017-03-31"},
    {"line_loss_factor_class_id": "001"},
    {"line_loss_factor_class_id": "1"},
    {"effective_from_settlement_date_llfc": "2017-04-01", "market_participant_id": "EXDS"},
    {"market_participant_id": "NONE"},
]


@pytest.mark.parametrize("limit", [1, 3, 7, 5000])
def test_records_with_filters_dates_and_paging_come_exactly_once(
    client: FlaskClient, publisher_headers: Headers, limit: int
) -> None:
    rows = llfc_rows()
    load_json(client, publisher_headers, rows, entity="line_loss_factor_class")
    publish(client, publisher_headers, version=370)

    def ident(r: dict[str, Any]) -> tuple[str, str, str]:
        return (r["market_participant_id"], r["line_loss_factor_class_id"],
                r["effective_from_settlement_date_llfc"])

    for query in QUERIES:
        got = all_pages(client, query, limit)
        want = expected_records(rows, query)
        assert len({ident(r) for r in got}) == len(got), f"{query}: a record twice"
        assert sorted(got, key=ident) == sorted(want, key=ident), query
    assert len(expected_records(rows, {"effective_on": "2020-01-01"})) not in (0, len(rows))


def test_records_of_an_older_version_and_bad_queries(
    client: FlaskClient, publisher_headers: Headers, history: list[int]
) -> None:
    old = get(client, "/entities/gsp_group/records?version=371&limit=5000")
    assert old["version"] == 371
    assert old["records"] == snapshot(client, 371)["gsp_group"]
    assert get(client, "/entities/gsp_group/records")["records"] == []  # all gone in 373
    ssc = get(client, "/entities/standard_settlement_configuration/records?version=370"
                      "&standard_settlement_configuration_id=0393")["records"]
    assert [r["standard_settlement_configuration_description"] for r in ssc] == ["Unrestricted"]
    clock_370 = get(client, "/entities/clock_interval/records?version=370&start_month=10")
    assert [r["start_time"] for r in clock_370["records"]] == ["07:00"]
    fetch(client, "/entities/gsp_group/records?no_such_field=1", 400)
    fetch(client, "/entities/gsp_group/records?effective_on=2020-01-01", 400)
    fetch(client, "/entities/clock_interval/records?start_month=ten", 400)
    fetch(client, "/entities/gsp_group/records?cursor=not-a-cursor!", 400)
    fetch(client, "/entities/no_such_entity/records", 404)
    fetch(client, "/entities/gsp_group/records?version=369", 404)


# --- catalogue changes ---------------------------------------------------------------------

BSC_PARTY = {
    "id": "bsc_party",
    "name": "BSC Party",
    "source": "BSC_Party",
    "key": ["bsc_party_id", "effective_from_date"],
    "effective_from": "effective_from_date",
    "effective_to": "effective_to_date",
    "fields": [
        {"id": "bsc_party_id", "name": "BSC Party ID", "type": "string", "required": True,
         "max_length": 8},
        {"id": "bsc_party_name", "name": "BSC Party Name", "type": "string", "required": True,
         "max_length": 60},
        {"id": "effective_from_date", "name": "Effective From Date", "type": "date",
         "required": True},
        {"id": "effective_to_date", "name": "Effective To Date", "type": "date",
         "required": False},
    ],
}
REGION = {"id": "gsp_group_region", "name": "GSP Group Region", "type": "string",
          "max_length": 20, "description": "Where the group is"}


def test_a_new_entity_goes_out_with_its_records(
    client: FlaskClient, admin_headers: Headers, loader_headers: Headers,
    publisher_headers: Headers,
) -> None:
    publish_370(client, publisher_headers)
    response = client.post(f"{ADMIN}/catalogue/entities", headers=admin_headers, json=BSC_PARTY)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["id"] == "bsc_party"
    assert "bsc_party" in [e["id"] for e in get(client, "/catalogue")["entities"]]
    counts = load(client, loader_headers, {"BSC_Party_371.csv": (
        '"BSC Party ID","BSC Party Name","Effective From Date","Effective To Date"\n'
        '"EXAMPLE1","Example Energy plc","01/04/2001",""\n'
        '"SAMPLE02","Sample Trading Ltd","15/06/2010","30/09/2024"\n')}, fmt="mdd-csv")
    assert counts["entities"] == {"bsc_party": {
        "inserted": 2, "updated": 0, "deleted": 0, "unchanged": 0}}
    pending = draft(client, loader_headers)
    assert pending["entities"] == {"bsc_party": {"inserts": 2, "updates": 0, "deletes": 0}}
    assert [(c["entity"], c["op"]) for c in pending["catalogue"]] == [("bsc_party", "insert")]
    assert pending["catalogue"][0]["definition"]["key"] == BSC_PARTY["key"]

    published = publish(client, publisher_headers)
    assert published["entities"]["bsc_party"]["records"] == 2
    assert "bsc_party" not in catalogue(client, 370)
    assert catalogue(client, 371)["bsc_party"]["fields"] == BSC_PARTY["fields"]
    change_set = delta(client, 370, 371)
    assert [(c["entity"], c["op"]) for c in change_set["catalogue"]] == [("bsc_party", "insert")]
    assert change_set["catalogue"][0]["definition"] == catalogue(client, 371)["bsc_party"]
    assert changes_of(change_set) == {("bsc_party", "insert", ("EXAMPLE1", "2001-04-01")),
                                      ("bsc_party", "insert", ("SAMPLE02", "2010-06-15"))}
    assert apply_delta(keyed(client, 370), change_set) == keyed(client, 371)
    fetch(client, "/versions/370/snapshot?entity=bsc_party", 404)
    fetch(client, "/entities/bsc_party/records?version=370", 404)
    on = get(client, "/entities/bsc_party/records?effective_on=2025-01-01")["records"]
    assert [r["bsc_party_id"] for r in on] == ["EXAMPLE1"]


def test_a_new_entity_without_records_is_still_published(
    client: FlaskClient, admin_headers: Headers, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    assert client.post(f"{ADMIN}/catalogue/entities", headers=admin_headers,
                       json=BSC_PARTY).status_code == 201
    assert draft(client, publisher_headers)["empty"] is False
    published = publish(client, publisher_headers)
    assert published["entities"]["bsc_party"] == {
        "records": 0, "sha256": hashlib.sha256(b"").hexdigest()}
    assert published["sha256"] != get(client, "/versions/370")["sha256"]


def test_a_bad_or_clashing_entity_is_refused_422(
    client: FlaskClient, admin_headers: Headers
) -> None:
    before = get(client, "/catalogue")
    for body in ({**BSC_PARTY, "id": "gsp_group"}, {**BSC_PARTY, "source": "GSP_Group"},
                 {**BSC_PARTY, "key": ["effective_to_date"]}, {**BSC_PARTY, "fields": []},
                 {**BSC_PARTY, "id": "Bad Id"}):
        response = client.post(f"{ADMIN}/catalogue/entities", headers=admin_headers, json=body)
        assert assert_problem(response, 422)["errors"]
    assert get(client, "/catalogue") == before


def test_an_optional_field_added_to_an_entity_with_records(
    client: FlaskClient, admin_headers: Headers, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    response = client.post(f"{ADMIN}/catalogue/entities/gsp_group/fields",
                           headers=admin_headers, json=REGION)
    assert response.status_code == 201, response.get_data(as_text=True)
    pending = draft(client, admin_headers)
    assert pending["entities"] == {} and pending["empty"] is False
    assert [(c["entity"], c["op"]) for c in pending["catalogue"]] == [("gsp_group", "update")]
    assert pending["catalogue"][0]["definition"]["fields"][-1]["id"] == "gsp_group_region"

    published = publish(client, publisher_headers)  # a catalogue change is enough
    assert published["version"] == 371
    assert catalogue(client, 371)["gsp_group"]["fields"][-1] == {**REGION, "required": False}
    assert [f["id"] for f in catalogue(client, 370)["gsp_group"]["fields"]] == [
        "gsp_group_id", "gsp_group_name"]
    assert all(r["gsp_group_region"] is None for r in snapshot(client, 371)["gsp_group"])
    assert all("gsp_group_region" not in r for r in snapshot(client, 370)["gsp_group"])
    change_set = delta(client, 370, 371)
    assert [(c["entity"], c["op"]) for c in change_set["catalogue"]] == [("gsp_group", "update")]
    assert apply_delta(keyed(client, 370), change_set) == keyed(client, 371)
    assert published["entities"]["gsp_group"] != get(client, "/versions/370")["entities"][
        "gsp_group"]
    assert published["entities"]["market_role"] == get(client, "/versions/370")["entities"][
        "market_role"]

    counts = load(client, publisher_headers, {"gsp_group.csv": (
        "gsp_group_id,gsp_group_name,gsp_group_region\n_A,Eastern,East of England\n")},
        mode="upsert")
    assert counts["updated"] == 1
    publish(client, publisher_headers)
    records = get(client, "/entities/gsp_group/records?gsp_group_region=East of England")
    assert [r["gsp_group_id"] for r in records["records"]] == ["_A"]
    mdd = fetch(client, "/versions/372/mdd/GSP_Group.csv").get_data(as_text=True)
    assert mdd.splitlines()[0] == '"Gsp Group ID","GSP Group Name","GSP Group Region"'
    assert fetch(client, "/versions/370/mdd/GSP_Group.csv").get_data(
        as_text=True).splitlines()[0] == '"Gsp Group ID","GSP Group Name"'


def test_a_required_field_on_an_entity_with_records_is_refused(
    client: FlaskClient, admin_headers: Headers, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    load(client, publisher_headers, {"market_role.csv": MARKET_ROLE_370})
    # bsc_party: records staged, none published yet
    assert client.post(f"{ADMIN}/catalogue/entities", headers=admin_headers,
                       json=BSC_PARTY).status_code == 201
    load(client, publisher_headers, {"bsc_party.csv": (
        "bsc_party_id,bsc_party_name,effective_from_date,effective_to_date\n"
        "EXAMPLE1,Example Energy plc,2001-04-01,\n")})
    before = get(client, "/catalogue")
    for entity in ("gsp_group", "bsc_party"):
        response = client.post(f"{ADMIN}/catalogue/entities/{entity}/fields",
                               headers=admin_headers, json={**REGION, "required": True})
        body = assert_problem(response, 422)
        assert any(e["field"] == "required" for e in body["errors"])
    assert get(client, "/catalogue") == before
    # a required field is fine where there is nothing to fill it for
    response = client.post(f"{ADMIN}/catalogue/entities/dip_market_role/fields",
                           headers=admin_headers, json={**REGION, "required": True})
    assert response.status_code == 201, response.get_data(as_text=True)


def test_a_clashing_field_or_an_unknown_entity_is_refused(
    client: FlaskClient, admin_headers: Headers, publisher_headers: Headers
) -> None:
    publish_370(client, publisher_headers)
    before = get(client, "/catalogue")
    response = client.post(f"{ADMIN}/catalogue/entities/gsp_group/fields",
                           headers=admin_headers, json={**REGION, "id": "gsp_group_name"})
    assert_problem(response, 422)
    response = client.post(f"{ADMIN}/catalogue/entities/gsp_group/fields",
                           headers=admin_headers, json={**REGION, "name": "GSP Group Name"})
    assert_problem(response, 422)
    response = client.post(f"{ADMIN}/catalogue/entities/no_such_entity/fields",
                           headers=admin_headers, json=REGION)
    assert_problem(response, 404)
    assert get(client, "/catalogue") == before
    assert draft(client, admin_headers)["catalogue"] == []



SSC_HEADER = ('"Meter Timeswitch Class ID","Effective From Settlement Date (MTC)",'
              '"Market Participant ID","Effective From Settlement Date (MTCPA)",'
              '"Standard Settlement Configuration ID","Effective From Settlement Date (VMTCSC)",'
              '"Line Loss Factor Class ID","Effective From Settlement Date (VMTCLSC)",'
              '"{last}"\n')
SSC_ROW = ('"801","01/04/1996","EELC","01/04/1996","0393","01/04/1996","021","01/04/1996",'
           '""\n')


def test_a_header_that_differs_from_the_catalogue_is_named_and_corrected_by_an_admin(
    client: FlaskClient, admin_headers: Headers, publisher_headers: Headers
) -> None:
    """The catalogue's Valid_MTC_LLFC_SSC_Combination is a best guess: a real file whose
    header differs is refused naming the file and the column, an admin renames the field,
    and the same file then loads."""
    publish_370(client, publisher_headers)
    name = "Valid_MTC_LLFC_SSC_Combination_380.csv"
    real = SSC_HEADER.format(last="Effective To Settlement Date (VMTCLS)") + SSC_ROW
    refused = load(client, publisher_headers, {name: real}, fmt="mdd-csv", status=422)
    assert {(e["file"], e["line"], e["value"]) for e in refused["errors"]
            if e["message"].startswith("unknown column")} == {
        (name, 1, "Effective To Settlement Date (VMTCLS)")}
    assert draft(client, publisher_headers)["entities"] == {}

    field = "/catalogue/entities/valid_mtc_llfc_ssc_combination/fields"
    assert client.patch(f"{ADMIN}{field}/effective_to_settlement_date_vmtclsc",
                        headers=publisher_headers, json={"name": "x"}).status_code == 403
    for bad, status in (({"type": "integer"}, 422), ({}, 422),
                        ({"name": "Line Loss Factor Class ID"}, 422)):
        assert client.patch(f"{ADMIN}{field}/effective_to_settlement_date_vmtclsc",
                            headers=admin_headers, json=bad).status_code == status
    assert client.patch(f"{ADMIN}{field}/nothing", headers=admin_headers,
                        json={"name": "x"}).status_code == 404
    renamed = client.patch(f"{ADMIN}{field}/effective_to_settlement_date_vmtclsc",
                           headers=admin_headers,
                           json={"name": "Effective To Settlement Date (VMTCLS)"})
    assert renamed.status_code == 200, renamed.get_json()
    assert load(client, publisher_headers, {name: real}, fmt="mdd-csv")["inserted"] == 1
    published = publish(client, publisher_headers)
    change_set = delta(client, 370, published["version"])
    assert [(c["entity"], c["op"]) for c in change_set["catalogue"]] == [
        ("valid_mtc_llfc_ssc_combination", "update")]
    mdd = fetch(client, f"/versions/{published['version']}/mdd/"
                        "Valid_MTC_LLFC_SSC_Combination.csv").get_data(as_text=True)
    assert mdd == real
    assert apply_delta(keyed(client, 370), change_set) == keyed(client, published["version"])
