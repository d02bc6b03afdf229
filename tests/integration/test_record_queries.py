"""Record queries on real MDD versions: every kind of filter, lists of values, effective_on
and the version, paged through cursors, each compared with an independent filter of the
version's snapshot; and the time budget that stops a query the indexes cannot serve."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from isd_service.adapters.orm import field_index_name
from isd_service.adapters.repository import (
    add_field_indexes,
    field_index_names,
    working_catalogue,
)
from isd_service.config import SettingError, settings
from isd_service.entrypoints.flask_db import session
from tests.conftest import Rows, database_of, mdd_files, restore, saved_rows

API = "/api/v1"
Params = list[tuple[str, str]]


@pytest.fixture(scope="module")
def stored() -> list[Rows]:
    return []


@pytest.fixture
def mdd(app: Flask, client: FlaskClient, stored: list[Rows]) -> FlaskClient:
    """Real MDD 373 and 374, published (built once for the module, then restored)."""
    if stored:
        restore(app, stored[0])
    else:
        runner = app.test_cli_runner()
        for number in (373, 374):
            paths = [str(p) for p in mdd_files(number)]
            result = runner.invoke(args=["load", "--mode", "replace", *paths])
            assert result.exit_code == 0, result.output
            result = runner.invoke(args=["publish", "--version", str(number)])
            assert result.exit_code == 0, result.output
        stored.append(saved_rows(app))
    return client


def get(client: FlaskClient, path: str, status: int = 200) -> Any:
    response = client.get(API + path)
    body = response.get_data(as_text=True)
    assert response.status_code == status, (path, body[:500])
    return json.loads(body)


def snapshot(client: FlaskClient, version: int, entity: str) -> list[dict[str, Any]]:
    return get(client, f"/versions/{version}/snapshot?format=json&entity={entity}")[
        "entities"][entity]


# The module's store never changes (see mdd): (version, entity) -> records in key order.
_KEY_ORDER: dict[tuple[int, str], list[dict[str, Any]]] = {}


def key_order(client: FlaskClient, version: int, entity: str
              ) -> list[dict[str, Any]]:
    """The snapshot's records in key order, worked out here: key fields joined by U+001F,
    compared by code point."""
    if (version, entity) not in _KEY_ORDER:
        _KEY_ORDER[version, entity] = _sorted_snapshot(client, version, entity)
    return _KEY_ORDER[version, entity]


def _sorted_snapshot(client: FlaskClient, version: int, entity: str
                     ) -> list[dict[str, Any]]:
    catalogue = get(client, f"/catalogue?version={version}")["entities"]
    key = next(e["key"] for e in catalogue if e["id"] == entity)
    return sorted(snapshot(client, version, entity),
                  key=lambda r: "\x1f".join(str(r[k]) for k in key))


def matches(record: dict[str, Any], params: Params, start: str | None = None,
            end: str | None = None) -> bool:
    """The filter, written again: a field's values (any of them), empty for no value."""
    wanted: dict[str, set[Any]] = {}
    on = None
    for name, given in params:
        if name == "effective_on":
            on = given
        elif name != "version":
            wanted.setdefault(name, set()).add(None if given == "" else given)
    for name, values in wanted.items():
        value = record[name]
        if (None if value is None else str(value)) not in values:
            return False
    if on is not None:
        assert start is not None
        if record[start] is not None and record[start] > on:
            return False
        if end is not None and record[end] is not None and record[end] < on:
            return False
    return True


def all_pages(client: FlaskClient, entity: str, params: Params, limit: int
              ) -> list[dict[str, Any]]:
    """Every page of a query, following next_cursor; checks each page's size."""
    got: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        query = [*params, ("limit", str(limit))] + ([("cursor", cursor)] if cursor else [])
        page = get(client, f"/entities/{entity}/records?{urlencode(query)}")
        assert len(page["records"]) <= limit
        got += page["records"]
        cursor = page["next_cursor"]
        if cursor is None:
            return got
        assert len(page["records"]) == limit, "a page before the last must be full"
    raise AssertionError("paging did not end within 100 pages")


def check(client: FlaskClient, entity: str, params: Params, *, version: int = 374,
          start: str | None = None, end: str | None = None) -> list[dict[str, Any]]:
    want = [r for r in key_order(client, version, entity) if matches(r, params, start, end)]
    limit = max(3, math.ceil(len(want) / 20))  # a few dozen pages at most
    got = all_pages(client, entity, [("version", str(version)), *params], limit)
    assert got == want, params
    return want


LLFC = "line_loss_factor_class"
LLFC_DATES = {"start": "effective_from_settlement_date_llfc",
              "end": "effective_to_settlement_date_llfc"}


@pytest.mark.parametrize("params", [
    [("market_participant_id", "EELC")],  # string
    [("market_participant_id", "ZZZZ")],  # string, no match
    [("line_loss_factor_class_id", "201")],
    [("effective_from_settlement_date_llfc", "2020-04-01")],  # date
    [("effective_from_settlement_date_llfc", "1901-01-01")],  # date, no match
    [("ms_specific_llf_class_indicator", "C")],  # enum
    [("effective_to_settlement_date_llfc", "")],  # no value
    [("market_participant_id", "EELC"), ("ms_specific_llf_class_indicator", "A")],
])
def test_each_kind_of_field_filter_pages_like_the_snapshot(
        mdd: FlaskClient, params: Params) -> None:
    want = check(mdd, LLFC, params)
    if params[0][1] not in ("ZZZZ", "1901-01-01"):
        assert want, "the filter should match something in MDD 374"
    else:
        assert want == []


@pytest.mark.parametrize("params", [
    [("day_of_the_week_id", "1")],  # integer
    [("start_month", "10"), ("start_time", "07:00")],  # integer and time
    [("start_time", "23:59")],  # time, no match
])
def test_integer_and_time_filters_page_like_the_snapshot(mdd: FlaskClient,
                                                         params: Params) -> None:
    check(mdd, "clock_interval", params)


@pytest.mark.parametrize("params", [
    [("market_participant_id", "EELC"), ("market_participant_id", "EMEB")],
    [("market_participant_id", "EELC"), ("market_participant_id", "ZZZZ"),
     ("market_participant_id", "EELC")],
    [("effective_to_settlement_date_llfc", ""),
     ("effective_to_settlement_date_llfc", "2010-03-31")],
])
def test_a_repeated_field_matches_any_of_its_values(mdd: FlaskClient,
                                                    params: Params) -> None:
    want = check(mdd, LLFC, params)
    values = {v for _, v in params}
    total = 0
    for one in values:  # the list's answer holds exactly the answers of its values
        single = check(mdd, LLFC, [(params[0][0], one)])
        assert single == [r for r in want if matches(r, [(params[0][0], one)])]
        total += len(single)
    assert len(want) == total


@pytest.mark.parametrize("params", [
    [("effective_on", "2026-01-01")],
    [("effective_on", "2010-04-01"), ("market_participant_id", "EELC")],
    [("effective_on", "1990-01-01")],
])
def test_effective_on_alone_and_with_a_field(mdd: FlaskClient, params: Params) -> None:
    check(mdd, LLFC, params, **LLFC_DATES)


def test_an_older_version_is_filtered_as_it_stood(mdd: FlaskClient) -> None:
    params = [("market_participant_id", "EELC"), ("effective_on", "2025-06-01")]
    old = check(mdd, LLFC, params, version=373, **LLFC_DATES)
    new = check(mdd, LLFC, params, version=374, **LLFC_DATES)
    assert old and new
    latest = get(mdd, f"/entities/{LLFC}/records?market_participant_id=EELC&limit=5000")
    assert latest["version"] == 374
    assert latest["records"] == check(mdd, LLFC, [("market_participant_id", "EELC")])


def test_a_cursor_continues_the_same_filtered_query(mdd: FlaskClient) -> None:
    base = f"/entities/{LLFC}/records?market_participant_id=EELC&limit=10"
    first = get(mdd, base)
    second = get(mdd, f"{base}&cursor={first['next_cursor']}")
    both = get(mdd, base.replace("limit=10", "limit=20"))
    assert first["records"] + second["records"] == both["records"]
    # the same cursor under another filter continues that filter after the same key
    other = get(mdd, f"/entities/{LLFC}/records?ms_specific_llf_class_indicator=A&limit=5"
                     f"&cursor={first['next_cursor']}")
    last = first["records"][-1]
    last_key = (last["market_participant_id"], last["line_loss_factor_class_id"],
                last["effective_from_settlement_date_llfc"])
    assert all(r["ms_specific_llf_class_indicator"] == "A" for r in other["records"])
    assert all("\x1f".join((r["market_participant_id"], r["line_loss_factor_class_id"],
                            r["effective_from_settlement_date_llfc"])) > "\x1f".join(last_key)
               for r in other["records"])


def test_too_many_values_and_bad_values_are_refused(mdd: FlaskClient) -> None:
    many = "&".join(f"market_participant_id=P{n:03d}" for n in range(101))
    body = get(mdd, f"/entities/{LLFC}/records?{many}", 400)
    assert body["errors"] == [{"field": "market_participant_id",
                               "message": "at most 100 values may be given, not 101"}]
    body = get(mdd, "/entities/clock_interval/records?start_month=10&start_month=ten", 400)
    assert body["errors"][0]["field"] == "start_month"


def test_a_query_past_the_time_budget_is_stopped_with_a_clear_problem(
        app: Flask, mdd: FlaskClient) -> None:
    # No index serves a day on which nothing is in force: the whole entity is read.
    path = f"/entities/{LLFC}/records?effective_on=1990-01-01"
    assert get(mdd, path)["records"] == []
    app.config["RECORD_QUERY_BUDGET_MS"] = 1
    response = mdd.get(API + path)
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"].endswith("query-too-expensive")
    assert LLFC in problem["detail"] and "1 ms" in problem["detail"]
    assert "filter" in problem["detail"]
    app.config["RECORD_QUERY_BUDGET_MS"] = 2000
    # the stopped query left nothing behind: the same process answers the next one
    assert get(mdd, path)["records"] == []
    assert get(mdd, f"/entities/{LLFC}/records?market_participant_id=EELC&limit=1")["records"]


def test_the_entity_page_filters_through_the_same_query(app: Flask, mdd: FlaskClient) -> None:
    want = [r for r in key_order(mdd, 374, LLFC)
            if matches(r, [("market_participant_id", "EELC")])]
    page = mdd.get(f"/versions/374/entities/{LLFC}?market_participant_id=EELC")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    shown = [r["line_loss_factor_class_description"] for r in want[:50]]
    positions = [html.index(f"<td>{d}</td>") for d in shown[:5]]
    assert positions == sorted(positions)
    assert 'rel="next"' in html


def test_the_entity_page_is_stopped_by_the_budget_too(app: Flask, mdd: FlaskClient) -> None:
    # Without its index, a filter on the participant reads the whole entity.
    index = field_index_name(LLFC, "market_participant_id")
    engine = database_of(app).engine
    with engine.begin() as conn:
        conn.execute(text(f"DROP INDEX {index}"))
    try:
        path = f"/versions/374/entities/{LLFC}?market_participant_id=ZZZZ"
        assert mdd.get(path).status_code == 200
        app.config["RECORD_QUERY_BUDGET_MS"] = 1
        page = mdd.get(path)
        assert page.status_code == 503
        assert "took longer than the 1 ms" in page.get_data(as_text=True)
    finally:
        with app.app_context():
            add_field_indexes(session(), LLFC, ["market_participant_id"])
            session().commit()


def test_every_field_of_the_catalogue_has_its_index(app: Flask, client: FlaskClient,
                                                    admin_headers: dict[str, str]) -> None:
    with app.app_context():
        catalogue = working_catalogue(session())
        names = field_index_names(session())
    assert {field_index_name(e.id, f) for e in catalogue.entities.values()
            for f in e.field_ids} <= names
    entity = {"id": "bsc_party", "name": "BSC Party", "source": "BSC_Party",
              "key": ["bsc_party_id"],
              "fields": [{"id": "bsc_party_id", "name": "BSC Party ID", "type": "string",
                          "required": True, "max_length": 8},
                         {"id": "bsc_party_name", "name": "Name", "type": "string",
                          "max_length": 100}]}
    response = client.post(f"{API}/admin/catalogue/entities", json=entity,
                           headers=admin_headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    with app.app_context():
        names = field_index_names(session())
    assert {field_index_name("bsc_party", "bsc_party_id"),
            field_index_name("bsc_party", "bsc_party_name")} <= names


@pytest.mark.parametrize("text", ["0", "-5", "600001", "soon"])
def test_a_budget_setting_it_cannot_use_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                   text: str) -> None:
    monkeypatch.setenv("ISD_RECORD_QUERY_BUDGET_MS", text)
    with pytest.raises(SettingError, match="ISD_RECORD_QUERY_BUDGET_MS"):
        settings()


def test_a_page_is_written_as_the_apps_json_encoder_writes_it(app: Flask) -> None:
    """The records route writes its answer from the stored texts; the bytes must be those
    the app's encoder gives for the same page, outside ASCII and for DEL too."""
    from isd_service.domain.catalogue import entity_from_dict
    from isd_service.domain.records import encode
    from isd_service.entrypoints.api.public import _record_page

    entity = entity_from_dict({
        "id": "sample", "name": "Sample", "source": "Sample", "key": ["code"],
        "fields": [{"id": "code", "type": "string", "max_length": 20, "required": True},
                   {"id": "count", "type": "integer"},
                   {"id": "note", "type": "string", "max_length": 50}]})
    records = [{"code": "A", "count": 3, "note": 'caf\u00e9 "\u00a3" \\ \x7f \U0001f600 \u2028'},
               {"code": "B\u00fc"}, {"code": "C", "note": "\t\n"}]
    projected = [{f: r.get(f) for f in entity.field_ids} for r in records]
    with app.test_request_context():
        for cursor in (None, "eyJ4Ijp0cnVlfQ"):
            ours = _record_page(entity, 7, [encode(r) for r in records], cursor).get_data()
            theirs = app.json.response({"entity": "sample", "version": 7, "records": projected,
                                        "next_cursor": cursor}).get_data()
            assert ours == theirs
