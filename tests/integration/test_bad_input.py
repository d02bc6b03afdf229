"""The corpus of broken input, sent through the real HTTP API.

Every refused load must answer with a problem+json body whose ``errors`` say where the problem
is (entity, file, line, field, value) and why, and must leave the store exactly as it was: the
draft, the latest version, the list of loads and the stored rows. Each test starts from a
store with a published version and a non-empty draft, so that "nothing changed" means
something. Bad query input on the public endpoints must answer 4xx problem+json, never 500.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from isd_service.adapters.orm import CatalogueEntity, Load, Record, StagedChange
from isd_service.entrypoints.flask_db import session
from tests.conftest import Rows, restore, saved_rows

PROBLEM = "application/problem+json"
LOADS = "/api/v1/admin/loads"

GSP_HEADER = '"Gsp Group ID","GSP Group Name"\n'
GSP_FILE = (GSP_HEADER + '"_A","Eastern"\n"_B","East Midlands"\n"_C","London"\n').encode()
CLOCK_HEADER = ('"Time Pattern Regime ID","Day of the Week ID","Start Day","Start Month",'
                '"End Day","End Month","Start Time","End Time"\n')
CLOCK_FILE = (CLOCK_HEADER + '"00001","1","1","1","31","12","00:00","24:00"\n').encode()
LLFC_HEADER = ('"Market Participant ID","Market Participant Role Code",'
               '"Effective From Date (MPR)","Line Loss Factor Class ID",'
               '"Effective From Settlement Date (LLFC)","Line Loss Factor Class Description",'
               '"MS Specific LLF Class Indicator","Effective To Settlement Date (LLFC)"\n')
LLFC_FILE = (LLFC_HEADER + '"EELC","R","01/04/1996","001","01/04/1996","Domestic","A",""\n'
             ).encode()


def gsp(*rows: str, header: str = GSP_HEADER) -> bytes:
    """An MDD GSP_Group file with the given data lines (each already CSV text)."""
    return (header + "".join(r + "\n" for r in rows)).encode()


def llfc(effective_from: str = "01/04/1996", effective_to: str = "",
         indicator: str = "A") -> bytes:
    return (LLFC_HEADER + f'"EELC","R","01/04/1996","002","{effective_from}",'
            f'"Business","{indicator}","{effective_to}"\n').encode()


def clock(day: str = "2", start_time: str = "00:00", end_time: str = "24:00") -> bytes:
    return (CLOCK_HEADER + f'"00002","{day}","1","1","31","12","{start_time}","{end_time}"\n'
            ).encode()


def post_load(
    client: FlaskClient,
    headers: dict[str, str],
    files: list[tuple[str, bytes]],
    *,
    fmt: str | None = "mdd-csv",
    mode: str | None = "replace",
    entity: str | None = None,
) -> TestResponse:
    data: dict[str, Any] = {}
    if fmt is not None:
        data["format"] = fmt
    if mode is not None:
        data["mode"] = mode
    if entity is not None:
        data["entity"] = entity
    if files:
        data["file"] = [(io.BytesIO(content), name) for name, content in files]
    return client.post(LOADS, data=data, headers=headers, content_type="multipart/form-data")


def publish(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.post("/api/v1/admin/publications", json={}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@dataclass
class Store:
    """A store with version 1 published and one change staged, and ways to probe it."""

    app: Flask
    client: FlaskClient
    headers: dict[str, str]

    def state(self) -> dict[str, Any]:
        """Everything a refused load must leave alone, through the API and in the tables."""
        answers = {}
        for url in ("/api/v1/admin/draft", "/api/v1/versions/latest", LOADS):
            response = self.client.get(url, headers=self.headers)
            assert response.status_code == 200, (url, response.get_json())
            answers[url] = response.get_json()
        with self.app.app_context():
            db = session()
            answers["record rows"] = db.execute(
                select(Record.entity_id, Record.key, Record.data, Record.valid_from,
                       Record.valid_to).order_by(Record.id)).all()
            answers["draft rows"] = db.execute(
                select(StagedChange.entity_id, StagedChange.key, StagedChange.op,
                       StagedChange.data, StagedChange.load_id)
                .order_by(StagedChange.entity_id, StagedChange.key)).all()
            answers["load rows"] = db.scalar(select(Load.id).order_by(Load.id.desc()).limit(1))
            answers["catalogue"] = db.scalars(
                select(CatalogueEntity.id).order_by(CatalogueEntity.position)).all()
        return answers

    def load(self, files: list[tuple[str, bytes]], **form: Any) -> TestResponse:
        return post_load(self.client, self.headers, files, **form)

    def refuse(
        self, files: list[tuple[str, bytes]], *, status: int = 422,
        send: Callable[[], TestResponse] | None = None, **form: Any,
    ) -> dict[str, Any]:
        """Send a load that must be refused; check the answer's form and that nothing moved."""
        before = self.state()
        response = send() if send is not None else self.load(files, **form)
        body = problem_body(response, status)
        after = self.state()
        assert after == before, "a refused load changed the store"
        return body

    def accept(self, files: list[tuple[str, bytes]], **form: Any) -> dict[str, Any]:
        response = self.load(files, **form)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def records(self, entity: str, **query: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/api/v1/entities/{entity}/records", query_string=query)
        assert response.status_code == 200, response.get_json()
        return response.get_json()["records"]


def problem_body(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    if "errors" in body and "error_count" in body:
        assert body["error_count"] >= len(body["errors"]) >= 1
        assert body["errors_truncated"] == (body["error_count"] > len(body["errors"]))
    return body


def only_error(body: dict[str, Any], *, says: str | tuple[str, ...], **where: Any) -> dict:
    """The body has exactly one error; it is at ``where`` and its message says ``says``."""
    errors = body["errors"]
    assert len(errors) == 1, errors
    return error_at(body, says=says, **where)


def error_at(body: dict[str, Any], *, says: str | tuple[str, ...], **where: Any) -> dict:
    """One of the body's errors is at ``where`` (every key given) and says ``says``."""
    matches = [e for e in body["errors"] if all(e.get(k) == v for k, v in where.items())]
    assert matches, f"no error at {where} in {body['errors']}"
    error = matches[0]
    for part in (says,) if isinstance(says, str) else says:
        assert part.lower() in error["message"].lower(), error
    return error


@pytest.fixture(scope="module")
def store_rows() -> list[Rows]:
    """The rows of the first store built (tokens aside), for the next tests to write back."""
    return []


@pytest.fixture
def store(app: Flask, client: FlaskClient, admin_headers: dict[str, str],
          store_rows: list[Rows]) -> Store:
    s = Store(app, client, admin_headers)
    if store_rows:  # the same loads and publication as below, without doing them again
        restore(app, store_rows[0], keep=("api_token",))
    else:
        s.accept([("GSP_Group_1.csv", GSP_FILE), ("Clock_Interval_1.csv", CLOCK_FILE),
                  ("Line_Loss_Factor_Class_1.csv", LLFC_FILE)])
        publish(client, admin_headers)
        s.accept([("GSP_Group_2.csv", gsp('"_D","Merseyside and North Wales"'))],
                 mode="upsert")
        store_rows.append(saved_rows(app, keep=("api_token",)))
    draft = client.get("/api/v1/admin/draft", headers=admin_headers).get_json()
    assert draft["entities"] == {"gsp_group": {"inserts": 1, "updates": 0, "deletes": 0}}
    return s


# --- dates --------------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "says"), [
    ("31/02/2025", "impossible date"),
    ("2025-13-01", "dd/mm/yyyy"),
    ("yesterday", "dd/mm/yyyy"),
    ("01/02/25", "dd/mm/yyyy"),
    ("1/2/2025", "dd/mm/yyyy"),
    ("29/02/2023", "impossible date"),
])
def test_bad_mdd_date_is_refused(store: Store, written: str, says: str) -> None:
    body = store.refuse([("Line_Loss_Factor_Class_2.csv", llfc(effective_from=written))])
    only_error(body, says=says, entity="line_loss_factor_class",
               file="Line_Loss_Factor_Class_2.csv", line=2,
               field="effective_from_settlement_date_llfc", value=written)


@pytest.mark.parametrize(("written", "says"), [
    ("2025-13-01", "impossible date"),
    ("2025-02-31", "impossible date"),
    ("31/02/2025", "YYYY-MM-DD"),
    ("yesterday", "YYYY-MM-DD"),
    ("25-02-01", "YYYY-MM-DD"),
])
def test_bad_iso_date_in_generic_csv_is_refused(store: Store, written: str, says: str) -> None:
    data = ("profile_class_id,effective_from_settlement_date_pcla,profile_class_description,"
            f"switched_load_profile_class_ind\n1,{written},Domestic Unrestricted,F\n").encode()
    body = store.refuse([("profile_class.csv", data)], fmt="csv")
    only_error(body, says=says, entity="profile_class", file="profile_class.csv", line=2,
               field="effective_from_settlement_date_pcla", value=written)


def test_bad_date_in_json_is_refused(store: Store) -> None:
    record = {"profile_class_id": "1", "effective_from_settlement_date_pcla": "01/04/1996",
              "profile_class_description": "Domestic", "switched_load_profile_class_ind": "F"}
    body = store.refuse([("pc.json", json.dumps([record]).encode())], fmt="json",
                        entity="profile_class")
    only_error(body, says="YYYY-MM-DD", entity="profile_class", file="pc.json", line=1,
               field="effective_from_settlement_date_pcla", value="01/04/1996")


def test_effective_to_before_effective_from_is_refused(store: Store) -> None:
    body = store.refuse([("Line_Loss_Factor_Class_2.csv",
                          llfc(effective_from="01/04/2020", effective_to="31/03/2020"))])
    error = only_error(body, says=("effective-to", "before", "effective-from"),
                       entity="line_loss_factor_class", file="Line_Loss_Factor_Class_2.csv",
                       line=2, field="effective_to_settlement_date_llfc")
    # the value is the one the person wrote, so that they can find it in their file
    assert error["value"] == "31/03/2020"


def test_effective_to_equal_to_effective_from_is_accepted(store: Store) -> None:
    body = store.accept([("Line_Loss_Factor_Class_2.csv",
                          llfc(effective_from="01/04/2020", effective_to="01/04/2020"))],
                        mode="upsert")
    assert body["inserted"] == 1


# --- shape of the file --------------------------------------------------------------------

def test_ragged_rows_are_refused_with_their_lines(store: Store) -> None:
    data = gsp('"_D","Merseyside"', '"_E"', '"_F","Northern","extra"', '"_G","North Western"')
    body = store.refuse([("GSP_Group_2.csv", data)])
    assert body["error_count"] == 2
    error_at(body, says=("expected 2 fields", "found 1"), entity="gsp_group",
             file="GSP_Group_2.csv", line=3)
    error_at(body, says=("expected 2 fields", "found 3"), entity="gsp_group",
             file="GSP_Group_2.csv", line=4)


def test_unknown_column_is_refused(store: Store) -> None:
    data = gsp('"_D","Merseyside","red"', header='"Gsp Group ID","GSP Group Name","Colour"\n')
    body = store.refuse([("GSP_Group_2.csv", data)])
    only_error(body, says=("unknown column", "Colour"), entity="gsp_group",
               file="GSP_Group_2.csv", line=1, value="Colour")


def test_repeated_column_is_refused(store: Store) -> None:
    data = gsp('"_D","Merseyside","_D"', header='"Gsp Group ID","GSP Group Name","Gsp Group ID"\n')
    body = store.refuse([("GSP_Group_2.csv", data)])
    only_error(body, says="twice", entity="gsp_group", file="GSP_Group_2.csv", line=1,
               field="gsp_group_id")


def test_missing_required_column_is_refused(store: Store) -> None:
    body = store.refuse([("GSP_Group_2.csv", gsp('"_D"', header='"Gsp Group ID"\n'))])
    only_error(body, says=("required column", "GSP Group Name", "missing"), entity="gsp_group",
               file="GSP_Group_2.csv", line=1, field="gsp_group_name")


def test_missing_optional_column_is_accepted(store: Store) -> None:
    header = ('"Profile Class ID","Effective From Settlement Date (PCLA)",'
              '"Profile Class Description","Switched Load Profile Class Ind"\n')
    data = (header + '"1","01/04/1996","Domestic Unrestricted","F"\n').encode()
    assert store.accept([("Profile_Class_2.csv", data)])["inserted"] == 1


def test_required_value_empty_is_refused(store: Store) -> None:
    body = store.refuse([("GSP_Group_2.csv", gsp('"_D","Merseyside"', '"_E",""'))])
    only_error(body, says="required value is missing", entity="gsp_group",
               file="GSP_Group_2.csv", line=3, field="gsp_group_name")


def test_duplicate_key_names_both_lines(store: Store) -> None:
    data = gsp('"_A","Eastern"', '"_D","Merseyside"', '"_A","Eastern again"')
    body = store.refuse([("GSP_Group_2.csv", data)])
    error = only_error(body, says=("duplicate key", "line 2"), entity="gsp_group",
                       file="GSP_Group_2.csv", line=4, field="gsp_group_id", value="_A")
    assert "line 4" not in error["message"]  # the other line is the error's own line


def test_duplicate_key_of_several_fields_is_refused(store: Store) -> None:
    row = '"00002","3","1","1","31","12","07:00","24:00"'
    data = (CLOCK_HEADER + row + "\n" + row.replace('"31"', '"30"') + "\n").encode()
    body = store.refuse([("Clock_Interval_2.csv", data)])
    only_error(body, says=("duplicate key", "line 2"), entity="clock_interval",
               file="Clock_Interval_2.csv", line=3)


def test_value_longer_than_max_length_is_refused(store: Store) -> None:
    body = store.refuse([("GSP_Group_2.csv", gsp('"_AB","Eastern"'))])
    only_error(body, says="longer than 2 characters", entity="gsp_group",
               file="GSP_Group_2.csv", line=2, field="gsp_group_id", value="_AB")


def test_enum_value_not_allowed_is_refused(store: Store) -> None:
    body = store.refuse([("Line_Loss_Factor_Class_2.csv", llfc(indicator="Z"))])
    only_error(body, says="not one of A, B, C, D", entity="line_loss_factor_class",
               file="Line_Loss_Factor_Class_2.csv", line=2,
               field="ms_specific_llf_class_indicator", value="Z")


def test_enum_is_case_sensitive(store: Store) -> None:
    body = store.refuse([("Line_Loss_Factor_Class_2.csv", llfc(indicator="a"))])
    only_error(body, says="not one of", field="ms_specific_llf_class_indicator", value="a")


@pytest.mark.parametrize("written", ["Mon", "1.5", " 1", "1e3", "0x1", "", "99999999999999999999"])
def test_non_integer_in_integer_field_is_refused(store: Store, written: str) -> None:
    body = store.refuse([("Clock_Interval_2.csv", clock(day=written))])
    says = "required value is missing" if written == "" else ("integer",)
    only_error(body, says=says, entity="clock_interval", file="Clock_Interval_2.csv", line=2,
               field="day_of_the_week_id", value=written)


@pytest.mark.parametrize(("written", "says"), [
    ("25:00", "00:00 to 24:00"),
    ("24:30", "00:00 to 24:00"),
    ("12:60", "00:00 to 24:00"),
    ("9:00", "HH:MM"),
    ("noon", "HH:MM"),
    ("12:00:00", "HH:MM"),
])
def test_bad_time_is_refused(store: Store, written: str, says: str) -> None:
    body = store.refuse([("Clock_Interval_2.csv", clock(start_time=written))])
    only_error(body, says=says, entity="clock_interval", file="Clock_Interval_2.csv", line=2,
               field="start_time", value=written)


def test_end_time_24_00_is_accepted(store: Store) -> None:
    assert store.accept([("Clock_Interval_2.csv", clock(end_time="24:00"))],
                        mode="upsert")["inserted"] == 1


def test_every_problem_of_a_file_is_reported_at_once(store: Store) -> None:
    data = gsp('"_AB","Eastern"', '"_D",""', '"_E","Midlands"')
    body = store.refuse([("GSP_Group_2.csv", data)])
    assert body["error_count"] == 2
    error_at(body, says="longer than", line=2, field="gsp_group_id")
    error_at(body, says="required", line=3, field="gsp_group_name")


# --- CSV syntax and bytes -----------------------------------------------------------------

def test_unterminated_quote_is_refused_at_its_line(store: Store) -> None:
    data = gsp('"_D","Merseyside', '"_E","Midlands"')
    body = store.refuse([("GSP_Group_2.csv", data)])
    # The quote opened on line 2 is never closed where it should be: point at line 2.
    only_error(body, says="malformed CSV", entity="gsp_group", file="GSP_Group_2.csv", line=2)


def test_unterminated_quote_at_end_of_file_is_refused(store: Store) -> None:
    body = store.refuse([("GSP_Group_2.csv", gsp('"_E","Midlands"', '"_D","Merseyside'))])
    only_error(body, says=("malformed CSV", "end of data"), entity="gsp_group",
               file="GSP_Group_2.csv", line=3)


def test_stray_quote_is_refused(store: Store) -> None:
    body = store.refuse([("GSP_Group_2.csv", gsp('"_E","Midlands"', '"_D"x,"Merseyside"'))])
    only_error(body, says="malformed CSV", entity="gsp_group", file="GSP_Group_2.csv", line=3)


def test_newline_inside_a_quoted_value_is_refused(store: Store) -> None:
    body = store.refuse([("GSP_Group_2.csv", gsp('"_D","Mersey\nside"', '"_E","Midlands"'))])
    only_error(body, says="control character", entity="gsp_group", file="GSP_Group_2.csv",
               line=2, field="gsp_group_name", value="Mersey\nside")


def test_latin1_bytes_are_refused(store: Store) -> None:
    data = GSP_HEADER.encode() + b'"_D","Merseyside"\n"_E","Caf\xe9"\n'
    body = store.refuse([("GSP_Group_2.csv", data)])
    only_error(body, says=("UTF-8", "0xE9"), entity="gsp_group", file="GSP_Group_2.csv",
               line=3)


def test_utf8_bom_is_accepted(store: Store) -> None:
    data = b"\xef\xbb\xbf" + gsp('"_D","Merseyside and North Wales"', '"_E","Midlands"')
    body = store.accept([("GSP_Group_2.csv", data)], mode="upsert")
    assert body["entities"]["gsp_group"] == {"inserted": 1, "updated": 0, "deleted": 0,
                                             "unchanged": 1}
    publish(store.client, store.headers)
    assert {r["gsp_group_id"] for r in store.records("gsp_group")} == {
        "_A", "_B", "_C", "_D", "_E"}


def test_utf8_bom_is_accepted_in_generic_csv_and_json(store: Store) -> None:
    csv_data = b"\xef\xbb\xbfgsp_group_id,gsp_group_name\n_E,Midlands\n"
    assert store.accept([("gsp_group.csv", csv_data)], fmt="csv", mode="upsert")["inserted"] == 1
    json_data = b"\xef\xbb\xbf" + json.dumps([{"gsp_group_id": "_F", "gsp_group_name": "Northern"}
                                               ]).encode()
    assert store.accept([("g.json", json_data)], fmt="json", mode="upsert",
                        entity="gsp_group")["inserted"] == 1


def test_nul_byte_is_refused(store: Store) -> None:
    data = GSP_HEADER.encode() + b'"_D","Merseyside"\n"_E","Mid\x00lands"\n'
    body = store.refuse([("GSP_Group_2.csv", data)])
    only_error(body, says="NUL", entity="gsp_group", file="GSP_Group_2.csv", line=3)


@pytest.mark.parametrize("data", [b"", b"   \n\n \t\r\n"], ids=["empty", "whitespace"])
def test_empty_file_is_refused(store: Store, data: bytes) -> None:
    body = store.refuse([("GSP_Group_2.csv", data)])
    only_error(body, says="empty", entity="gsp_group", file="GSP_Group_2.csv", line=1)


def test_blank_header_line_is_refused(store: Store) -> None:
    body = store.refuse([("GSP_Group_2.csv", b'\n"_D","Merseyside"\n')])
    only_error(body, says="header", entity="gsp_group", file="GSP_Group_2.csv", line=1)


def test_header_only_file_in_replace_mode_empties_the_entity(store: Store) -> None:
    """A header with no rows is a valid, empty entity: replacing with it deletes everything."""
    body = store.accept([("GSP_Group_2.csv", GSP_HEADER.encode())], mode="replace")
    # the three published records and the staged _D are all gone from the draft's view
    assert body["entities"]["gsp_group"]["deleted"] == 4
    draft = store.client.get("/api/v1/admin/draft", headers=store.headers).get_json()
    assert draft["entities"] == {"gsp_group": {"inserts": 0, "updates": 0, "deletes": 3}}
    manifest = publish(store.client, store.headers)
    assert manifest["entities"]["gsp_group"]["records"] == 0
    assert store.records("gsp_group") == []
    assert len(store.records("clock_interval")) == 1  # other entities are untouched


def test_header_only_file_in_upsert_mode_changes_nothing(store: Store) -> None:
    before = store.state()["/api/v1/admin/draft"]
    body = store.accept([("GSP_Group_2.csv", GSP_HEADER.encode())], mode="upsert")
    assert (body["inserted"], body["updated"], body["deleted"]) == (0, 0, 0)
    assert store.state()["/api/v1/admin/draft"] == before


def test_crlf_line_ends_are_accepted(store: Store) -> None:
    data = gsp('"_D","Merseyside and North Wales"', '"_E","Midlands"').replace(b"\n", b"\r\n")
    store.accept([("GSP_Group_2.csv", data)], mode="upsert")
    publish(store.client, store.headers)
    assert store.records("gsp_group", gsp_group_id="_E") == [
        {"gsp_group_id": "_E", "gsp_group_name": "Midlands"}]


def test_enormous_field_is_refused(store: Store) -> None:
    data = gsp('"_D","Merseyside"', '"_E","' + "x" * 150_000 + '"')
    body = store.refuse([("GSP_Group_2.csv", data)])
    only_error(body, says=("field", "limit"), entity="gsp_group", file="GSP_Group_2.csv",
               line=3)


def test_enormous_json_value_is_refused_and_reported_short(store: Store) -> None:
    records = [{"gsp_group_id": "_D", "gsp_group_name": "y" * 150_000}]
    body = store.refuse([("g.json", json.dumps(records).encode())], fmt="json",
                        entity="gsp_group")
    error = only_error(body, says="longer than 30", entity="gsp_group", file="g.json", line=1,
                       field="gsp_group_name")
    assert error["value"].startswith("yyyy") and len(error["value"]) <= 200


def test_too_large_request_is_refused_with_413(store: Store) -> None:
    store.app.config["MAX_CONTENT_LENGTH"] = 4096
    data = gsp(*[f'"_{i % 10}","{"n" * 20}"' for i in range(400)])
    body = store.refuse([("GSP_Group_2.csv", data)], status=413)
    assert "4096" in body["detail"]


def test_one_thousand_bad_rows_are_capped(store: Store) -> None:
    data = gsp(*[f'"_X{i}","Name {i}"' for i in range(1000)])
    body = store.refuse([("GSP_Group_2.csv", data)])
    cap = store.app.config["MAX_REPORTED_ERRORS"]
    assert len(body["errors"]) == cap < 1000
    assert body["error_count"] == 1000
    assert body["errors_truncated"] is True
    assert "1000" in body["detail"]
    assert [e["line"] for e in body["errors"]] == list(range(2, cap + 2))
    assert all(e["field"] == "gsp_group_id" and "longer than 2" in e["message"]
               for e in body["errors"])


def test_errors_under_the_cap_are_not_truncated(store: Store) -> None:
    data = gsp(*[f'"_X{i}","Name {i}"' for i in range(5)])
    body = store.refuse([("GSP_Group_2.csv", data)])
    assert (len(body["errors"]), body["error_count"], body["errors_truncated"]) == (5, 5, False)


# --- which entity, which files ------------------------------------------------------------

def test_unknown_entity_from_file_name_is_refused(store: Store) -> None:
    body = store.refuse([("Market_Widgets_374.csv", gsp('"_D","Merseyside"'))])
    only_error(body, says=("cannot tell which entity", "Market_Widgets_374.csv"),
               file="Market_Widgets_374.csv")


def test_file_name_that_is_not_an_mdd_name_is_refused(store: Store) -> None:
    body = store.refuse([("gsp groups.txt", gsp('"_D","Merseyside"'))])
    only_error(body, says="cannot tell which entity", file="gsp groups.txt")


def test_unknown_entity_field_is_refused(store: Store) -> None:
    body = store.refuse([("GSP_Group_2.csv", gsp('"_D","Merseyside"'))], entity="widgets")
    only_error(body, says=("unknown entity", "widgets"), entity="widgets")


def test_unknown_entity_in_generic_csv_is_refused(store: Store) -> None:
    body = store.refuse([("widgets.csv", b"a,b\n1,2\n")], fmt="csv")
    only_error(body, says="cannot tell which entity", file="widgets.csv")


def test_same_entity_in_two_files_is_refused(store: Store) -> None:
    body = store.refuse([("GSP_Group_2.csv", gsp('"_D","Merseyside"')),
                         ("GSP_Group_3.csv", gsp('"_E","Midlands"'))])
    only_error(body, says=("two files", "GSP_Group_2.csv", "GSP_Group_3.csv"),
               entity="gsp_group")


def test_one_bad_file_refuses_the_whole_load(store: Store) -> None:
    body = store.refuse([("Clock_Interval_2.csv", clock(day="3")),
                         ("GSP_Group_2.csv", gsp('"_AB","Eastern"'))])
    only_error(body, says="longer than", entity="gsp_group", file="GSP_Group_2.csv")


def test_delete_of_a_key_that_does_not_exist_is_refused(store: Store) -> None:
    body = store.refuse([("GSP_Group_2.csv", gsp('"_A","Eastern"', '"_Z","Nowhere"'))],
                        mode="delete")
    only_error(body, says="no record with this key", entity="gsp_group",
               file="GSP_Group_2.csv", line=3, field="gsp_group_id", value="_Z")


def test_delete_of_an_existing_key_is_accepted(store: Store) -> None:
    body = store.accept([("GSP_Group_2.csv", gsp('"_B","East Midlands"'))], mode="delete")
    assert body["deleted"] == 1


@pytest.mark.parametrize("name", ["../../etc/passwd.csv", "/etc/passwd.csv",
                                  "..\\..\\windows\\passwd.csv"])
def test_path_in_file_name_is_not_used_as_a_path(store: Store, name: str) -> None:
    body = store.refuse([(name, b"gsp_group_id,gsp_group_name\n_D,Merseyside\n")], fmt="csv")
    error = only_error(body, says="cannot tell which entity")
    # only a base name is ever used (multipart quoting may already have eaten backslashes)
    assert error["file"].endswith("passwd.csv")
    assert "/" not in error["file"] and "\\" not in error["file"]
    if "/" in name:
        assert error["file"] == "passwd.csv"
    assert "/" not in error["message"] and "\\" not in error["message"]


def test_path_in_file_name_is_read_by_base_name(store: Store) -> None:
    body = store.accept([("../../tmp/GSP_Group_2.csv", gsp('"_E","Midlands"'))], mode="upsert")
    assert body["entities"] == {"gsp_group": {"inserted": 1, "updated": 0, "deleted": 0,
                                              "unchanged": 0}}
    assert [f["name"] for f in body["files"]] == ["GSP_Group_2.csv"]


def test_control_characters_in_a_file_name_are_not_recorded(store: Store) -> None:
    """The load log is the audit trail: a NUL or escape in a file name must not end up in it."""
    response = store.load([("GSP_Group_2\x00\x1b[2J.csv", gsp('"_E","Midlands"'))],
                          mode="upsert", entity="gsp_group")
    if response.status_code == 422:
        problem_body(response, 422)
        return
    assert response.status_code == 201, response.get_json()
    names = [f["name"] for f in response.get_json()["files"]]
    assert not any(ch < " " or ch == "\x7f" for name in names for ch in name), names


# --- JSON ---------------------------------------------------------------------------------

def test_invalid_json_is_refused_with_its_line(store: Store) -> None:
    data = b'[\n{"gsp_group_id": "_D",\n "gsp_group_name": "Merseyside",}\n]'
    body = store.refuse([("g.json", data)], fmt="json", entity="gsp_group")
    only_error(body, says="invalid JSON", file="g.json", line=3)


@pytest.mark.parametrize("doc", [42, "gsp_group", None, {"gsp_group": []}, {"records": {}}])
def test_json_of_the_wrong_shape_is_refused(store: Store, doc: Any) -> None:
    body = store.refuse([("g.json", json.dumps(doc).encode())], fmt="json", entity="gsp_group")
    only_error(body, says="expected", file="g.json")


def test_json_list_without_entity_is_refused(store: Store) -> None:
    records = [{"gsp_group_id": "_D", "gsp_group_name": "Merseyside"}]
    body = store.refuse([("g.json", json.dumps(records).encode())], fmt="json")
    only_error(body, says="entity", file="g.json")


def test_json_records_that_are_not_objects_are_refused(store: Store) -> None:
    data = json.dumps([{"gsp_group_id": "_D", "gsp_group_name": "Merseyside"},
                       ["_E", "Midlands"], "_F"]).encode()
    body = store.refuse([("g.json", data)], fmt="json", entity="gsp_group")
    assert body["error_count"] == 2
    error_at(body, says="must be an object", entity="gsp_group", file="g.json", line=2)
    error_at(body, says="must be an object", entity="gsp_group", file="g.json", line=3)


def test_json_records_not_a_list_is_refused(store: Store) -> None:
    data = json.dumps({"entities": {"gsp_group": {"gsp_group_id": "_D"}}}).encode()
    body = store.refuse([("snap.json", data)], fmt="json")
    only_error(body, says="must be a list", entity="gsp_group", file="snap.json")


def test_json_unknown_entity_is_refused(store: Store) -> None:
    data = json.dumps({"entities": {"widgets": []}}).encode()
    body = store.refuse([("snap.json", data)], fmt="json")
    only_error(body, says=("unknown entity", "widgets"), entity="widgets", file="snap.json")


def test_json_other_entity_than_given_is_refused(store: Store) -> None:
    data = json.dumps({"entities": {"gsp_group": []}}).encode()
    body = store.refuse([("snap.json", data)], fmt="json", entity="clock_interval")
    only_error(body, says="clock_interval", entity="gsp_group", file="snap.json")


def test_json_unknown_field_is_refused(store: Store) -> None:
    data = json.dumps([{"gsp_group_id": "_D", "gsp_group_name": "Merseyside",
                        "colour": "red"}]).encode()
    body = store.refuse([("g.json", data)], fmt="json", entity="gsp_group")
    only_error(body, says=("unknown field", "colour"), entity="gsp_group", file="g.json",
               line=1, field="colour")


def clock_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "time_pattern_regime_id": "00002", "day_of_the_week_id": "1", "start_day": "1",
        "start_month": "1", "end_day": "31", "end_month": "12", "start_time": "00:00",
        "end_time": "24:00"}
    record.update(changes)
    return record


@pytest.mark.parametrize(("field", "value", "says"), [
    ("day_of_the_week_id", 1.0, "float"),
    ("day_of_the_week_id", 1.5, "float"),
    ("day_of_the_week_id", True, "bool"),
    ("day_of_the_week_id", [1], "list"),
    ("day_of_the_week_id", 2**70, "out of range"),
    ("time_pattern_regime_id", 1, "text"),
    ("time_pattern_regime_id", False, "bool"),
    ("time_pattern_regime_id", {"id": "00002"}, "dict"),
    ("start_time", 700, "text"),
])
def test_json_value_of_the_wrong_type_is_refused(
    store: Store, field: str, value: Any, says: str
) -> None:
    data = json.dumps([clock_record(**{field: value})]).encode()
    body = store.refuse([("c.json", data)], fmt="json", entity="clock_interval")
    only_error(body, says=says, entity="clock_interval", file="c.json", line=1, field=field,
               value=value)


def test_json_integers_as_numbers_are_accepted(store: Store) -> None:
    data = json.dumps([clock_record(day_of_the_week_id=2, start_day=1)]).encode()
    assert store.accept([("c.json", data)], fmt="json", entity="clock_interval",
                        mode="upsert")["inserted"] == 1


def test_json_null_for_a_required_field_is_refused(store: Store) -> None:
    data = json.dumps([clock_record(start_time=None)]).encode()
    body = store.refuse([("c.json", data)], fmt="json", entity="clock_interval")
    only_error(body, says="required", entity="clock_interval", file="c.json", line=1,
               field="start_time")


def test_deeply_nested_json_is_refused(store: Store) -> None:
    body = store.refuse([("g.json", b"[" * 100_000 + b"]" * 100_000)], fmt="json",
                        entity="gsp_group")
    only_error(body, says="JSON", file="g.json")


def test_json_number_with_too_many_digits_is_refused(store: Store) -> None:
    data = b'[{"time_pattern_regime_id": "00002", "day_of_the_week_id": ' + b"7" * 5000 + b"}]"
    body = store.refuse([("c.json", data)], fmt="json", entity="clock_interval")
    error_at(body, says=(), file="c.json")


# --- the request itself -------------------------------------------------------------------

def test_json_body_instead_of_multipart_is_refused_with_415(store: Store) -> None:
    def send() -> TestResponse:
        return store.client.post(LOADS, json={"format": "json", "entity": "gsp_group",
                                              "records": [{"gsp_group_id": "_D"}]},
                                 headers=store.headers)

    body = store.refuse([], status=415, send=send)
    assert "multipart/form-data" in body["detail"]


def test_raw_csv_body_is_refused_with_415(store: Store) -> None:
    def send() -> TestResponse:
        return store.client.post(LOADS, data=GSP_FILE, content_type="text/csv",
                                 headers=store.headers)

    store.refuse([], status=415, send=send)


def test_no_file_is_refused(store: Store) -> None:
    body = store.refuse([], mode="upsert")
    assert "file" in body["detail"]


@pytest.mark.parametrize(("form", "field"), [
    ({"fmt": "xlsx"}, "format"),
    ({"mode": "merge"}, "mode"),
    ({"fmt": ""}, "format"),
])
def test_unknown_format_or_mode_is_refused(store: Store, form: dict[str, str],
                                           field: str) -> None:
    body = store.refuse([("GSP_Group_2.csv", gsp('"_D","Merseyside"'))], **form)
    only_error(body, says="must be one of", field=field)


def test_unknown_form_field_is_refused(store: Store) -> None:
    def send() -> TestResponse:
        return store.client.post(
            LOADS, headers=store.headers, content_type="multipart/form-data",
            data={"mode": "upsert", "dry_run": "yes",
                  "file": (io.BytesIO(gsp('"_D","Merseyside"')), "GSP_Group_2.csv")})

    body = store.refuse([], send=send)
    error_at(body, says="unknown", field="dry_run")


def test_load_without_a_token_is_refused_with_401(store: Store) -> None:
    def send() -> TestResponse:
        return post_load(store.client, {}, [("GSP_Group_2.csv", gsp('"_E","Midlands"'))])

    store.refuse([], status=401, send=send)


# --- data that looks dangerous but is just data -------------------------------------------

FREE_TEXT = {
    "id": "free_text", "name": "Free text", "source": "Free_Text", "key": ["code"],
    "fields": [
        {"id": "code", "name": "Code", "type": "string", "max_length": 100, "required": True},
        {"id": "note", "name": "Note", "type": "string", "max_length": 200},
    ],
}


def test_sql_metacharacters_in_keys_are_just_data(store: Store) -> None:
    response = store.client.post("/api/v1/admin/catalogue/entities", json=FREE_TEXT,
                                 headers=store.headers)
    assert response.status_code == 201, response.get_json()
    keys = ["'; DROP TABLE record; --", 'x" OR "1"="1', "50% off_", "back\\slash",
            "Robert'); DELETE FROM draft_change;--", "é ü ☃"]
    lines = ["code,note"] + [
        '"{}",{}'.format(k.replace('"', '""'), f"note {i}") for i, k in enumerate(keys)]
    body = store.accept([("free_text.csv", ("\n".join(lines) + "\n").encode())], fmt="csv",
                        mode="upsert")
    assert body["inserted"] == len(keys)
    data = gsp('"\';","Quote semicolon"')
    assert store.accept([("GSP_Group_9.csv", data)], mode="upsert")["inserted"] == 1
    publish(store.client, store.headers)
    got = {r["code"]: r["note"] for r in store.records("free_text")}
    assert got == {k: f"note {i}" for i, k in enumerate(keys)}
    for i, key in enumerate(keys):
        assert store.records("free_text", code=key) == [{"code": key, "note": f"note {i}"}]
    gsp_ids = {r["gsp_group_id"] for r in store.records("gsp_group")}
    assert gsp_ids == {"_A", "_B", "_C", "_D", "';"}
    assert len(store.records("clock_interval")) == 1


# --- bad query input on the public endpoints ----------------------------------------------

def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(("url", "status"), [
    ("/api/v1/deltas?from=abc", 400),
    ("/api/v1/deltas?from=-1", 400),
    ("/api/v1/deltas?from=99999999999", 400),
    ("/api/v1/deltas?from=1.5", 400),
    ("/api/v1/deltas", 400),
    ("/api/v1/deltas?from=2&to=1", 400),
    ("/api/v1/deltas?from=0&to=0", 400),
    ("/api/v1/deltas?from=1&to=99", 404),
    ("/api/v1/deltas?from=0&format=xml", 400),
    ("/api/v1/deltas?from=0&bogus=1", 400),
    ("/api/v1/deltas?from=0&entity=widgets", 404),
    ("/api/v1/versions/1/snapshot?bogus=1", 400),
    ("/api/v1/versions/1/snapshot?format=xml", 400),
    ("/api/v1/versions/1/snapshot?entity=widgets", 404),
    ("/api/v1/versions/0", 404),
    ("/api/v1/versions/-5", 404),
    ("/api/v1/versions/99", 404),
    ("/api/v1/versions/99999999999999999999", 404),
    ("/api/v1/versions/99999999999999999999/snapshot", 404),
    ("/api/v1/versions/-5/snapshot", 404),
    ("/api/v1/versions/1/mdd/Widgets_1.csv", 404),
    ("/api/v1/versions?limit=0", 400),
    ("/api/v1/versions?limit=100000000", 400),
    ("/api/v1/versions?cursor=abc", 400),
    ("/api/v1/versions?cursor=%C2%B2", 400),
    ("/api/v1/versions?cursor=99999999999999999999", 400),
    ("/api/v1/versions?bogus=1", 400),
    ("/api/v1/catalogue?version=0", 400),
    ("/api/v1/catalogue?version=abc", 400),
    ("/api/v1/catalogue?version=99", 404),
    ("/api/v1/entities/gsp_group/records?limit=1000000", 400),
    ("/api/v1/entities/gsp_group/records?limit=1000000000000000000000000000", 400),
    ("/api/v1/entities/gsp_group/records?limit=0", 400),
    ("/api/v1/entities/gsp_group/records?limit=-1", 400),
    ("/api/v1/entities/gsp_group/records?limit=ten", 400),
    ("/api/v1/entities/gsp_group/records?cursor=not-a-cursor!", 400),
    ("/api/v1/entities/gsp_group/records?cursor=" + cursor_of(42), 400),
    ("/api/v1/entities/gsp_group/records?cursor=" + cursor_of(["_A"]), 400),
    ("/api/v1/entities/gsp_group/records?cursor=%FF%FE", 400),
    ("/api/v1/entities/gsp_group/records?colour=red", 400),
    ("/api/v1/entities/gsp_group/records?gsp_group_id=%00", 400),
    ("/api/v1/entities/gsp_group/records?effective_on=2025-01-01", 400),
    ("/api/v1/entities/line_loss_factor_class/records?effective_on=31/02/2025", 400),
    ("/api/v1/entities/clock_interval/records?day_of_the_week_id=Mon", 400),
    ("/api/v1/entities/clock_interval/records?day_of_the_week_id=99999999999999999999", 400),
    ("/api/v1/entities/clock_interval/records?start_time=25:00", 400),
    ("/api/v1/entities/gsp_group/records?version=0", 400),
    ("/api/v1/entities/gsp_group/records?version=abc", 400),
    ("/api/v1/entities/gsp_group/records?version=99", 404),
    ("/api/v1/entities/widgets/records", 404),
])
def test_bad_query_is_a_4xx_problem(store: Store, url: str, status: int) -> None:
    publish(store.client, store.headers)  # versions 1 and 2 exist
    body = problem_body(store.client.get(url), status)
    if status == 400 and "errors" in body:
        assert all(e["field"] and e["message"] for e in body["errors"])


@pytest.mark.parametrize(("url", "field"), [
    ("/api/v1/deltas?from=abc", "from"),
    ("/api/v1/versions/1/snapshot?bogus=1", "bogus"),
    ("/api/v1/versions/1/snapshot?format=xml", "format"),
    ("/api/v1/entities/gsp_group/records?limit=1000000", "limit"),
    ("/api/v1/entities/gsp_group/records?colour=red", "colour"),
])
def test_bad_query_names_the_parameter(store: Store, url: str, field: str) -> None:
    body = problem_body(store.client.get(url), 400)
    assert [e["field"] for e in body["errors"]] == [field]


def test_cursor_with_a_nul_is_never_a_server_error(store: Store) -> None:
    response = store.client.get("/api/v1/entities/gsp_group/records",
                                query_string={"cursor": cursor_of("\x00")})
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if response.status_code == 400:
        problem_body(response, 400)
