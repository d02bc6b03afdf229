"""Unit tests of the pure modules: validation, records and catalogue (no database, no Flask)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from isd_service import PROJECT_ROOT
from isd_service.domain.catalogue import (
    MAX_STRING_LENGTH,
    Catalogue,
    CatalogueError,
    EntityDef,
    FieldDef,
    catalogue_changes,
    catalogue_sha256,
    check_new_entity,
    check_new_field,
    entity_from_dict,
    field_from_dict,
)
from isd_service.domain.records import (
    KEY_SEPARATOR,
    decode,
    encode,
    encoder_for,
    entity_hash,
    hashed_line,
    key_dict,
    key_text,
    project,
    projected_json,
    snapshot_hash,
)
from isd_service.domain.validation import MAX_REPORTED_VALUE, Problem, RawRow, coerce, validate_rows

SEED = Path(PROJECT_ROOT) / "seed_data" / "catalogue.json"


@pytest.fixture(scope="module")
def seed() -> Catalogue:
    doc = json.loads(SEED.read_text(encoding="utf-8"))
    return Catalogue.from_list(doc["entities"] if isinstance(doc, dict) else doc)


def string(max_length: int = 5, required: bool = False) -> FieldDef:
    return FieldDef(id="s", name="S", type="string", max_length=max_length, required=required)


INTEGER = FieldDef(id="n", name="N", type="integer")
DATE = FieldDef(id="d", name="D", type="date")
TIME = FieldDef(id="t", name="T", type="time")
ENUM = FieldDef(id="e", name="E", type="enum", values=("F", "T"))


def reason(fdef: FieldDef, raw: Any, **kw: Any) -> str:
    with pytest.raises(ValueError) as caught:
        coerce(fdef, raw, **kw)
    return str(caught.value)


# --- coerce -------------------------------------------------------------------------------

@pytest.mark.parametrize("fdef", [string(), INTEGER, DATE, TIME, ENUM])
@pytest.mark.parametrize("raw", [None, ""])
def test_coerce_no_value_is_none_for_every_type(fdef: FieldDef, raw: Any) -> None:
    assert coerce(fdef, raw) is None


def test_coerce_string_keeps_the_value_as_published() -> None:
    assert coerce(string(), "0393") == "0393"
    assert coerce(string(), " _A ") == " _A "
    assert coerce(string(5), "ééééé") == "ééééé"  # characters, not bytes


def test_coerce_string_longer_than_max_length() -> None:
    assert coerce(string(3), "abc") == "abc"
    assert reason(string(3), "abcd") == "longer than 3 characters (4)"


@pytest.mark.parametrize("raw", ["a\tb", "a\nb", "a\rb", "a\x00b", "a\x7fb", "\x1f"])
def test_coerce_refuses_control_characters(raw: str) -> None:
    assert "control character" in reason(string(10), raw)


def test_coerce_string_refuses_numbers_and_other_json_types() -> None:
    assert "got a number" in reason(string(), 12)
    assert "bool" in reason(string(), True)
    assert "float" in reason(string(), 1.5)
    assert "list" in reason(string(), ["a"])


@pytest.mark.parametrize(("raw", "value"), [
    ("0", 0), ("42", 42), ("-7", -7), ("007", 7), (5, 5), (-5, 5 * -1),
    (str(2**63 - 1), 2**63 - 1), ("9" * 18, int("9" * 18)),
])
def test_coerce_integer(raw: Any, value: int) -> None:
    assert coerce(INTEGER, raw) == value


@pytest.mark.parametrize(("raw", "says"), [
    ("1.5", "not an integer"), ("1.0", "not an integer"), (" 1", "not an integer"),
    ("1 ", "not an integer"), ("+1", "not an integer"), ("1e3", "not an integer"),
    ("one", "not an integer"), ("0x10", "not an integer"), ("١", "not an integer"),
    ("9" * 20, "not an integer"), (str(2**63), "out of range"), (2**63, "out of range"),
    (-(2**64), "out of range"), (1.0, "float"), (True, "bool"), (False, "bool"),
])
def test_coerce_integer_refusals(raw: Any, says: str) -> None:
    assert says in reason(INTEGER, raw)


def test_coerce_enum() -> None:
    assert coerce(ENUM, "T") == "T"
    assert reason(ENUM, "t") == "not one of F, T"
    assert reason(ENUM, "X") == "not one of F, T"
    assert "got a number" in reason(ENUM, 1)


@pytest.mark.parametrize(("raw", "iso"), [
    ("01/04/1996", "1996-04-01"), ("29/02/2024", "2024-02-29"), ("31/12/9999", "9999-12-31"),
])
def test_coerce_mdd_date(raw: str, iso: str) -> None:
    assert coerce(DATE, raw, dates="mdd") == iso


@pytest.mark.parametrize(("raw", "says"), [
    ("31/02/2025", "impossible date"), ("29/02/2023", "impossible date"),
    ("00/01/2025", "impossible date"), ("01/13/2025", "impossible date"),
    ("01/01/0000", "impossible date"), ("2025-01-01", "not a date as dd/mm/yyyy"),
    ("1/4/1996", "not a date as dd/mm/yyyy"), ("01/04/96", "not a date as dd/mm/yyyy"),
    ("yesterday", "not a date as dd/mm/yyyy"), ("01/04/1996 00:00", "not a date as dd/mm/yyyy"),
])
def test_coerce_mdd_date_refusals(raw: str, says: str) -> None:
    assert says in reason(DATE, raw, dates="mdd")


def test_coerce_iso_date() -> None:
    assert coerce(DATE, "1996-04-01") == "1996-04-01"
    assert "impossible date" in reason(DATE, "2025-13-01")
    assert "impossible date" in reason(DATE, "2025-02-31")
    assert "YYYY-MM-DD" in reason(DATE, "01/04/1996")
    assert "YYYY-MM-DD" in reason(DATE, "1996-4-1")
    assert "YYYY-MM-DD" in reason(DATE, "1996-04-01T00:00")
    assert "got a number" in reason(DATE, 19960401)


@pytest.mark.parametrize("raw", ["00:00", "07:30", "23:59", "24:00"])
def test_coerce_time(raw: str) -> None:
    assert coerce(TIME, raw) == raw


@pytest.mark.parametrize(("raw", "says"), [
    ("24:30", "00:00 to 24:00"), ("24:01", "00:00 to 24:00"), ("25:00", "00:00 to 24:00"),
    ("12:60", "00:00 to 24:00"), ("99:99", "00:00 to 24:00"), ("9:00", "HH:MM"),
    ("09:00:00", "HH:MM"), ("0900", "HH:MM"), ("noon", "HH:MM"), (900, "got a number"),
])
def test_coerce_time_refusals(raw: Any, says: str) -> None:
    assert says in reason(TIME, raw)


def test_coerce_unknown_type() -> None:
    odd = FieldDef(id="x", name="X", type="blob")
    assert "unknown field type blob" in reason(odd, "a")


# --- validate_rows ------------------------------------------------------------------------

def rows(*values: dict[str, Any], first_line: int = 2) -> list[RawRow]:
    return [RawRow(first_line + i, v) for i, v in enumerate(values)]


def llfc_row(**changes: Any) -> dict[str, Any]:
    row = {"market_participant_id": "EELC", "market_participant_role_code": "R",
           "effective_from_date_mpr": "01/04/1996", "line_loss_factor_class_id": "001",
           "effective_from_settlement_date_llfc": "01/04/1996",
           "line_loss_factor_class_description": "Domestic",
           "ms_specific_llf_class_indicator": "A", "effective_to_settlement_date_llfc": ""}
    row.update(changes)
    return row


def test_validate_rows_types_the_records_and_keys_them(seed: Catalogue) -> None:
    entity = seed.get("line_loss_factor_class")
    assert entity is not None
    result, problems = validate_rows(entity, rows(llfc_row(), llfc_row(
        line_loss_factor_class_id="002", effective_to_settlement_date_llfc="31/03/2020")),
        dates="mdd", file="f.csv")
    assert problems == []
    key = KEY_SEPARATOR.join(["EELC", "001", "1996-04-01"])
    assert result.records[key] == {
        "market_participant_id": "EELC", "market_participant_role_code": "R",
        "effective_from_date_mpr": "1996-04-01", "line_loss_factor_class_id": "001",
        "effective_from_settlement_date_llfc": "1996-04-01",
        "line_loss_factor_class_description": "Domestic",
        "ms_specific_llf_class_indicator": "A"}  # no value: no entry
    assert result.lines == {key: 2, KEY_SEPARATOR.join(["EELC", "002", "1996-04-01"]): 3}
    assert result.file == "f.csv" and result.entity is entity


def test_validate_rows_reports_where_and_why(seed: Catalogue) -> None:
    entity = seed.get("line_loss_factor_class")
    assert entity is not None
    _, problems = validate_rows(entity, rows(
        llfc_row(), llfc_row(line_loss_factor_class_id="0001",
                             ms_specific_llf_class_indicator="Z")),
        dates="mdd", file="LLFC_1.csv")
    assert [p.to_dict() for p in problems] == [
        {"entity": "line_loss_factor_class", "file": "LLFC_1.csv", "line": 3,
         "field": "line_loss_factor_class_id", "value": "0001",
         "message": "longer than 3 characters (4)"},
        {"entity": "line_loss_factor_class", "file": "LLFC_1.csv", "line": 3,
         "field": "ms_specific_llf_class_indicator", "value": "Z",
         "message": "not one of A, B, C, D"},
    ]


def test_validate_rows_required_value_missing(seed: Catalogue) -> None:
    entity = seed.get("gsp_group")
    assert entity is not None
    result, problems = validate_rows(entity, rows({"gsp_group_id": "_A", "gsp_group_name": ""},
                                                  {"gsp_group_id": "_B"}))
    assert [(p.line, p.field, p.message) for p in problems] == [
        (2, "gsp_group_name", "required value is missing"),
        (3, "gsp_group_name", "required value is missing")]
    assert result.records == {}


def test_validate_rows_effective_to_before_from(seed: Catalogue) -> None:
    entity = seed.get("line_loss_factor_class")
    assert entity is not None
    _, problems = validate_rows(entity, rows(
        llfc_row(effective_to_settlement_date_llfc="01/04/1996"),  # same day: fine
        llfc_row(line_loss_factor_class_id="002",
                 effective_to_settlement_date_llfc="31/03/1996")), dates="mdd")
    assert len(problems) == 1
    p = problems[0]
    assert (p.line, p.field) == (3, "effective_to_settlement_date_llfc")
    assert "before effective-from" in p.message


def test_validate_rows_duplicate_key_names_the_first_line(seed: Catalogue) -> None:
    entity = seed.get("gsp_group")
    assert entity is not None
    result, problems = validate_rows(entity, rows(
        {"gsp_group_id": "_A", "gsp_group_name": "Eastern"},
        {"gsp_group_id": "_B", "gsp_group_name": "East Midlands"},
        {"gsp_group_id": "_A", "gsp_group_name": "Other"}), file="g.csv")
    assert [p.to_dict() for p in problems] == [{
        "entity": "gsp_group", "file": "g.csv", "line": 4, "field": "gsp_group_id",
        "value": "_A", "message": "duplicate key: the same gsp_group_id is on line 2"}]
    assert result.records["_A"]["gsp_group_name"] == "Eastern"  # the first one is kept


def test_validate_rows_duplicate_of_canonical_key(seed: Catalogue) -> None:
    """Two spellings of one integer are one key: "01" and "1" in Clock_Interval."""
    entity = seed.get("clock_interval")
    assert entity is not None
    base = {"time_pattern_regime_id": "00001", "day_of_the_week_id": "1", "start_day": "1",
            "start_month": "1", "end_day": "31", "end_month": "12", "start_time": "00:00",
            "end_time": "24:00"}
    _, problems = validate_rows(entity, rows(base, {**base, "day_of_the_week_id": "01"}))
    assert len(problems) == 1 and problems[0].line == 3
    assert "day_of_the_week_id" in problems[0].message and "line 2" in problems[0].message


def test_validate_rows_keys_only_reads_only_the_key(seed: Catalogue) -> None:
    entity = seed.get("line_loss_factor_class")
    assert entity is not None
    row = llfc_row(ms_specific_llf_class_indicator="Z", line_loss_factor_class_description="")
    result, problems = validate_rows(entity, rows(row), dates="mdd", keys_only=True)
    assert problems == []
    assert list(result.records.values()) == [{
        "market_participant_id": "EELC", "line_loss_factor_class_id": "001",
        "effective_from_settlement_date_llfc": "1996-04-01"}]
    _, problems = validate_rows(entity, rows(llfc_row(line_loss_factor_class_id="")),
                                dates="mdd", keys_only=True)
    assert [p.field for p in problems] == ["line_loss_factor_class_id"]


def test_problem_value_is_shortened() -> None:
    long = "x" * 5000
    out = Problem("too long", "e", "f", 2, "s", long).to_dict()
    assert out["value"] == "x" * MAX_REPORTED_VALUE + "..."
    assert Problem("m", value=7).to_dict()["value"] == 7


# --- records ------------------------------------------------------------------------------

@pytest.mark.parametrize("description", [
    "Domestic", 'Say "hi", then', "back\\slash", "Café ☃ 𝄞", "tab\there", "\u2028", ""])
def test_encoder_for_writes_exactly_what_encode_writes(seed: Catalogue, description: str) -> None:
    """The fast encoder of loads must give byte for byte the stored form that hashes use."""
    entity = seed.get("clock_interval")
    assert entity is not None
    fast = encoder_for(entity)
    record = {"time_pattern_regime_id": "00001", "day_of_the_week_id": 1, "start_day": 31,
              "start_month": -12, "end_time": description or None, "start_time": "07:00"}
    assert fast(record) == encode(record)
    assert fast({}) == encode({}) == "{}"
    pc = seed.get("profile_class")
    assert pc is not None
    pc_record = {"profile_class_description": description, "profile_class_id": "1",
                 "switched_load_profile_class_ind": "F"}
    assert encoder_for(pc)(pc_record) == encode(pc_record)


@pytest.mark.parametrize("sort_keys", [False, True])
def test_projected_json_writes_what_json_dumps_of_the_projection_writes(
    seed: Catalogue, sort_keys: bool
) -> None:
    """Snapshot files and publication hashes use it: it must match the documented rule."""
    entity = seed.get("clock_interval")
    assert entity is not None
    write = projected_json(entity, sort_keys=sort_keys)
    for stored in ({"time_pattern_regime_id": "0\"1\\é☃", "day_of_the_week_id": 7},
                   {}, {"start_day": -3, "end_time": "24:00", "start_time": "\u2028"},
                   {"start_day": 1.5, "end_time": ["odd", None]}):
        data = encode(stored)
        expected = json.dumps(project(entity, decode(data)), sort_keys=sort_keys,
                              separators=(",", ":"), ensure_ascii=False)
        assert write(data) == expected
    if sort_keys:
        lines = [encode({"time_pattern_regime_id": f"{i:05d}", "day_of_the_week_id": i % 7})
                 for i in range(2345)]
        digest = hashlib.sha256(b"".join(hashed_line(entity, d) for d in lines)).hexdigest()
        assert entity_hash(entity, lines) == (2345, digest)


def test_key_text_joins_the_key_fields_in_key_order(seed: Catalogue) -> None:
    entity = seed.get("clock_interval")
    assert entity is not None
    record = {"start_time": "07:00", "start_month": 4, "day_of_the_week_id": 1,
              "time_pattern_regime_id": "00001", "end_time": "24:00"}
    assert key_text(entity, record) == "00001\x1f1\x1f4\x1f07:00"
    assert key_dict(entity, record) == {"time_pattern_regime_id": "00001",
                                        "day_of_the_week_id": 1, "start_month": 4,
                                        "start_time": "07:00"}


def test_key_text_keeps_leading_zeros(seed: Catalogue) -> None:
    entity = seed.get("gsp_group")
    assert entity is not None
    assert key_text(entity, {"gsp_group_id": "01"}) != key_text(entity, {"gsp_group_id": "1"})


def test_encode_is_canonical() -> None:
    a = encode({"b": 1, "a": "é", "c": None})
    assert a == '{"a":"é","b":1}'
    assert encode({"a": "é", "b": 1}) == a
    assert decode(a) == {"a": "é", "b": 1}


def test_project_gives_every_field_in_catalogue_order(seed: Catalogue) -> None:
    entity = seed.get("profile_class")
    assert entity is not None
    out = project(entity, {"profile_class_description": "Domestic", "profile_class_id": "1"})
    assert list(out) == entity.field_ids
    assert out["profile_class_id"] == "1"
    assert out["effective_to_settlement_date_pcla"] is None


def test_entity_hash_follows_the_documented_form(seed: Catalogue) -> None:
    entity = seed.get("gsp_group")
    assert entity is not None
    stored = [encode({"gsp_group_id": "_A", "gsp_group_name": "Eastern"}),
              encode({"gsp_group_id": "_B", "gsp_group_name": "East Midlands"})]
    expected = hashlib.sha256(
        b'{"gsp_group_id":"_A","gsp_group_name":"Eastern"}\n'
        b'{"gsp_group_id":"_B","gsp_group_name":"East Midlands"}\n').hexdigest()
    assert entity_hash(entity, stored) == (2, expected)
    assert entity_hash(entity, []) == (0, hashlib.sha256(b"").hexdigest())


def test_entity_hash_includes_nulls_and_ignores_stored_key_order(seed: Catalogue) -> None:
    entity = seed.get("market_participant")
    assert entity is not None
    line = hashed_line(entity, '{"market_participant_name":"N","market_participant_id":"ABCD"}')
    assert line == (b'{"market_participant_id":"ABCD","market_participant_name":"N",'
                    b'"pool_member_id":null}\n')
    one = entity_hash(entity, ['{"market_participant_id":"ABCD","market_participant_name":"N"}'])
    two = entity_hash(entity, ['{"market_participant_name":"N","market_participant_id":"ABCD"}'])
    assert one == two
    changed = entity_hash(entity,
                          ['{"market_participant_id":"ABCD","market_participant_name":"M"}'])
    assert changed != one


def test_entity_hash_is_not_unicode_escaped(seed: Catalogue) -> None:
    entity = seed.get("gsp_group")
    assert entity is not None
    line = hashed_line(entity, encode({"gsp_group_id": "_A", "gsp_group_name": "Caf\u00e9"}))
    assert line == '{"gsp_group_id":"_A","gsp_group_name":"Café"}\n'.encode()


def test_snapshot_hash_follows_the_documented_form() -> None:
    got = snapshot_hash({"b": "22", "a": "11"}, "cc")
    assert got == hashlib.sha256(b"catalogue cc\na 11\nb 22\n").hexdigest()
    assert snapshot_hash({"a": "11", "b": "22"}, "cc") == got
    assert snapshot_hash({"a": "11", "b": "22"}, "cd") != got


# --- catalogue ----------------------------------------------------------------------------

def problems_of(build: Any, data: Any) -> list[dict[str, Any]]:
    with pytest.raises(CatalogueError) as caught:
        build(data)
    return caught.value.problems


def fields_named(problems: list[dict[str, Any]]) -> list[str]:
    return [p["field"] for p in problems]


def test_seed_catalogue_round_trips(seed: Catalogue) -> None:
    assert len(seed.entities) >= 15
    again = Catalogue.from_list(seed.to_list())
    assert again.to_list() == seed.to_list()
    assert again.sha256() == seed.sha256() == catalogue_sha256(seed.to_list())
    for entity in seed.entities.values():
        assert entity_from_dict(entity.to_dict()) == entity


def test_catalogue_by_source_ignores_case(seed: Catalogue) -> None:
    gsp = seed.get("gsp_group")
    assert seed.by_source("gsp_group") is gsp and seed.by_source("GSP_GROUP") is gsp
    assert seed.by_source("GSP_Group_1") is None
    assert "gsp_group" in seed and "widgets" not in seed


def test_catalogue_sha256_is_canonical_json() -> None:
    items = [{"b": 1, "a": "é"}]
    assert catalogue_sha256(items) == hashlib.sha256('[{"a":"é","b":1}]'.encode()).hexdigest()


def test_field_from_dict_accepts_and_defaults() -> None:
    f = field_from_dict({"id": "colour", "type": "enum", "values": ["red", "blue"]})
    assert f == FieldDef(id="colour", name="colour", type="enum", required=False,
                         values=("red", "blue"))
    assert f.to_dict() == {"id": "colour", "name": "colour", "type": "enum",
                           "required": False, "values": ["red", "blue"]}
    s = field_from_dict({"id": "s", "name": "S", "type": "string", "max_length": MAX_STRING_LENGTH,
                         "required": True, "description": "d"})
    assert s.max_length == MAX_STRING_LENGTH and s.required and s.description == "d"


@pytest.mark.parametrize(("data", "where"), [
    ({"id": "Colour", "type": "integer"}, "field.id"),
    ({"id": "1colour", "type": "integer"}, "field.id"),
    ({"id": "col-our", "type": "integer"}, "field.id"),
    ({"id": "c" * 64, "type": "integer"}, "field.id"),
    ({"id": 5, "name": "Five", "type": "integer"}, "field.id"),
    ({"id": "c", "name": " ", "type": "integer"}, "field.name"),
    ({"id": "c", "name": "n" * 201, "type": "integer"}, "field.name"),
    ({"id": "c", "type": "float"}, "field.type"),
    ({"id": "c", "type": "integer", "required": "yes"}, "field.required"),
    ({"id": "c", "type": "string"}, "field.max_length"),
    ({"id": "c", "type": "string", "max_length": 0}, "field.max_length"),
    ({"id": "c", "type": "string", "max_length": MAX_STRING_LENGTH + 1}, "field.max_length"),
    ({"id": "c", "type": "string", "max_length": True}, "field.max_length"),
    ({"id": "c", "type": "string", "max_length": "5"}, "field.max_length"),
    ({"id": "c", "type": "integer", "max_length": 5}, "field.max_length"),
    ({"id": "c", "type": "enum"}, "field.values"),
    ({"id": "c", "type": "enum", "values": []}, "field.values"),
    ({"id": "c", "type": "enum", "values": ["A", "A"]}, "field.values"),
    ({"id": "c", "type": "enum", "values": ["A", ""]}, "field.values"),
    ({"id": "c", "type": "enum", "values": ["A", 1]}, "field.values"),
    ({"id": "c", "type": "string", "max_length": 5, "values": ["A"]}, "field.values"),
    ({"id": "c", "type": "integer", "description": 5}, "field.description"),
    ({"id": "c", "type": "integer", "colour": "red"}, "field.colour"),
])
def test_field_from_dict_refusals(data: dict[str, Any], where: str) -> None:
    problems = problems_of(field_from_dict, data)
    assert fields_named(problems) == [where]
    assert all(p["message"] for p in problems)


def test_field_from_dict_not_an_object() -> None:
    assert problems_of(field_from_dict, ["id"]) == [{"field": "field",
                                                     "message": "must be an object"}]


def test_field_from_dict_reports_every_problem_at_once() -> None:
    problems = problems_of(field_from_dict, {"id": "X", "type": "nope", "extra": 1})
    assert sorted(fields_named(problems)) == ["field.extra", "field.id", "field.type"]


def entity(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "widget", "name": "Widget", "source": "Widget", "key": ["widget_id", "valid_from"],
        "effective_from": "valid_from", "effective_to": "valid_to",
        "fields": [
            {"id": "widget_id", "name": "Widget ID", "type": "string", "max_length": 4,
             "required": True},
            {"id": "valid_from", "name": "Valid From", "type": "date", "required": True},
            {"id": "valid_to", "name": "Valid To", "type": "date"},
            {"id": "size", "name": "Size", "type": "integer"},
        ],
    }
    data.update(changes)
    return data


def test_entity_from_dict_accepts() -> None:
    e = entity_from_dict(entity(description="d"))
    assert e.key == ("widget_id", "valid_from")
    assert e.field_ids == ["widget_id", "valid_from", "valid_to", "size"]
    assert e.field("size") is not None and e.field("nope") is None
    assert e.to_dict()["description"] == "d"


def field_list(*changes: dict[str, Any]) -> list[dict[str, Any]]:
    return [*entity()["fields"], *changes]


@pytest.mark.parametrize(("changes", "where"), [
    ({"id": "Widget"}, "id"),
    ({"name": ""}, "name"),
    ({"source": "Wid get"}, "source"),
    ({"source": "_Widget"}, "source"),
    ({"source": "../Widget"}, "source"),
    ({"fields": []}, "fields"),
    ({"fields": "widget_id"}, "fields"),
    ({"key": []}, "key"),
    ({"key": "widget_id"}, "key"),
    ({"key": ["widget_id", "widget_id"]}, "key"),
    ({"key": ["colour"]}, "key"),
    ({"key": ["size"]}, "key"),
    ({"effective_from": "size"}, "effective_from"),
    ({"effective_from": "nope"}, "effective_from"),
    ({"effective_to": "widget_id"}, "effective_to"),
    ({"effective_from": None}, "effective_to"),
    ({"description": 1}, "description"),
    ({"colour": "red"}, "colour"),
    ({"fields": field_list({"id": "size", "name": "Size 2", "type": "integer"})}, "fields"),
    ({"fields": field_list({"id": "size2", "name": "SIZE", "type": "integer"})}, "fields"),
    ({"fields": field_list({"id": "bad", "type": "float"})}, "fields[4].type"),
])
def test_entity_from_dict_refusals(changes: dict[str, Any], where: str) -> None:
    problems = problems_of(entity_from_dict, entity(**changes))
    assert where in fields_named(problems), problems
    assert all(p["message"] for p in problems)


def test_entity_from_dict_not_an_object() -> None:
    assert fields_named(problems_of(entity_from_dict, [1])) == ["entity"]


def test_catalogue_error_message_lists_every_problem() -> None:
    with pytest.raises(CatalogueError) as caught:
        entity_from_dict(entity(id="W", source="a b"))
    assert "id:" in str(caught.value) and "source:" in str(caught.value)


def test_check_new_entity(seed: Catalogue) -> None:
    clash = entity_from_dict(entity(id="gsp_group", source="gsp_GROUP"))
    assert sorted(fields_named(problems_of(lambda e: check_new_entity(seed, e), clash))) == [
        "id", "source"]
    check_new_entity(seed, entity_from_dict(entity()))  # no clash: no error


def widget() -> EntityDef:
    return entity_from_dict(entity())


def test_check_new_field_accepts_an_optional_field_on_an_entity_with_records() -> None:
    check_new_field(widget(), field_from_dict({"id": "colour", "type": "integer"}),
                    has_records=True)


def test_check_new_field_accepts_a_required_field_on_an_empty_entity() -> None:
    check_new_field(widget(), field_from_dict({"id": "colour", "type": "integer",
                                               "required": True}), has_records=False)


@pytest.mark.parametrize(("definition", "has_records", "where"), [
    ({"id": "size", "name": "Other", "type": "integer"}, False, "id"),
    ({"id": "other", "name": "size", "type": "integer"}, False, "name"),
    ({"id": "other", "name": "WIDGET ID", "type": "integer"}, False, "name"),
    ({"id": "other", "type": "integer", "required": True}, True, "required"),
])
def test_check_new_field_refusals(definition: dict[str, Any], has_records: bool,
                                  where: str) -> None:
    new = field_from_dict(definition)
    problems = problems_of(lambda f: check_new_field(widget(), f, has_records=has_records), new)
    assert fields_named(problems) == [where]


def test_catalogue_changes() -> None:
    old = Catalogue([widget(), entity_from_dict(entity(id="gone", source="Gone"))])
    changed = entity_from_dict(entity(fields=field_list({"id": "colour", "type": "integer"})))
    added = entity_from_dict(entity(id="fresh", source="Fresh"))
    new = Catalogue([changed, added])
    assert catalogue_changes(old, new) == [
        {"entity": "widget", "op": "update", "definition": changed.to_dict()},
        {"entity": "fresh", "op": "insert", "definition": added.to_dict()},
        {"entity": "gone", "op": "delete", "definition": None},
    ]
    assert catalogue_changes(old, Catalogue(old.entities.values())) == []
    assert catalogue_changes(Catalogue([]), Catalogue([])) == []
