"""Unit tests of the file formats: MDD CSV, generic CSV and JSON, read and write (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from isd_service import PROJECT_ROOT
from isd_service.domain.catalogue import Catalogue, EntityDef, entity_from_dict
from isd_service.domain.formats import (
    EntityRows,
    csv_records,
    decode_text,
    entity_for_file,
    json_records,
    mdd_csv,
    safe_name,
)
from isd_service.domain.validation import Problem, validate_rows

SEED = Path(PROJECT_ROOT) / "seed_data" / "catalogue.json"
GSP_HEADER = b'"Gsp Group ID","GSP Group Name"\n'
PC_HEADER = (b'"Profile Class ID","Effective From Settlement Date (PCLA)",'
             b'"Profile Class Description","Switched Load Profile Class Ind",'
             b'"Effective To Settlement Date (PCLA)"\n')


@pytest.fixture(scope="module")
def seed() -> Catalogue:
    doc = json.loads(SEED.read_text(encoding="utf-8"))
    return Catalogue.from_list(doc["entities"] if isinstance(doc, dict) else doc)


@pytest.fixture(scope="module")
def gsp(seed: Catalogue) -> EntityDef:
    entity = seed.get("gsp_group")
    assert entity is not None
    return entity


@pytest.fixture(scope="module")
def pc(seed: Catalogue) -> EntityDef:
    entity = seed.get("profile_class")
    assert entity is not None
    return entity


def where(problems: list[Problem]) -> list[tuple[Any, ...]]:
    return [(p.entity, p.file, p.line, p.field) for p in problems]


def values(table: EntityRows | None) -> list[tuple[int, dict[str, Any]]]:
    assert table is not None
    return [(r.line, r.values) for r in table.rows]


# --- decoding and names -------------------------------------------------------------------

def test_decode_text_utf8_and_bom() -> None:
    assert decode_text("Café ☃\n".encode(), "f") == ("Café ☃\n", [])
    assert decode_text(b"\xef\xbb\xbfabc", "f") == ("abc", [])


@pytest.mark.parametrize("data", [b"", b" ", b"\n\r\n\t "])
def test_decode_text_empty(data: bytes) -> None:
    text, problems = decode_text(data, "f.csv")
    assert text is None
    assert [(p.file, p.line, p.message) for p in problems] == [("f.csv", 1, "the file is empty")]


def test_decode_text_nul_gives_its_line() -> None:
    text, problems = decode_text(b"a\nb\nc\x00d\n", "f.csv")
    assert text is None and [(p.line, p.file) for p in problems] == [(3, "f.csv")]
    assert "NUL" in problems[0].message


def test_decode_text_latin1_gives_line_and_byte() -> None:
    text, problems = decode_text(b"name\nCaf\xe9\n", "f.csv")
    assert text is None and [p.line for p in problems] == [2]
    assert "0xE9" in problems[0].message and "UTF-8" in problems[0].message


@pytest.mark.parametrize(("name", "base"), [
    ("GSP_Group_374.csv", "GSP_Group_374.csv"),
    ("../../etc/passwd.csv", "passwd.csv"),
    ("/etc/passwd.csv", "passwd.csv"),
    ("C:\\Users\\me\\GSP_Group_374.csv", "GSP_Group_374.csv"),
    ("..\\..\\x.csv", "x.csv"),
    ("", "upload"),
    ("dir/", "dir"),
    ("/", "upload"),
])
def test_safe_name_keeps_only_the_base_name(name: str, base: str) -> None:
    assert safe_name(name) == base


@pytest.mark.parametrize(("fmt", "name", "entity_id"), [
    ("mdd-csv", "GSP_Group_374.csv", "gsp_group"),
    ("mdd-csv", "gsp_group_374.CSV", "gsp_group"),
    ("mdd-csv", "GSP_Group.csv", "gsp_group"),
    ("mdd-csv", "Line_Loss_Factor_Class_1.csv", "line_loss_factor_class"),
    ("mdd-csv", "MTC_in_PES_Area_370.csv", "mtc_in_pes_area"),
    ("mdd-csv", "M16_2.csv", "mpid_dip_id_mapping"),
    ("mdd-csv", "M18.csv", "dip_market_role"),
    ("mdd-csv", "Market_Widgets_374.csv", None),
    ("mdd-csv", "GSP_Group_374.txt", None),
    ("mdd-csv", "GSP_Group_374", None),
    ("mdd-csv", "gsp_group.json", None),
    ("csv", "gsp_group.csv", "gsp_group"),
    ("csv", "GSP_Group.csv", "gsp_group"),
    ("csv", "gsp_group_374.csv", None),
    ("csv", "widgets.csv", None),
    ("json", "clock_interval.json", "clock_interval"),
])
def test_entity_for_file(seed: Catalogue, fmt: str, name: str, entity_id: str | None) -> None:
    found = entity_for_file(seed, fmt, name)
    assert (found.id if found else None) == entity_id


def test_entity_for_file_source_ending_in_digits() -> None:
    catalogue = Catalogue([entity_from_dict({
        "id": "thing_2", "name": "Thing 2", "source": "Thing_2", "key": ["a"],
        "fields": [{"id": "a", "name": "A", "type": "integer", "required": True}]})])
    for name in ("Thing_2.csv", "Thing_2_374.csv"):
        found = entity_for_file(catalogue, "mdd-csv", name)
        assert found is not None and found.id == "thing_2", name


# --- MDD CSV ------------------------------------------------------------------------------

def test_mdd_read(gsp: EntityDef) -> None:
    table, problems = mdd_csv.read(GSP_HEADER + b'"_A","Eastern"\n"_B","East Midlands"\n',
                                   gsp, "GSP_Group_1.csv")
    assert problems == []
    assert table is not None and table.entity is gsp and table.dates == "mdd"
    assert table.file == "GSP_Group_1.csv"
    assert values(table) == [(2, {"gsp_group_id": "_A", "gsp_group_name": "Eastern"}),
                             (3, {"gsp_group_id": "_B", "gsp_group_name": "East Midlands"})]


def test_mdd_read_headers_in_any_order_case_and_spacing(gsp: EntityDef) -> None:
    data = b'" gsp group name ","GSP GROUP ID"\n"Eastern","_A"\n'
    table, problems = mdd_csv.read(data, gsp, "g.csv")
    assert problems == []
    assert values(table) == [(2, {"gsp_group_name": "Eastern", "gsp_group_id": "_A"})]


def test_mdd_read_unquoted_crlf_blank_lines_and_line_numbers(gsp: EntityDef) -> None:
    data = b"Gsp Group ID,GSP Group Name\r\n\r\n_A,Eastern\r\n\r\n_B,East Midlands\r\n"
    table, problems = mdd_csv.read(data, gsp, "g.csv")
    assert problems == []
    assert values(table) == [(3, {"gsp_group_id": "_A", "gsp_group_name": "Eastern"}),
                             (5, {"gsp_group_id": "_B", "gsp_group_name": "East Midlands"})]


def test_mdd_read_line_numbers_after_a_multi_line_value(gsp: EntityDef) -> None:
    data = GSP_HEADER + b'"_A","East\nern"\n"_B","East Midlands"\n'
    table, _ = mdd_csv.read(data, gsp, "g.csv")
    assert [line for line, _ in values(table)] == [2, 4]


def test_mdd_read_keeps_values_as_written(pc: EntityDef) -> None:
    data = PC_HEADER + b'"01","01/04/1996"," Domestic ","F",""\n'
    table, problems = mdd_csv.read(data, pc, "pc.csv")
    assert problems == []
    assert values(table)[0][1] == {
        "profile_class_id": "01", "effective_from_settlement_date_pcla": "01/04/1996",
        "profile_class_description": " Domestic ", "switched_load_profile_class_ind": "F",
        "effective_to_settlement_date_pcla": ""}


def test_mdd_read_header_problems(gsp: EntityDef) -> None:
    data = b'"Gsp Group ID","Colour","Gsp Group ID"\n"_A","red","_A"\n'
    table, problems = mdd_csv.read(data, gsp, "g.csv")
    assert table is None
    assert where(problems) == [("gsp_group", "g.csv", 1, None),
                               ("gsp_group", "g.csv", 1, "gsp_group_id"),
                               ("gsp_group", "g.csv", 1, "gsp_group_name")]
    assert "unknown column 'Colour' (column 2)" in problems[0].message
    assert problems[0].value == "Colour"
    assert "twice" in problems[1].message
    assert "'GSP Group Name' is missing" in problems[2].message


def test_mdd_read_ragged_rows(gsp: EntityDef) -> None:
    """Rows are read as a stream: a row of the wrong shape is reported as it is met."""
    data = GSP_HEADER + b'"_A"\n"_B","x","y"\n"_C","ok"\n'
    table, problems = mdd_csv.read(data, gsp, "g.csv")
    assert problems == [] and table is not None
    assert values(table) == [(4, {"gsp_group_id": "_C", "gsp_group_name": "ok"})]
    assert [(p.entity, p.line, p.message) for p in table.problems] == [
        ("gsp_group", 2, "expected 2 fields, found 1"),
        ("gsp_group", 3, "expected 2 fields, found 3")]


@pytest.mark.parametrize(("data", "line"), [
    (GSP_HEADER + b'"_A"x,"Eastern"\n', 2),
    (GSP_HEADER + b'"_A","Eastern"\n"_B","East\n', 3),
    (GSP_HEADER + b'"_A","Eastern"\n"_B","' + b"x" * 100_001 + b'"\n', 3),
])
def test_mdd_read_malformed_csv(gsp: EntityDef, data: bytes, line: int) -> None:
    table, problems = mdd_csv.read(data, gsp, "g.csv")
    assert problems == [] and table is not None
    values(table)  # reading stops at the malformed line
    assert where(table.problems) == [("gsp_group", "g.csv", line, None)]
    assert table.problems[0].message.startswith("malformed CSV")


def test_mdd_read_malformed_header(gsp: EntityDef) -> None:
    table, problems = mdd_csv.read(b'"Gsp Group ID"x,"GSP Group Name"\n', gsp, "g.csv")
    assert table is None
    assert where(problems) == [("gsp_group", "g.csv", 1, None)]
    assert problems[0].message.startswith("malformed CSV")


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\x00", b"\xe9"])
def test_mdd_read_bad_bytes_name_the_entity(gsp: EntityDef, data: bytes) -> None:
    table, problems = mdd_csv.read(data, gsp, "g.csv")
    assert table is None and len(problems) == 1
    assert (problems[0].entity, problems[0].file, problems[0].line) == ("gsp_group", "g.csv", 1)


def test_mdd_read_header_only(gsp: EntityDef) -> None:
    table, problems = mdd_csv.read(GSP_HEADER, gsp, "g.csv")
    assert problems == [] and values(table) == []


def test_mdd_write(pc: EntityDef) -> None:
    records = [{"profile_class_id": "1", "effective_from_settlement_date_pcla": "1996-04-01",
                "profile_class_description": 'Say "hi", then',
                "switched_load_profile_class_ind": "F"}]
    text = "".join(mdd_csv.write(pc, records))
    assert text == (PC_HEADER.decode()
                    + '"1","01/04/1996","Say ""hi"", then","F",""\n')


def test_mdd_write_then_read_gives_the_same_records(pc: EntityDef) -> None:
    records = [
        {"profile_class_id": str(i % 9), "effective_from_settlement_date_pcla":
         f"{1996 + i // 9:04d}-04-01", "profile_class_description": f"Class, {i} \"q\" é",
         "switched_load_profile_class_ind": "FT"[i % 2],
         **({"effective_to_settlement_date_pcla": "9999-12-31"} if i % 3 else {})}
        for i in range(4500)]  # more than two chunks of 2000
    data = "".join(mdd_csv.write(pc, records)).encode()
    assert data.count(b"\n") == 4501
    table, problems = mdd_csv.read(data, pc, "Profile_Class_1.csv")
    assert problems == []
    assert table is not None
    validated, problems = validate_rows(pc, table.rows, dates=table.dates)
    assert problems == []
    assert list(validated.records.values()) == records


def test_mdd_write_empty_entity_is_just_the_header(gsp: EntityDef) -> None:
    assert "".join(mdd_csv.write(gsp, [])) == GSP_HEADER.decode()


# --- generic CSV --------------------------------------------------------------------------

def test_csv_read_uses_field_ids_and_iso_dates(pc: EntityDef) -> None:
    data = (b"profile_class_id,effective_from_settlement_date_pcla,profile_class_description,"
            b"switched_load_profile_class_ind\n1,1996-04-01,Domestic,F\n")
    table, problems = csv_records.read(data, pc, "profile_class.csv")
    assert problems == []
    assert table is not None and table.dates == "iso"
    validated, problems = validate_rows(pc, table.rows, dates=table.dates)
    assert problems == []
    [record] = validated.records.values()
    assert record["effective_from_settlement_date_pcla"] == "1996-04-01"


def test_csv_read_refuses_mdd_headers(gsp: EntityDef) -> None:
    table, problems = csv_records.read(GSP_HEADER + b'"_A","Eastern"\n', gsp, "gsp_group.csv")
    assert table is None
    assert [p.value for p in problems if p.field is None] == ["Gsp Group ID", "GSP Group Name"]


def test_csv_write_then_read(gsp: EntityDef) -> None:
    records = [{"gsp_group_id": "_A", "gsp_group_name": "Eastern, \"quoted\""},
               {"gsp_group_id": "_B", "gsp_group_name": "East Midlands"}]
    text = "".join(csv_records.write(gsp, records))
    assert text == ('gsp_group_id,gsp_group_name\n_A,"Eastern, ""quoted"""\n'
                    "_B,East Midlands\n")
    table, problems = csv_records.read(text.encode(), gsp, "gsp_group.csv")
    assert problems == []
    assert [r.values for r in table.rows] == records  # type: ignore[union-attr]


def test_csv_write_integers_and_no_value(seed: Catalogue) -> None:
    mp = seed.get("market_participant")
    assert mp is not None
    text = "".join(csv_records.write(mp, [{"market_participant_id": "ABCD",
                                           "market_participant_name": "N"}]))
    assert text.splitlines()[1] == "ABCD,N,"


# --- JSON ---------------------------------------------------------------------------------

def read_json(seed: Catalogue, doc: Any, entity: str | None = None,
              raw: bytes | None = None) -> tuple[list[EntityRows], list[Problem]]:
    data = raw if raw is not None else json.dumps(doc).encode()
    return json_records.read(data, seed, "in.json", seed.get(entity) if entity else None)


def test_json_read_snapshot_shape(seed: Catalogue) -> None:
    groups, problems = read_json(seed, {"entities": {
        "gsp_group": [{"gsp_group_id": "_A", "gsp_group_name": "Eastern"}],
        "clock_interval": []}})
    assert problems == []
    assert [(g.entity.id, g.file, g.dates, len(g.rows)) for g in groups] == [
        ("gsp_group", "in.json", "iso", 1), ("clock_interval", "in.json", "iso", 0)]
    assert groups[0].rows[0].line == 1


@pytest.mark.parametrize("doc", [
    [{"gsp_group_id": "_A"}, {"gsp_group_id": "_B"}],
    {"records": [{"gsp_group_id": "_A"}, {"gsp_group_id": "_B"}]},
    {"entities": {"gsp_group": [{"gsp_group_id": "_A"}, {"gsp_group_id": "_B"}]}},
])
def test_json_read_list_shapes_with_an_entity(seed: Catalogue, doc: Any) -> None:
    groups, problems = read_json(seed, doc, "gsp_group")
    assert problems == []
    assert [(r.line, r.values) for r in groups[0].rows] == [
        (1, {"gsp_group_id": "_A"}), (2, {"gsp_group_id": "_B"})]


@pytest.mark.parametrize("doc", [42, "x", None, True, [], {"records": {}}, {"entities": []}])
def test_json_read_wrong_shape_without_entity(seed: Catalogue, doc: Any) -> None:
    groups, problems = read_json(seed, doc)
    assert groups == [] and len(problems) == 1
    assert problems[0].file == "in.json" and "expected" in problems[0].message


def test_json_read_invalid_json_gives_line_and_column(seed: Catalogue) -> None:
    groups, problems = read_json(seed, None, "gsp_group", raw=b'[\n  {"a": 1,}\n]')
    assert groups == []
    assert [(p.file, p.line) for p in problems] == [("in.json", 2)]
    assert problems[0].message.startswith("invalid JSON") and "column" in problems[0].message


def test_json_read_bad_bytes(seed: Catalogue) -> None:
    _, problems = read_json(seed, None, "gsp_group", raw=b'["caf\xe9"]')
    assert "UTF-8" in problems[0].message


def test_json_read_entity_level_problems(seed: Catalogue) -> None:
    doc = {"entities": {"widgets": [], "gsp_group": {"gsp_group_id": "_A"},
                        "clock_interval": [1, {"colour": "red", "start_time": "00:00"}]}}
    groups, problems = read_json(seed, doc)
    assert [(p.entity, p.line, p.field) for p in problems] == [
        ("widgets", None, None), ("gsp_group", None, None), ("clock_interval", 1, None),
        ("clock_interval", 2, "colour")]
    assert "unknown entity 'widgets'" in problems[0].message
    assert "must be a list" in problems[1].message
    assert "must be an object" in problems[2].message
    assert "unknown field 'colour'" in problems[3].message
    assert [(g.entity.id, g.rows) for g in groups] == [("clock_interval", [])]


def test_json_read_other_entity_than_given(seed: Catalogue) -> None:
    _, problems = read_json(seed, {"entities": {"gsp_group": []}}, "clock_interval")
    assert [(p.entity, p.message) for p in problems] == [
        ("gsp_group", "this load is for clock_interval, not gsp_group")]


def test_json_read_values_keep_their_json_types(seed: Catalogue) -> None:
    groups, _ = read_json(seed, [{"time_pattern_regime_id": "00001", "day_of_the_week_id": 1,
                                  "start_day": 1.5, "start_month": None}], "clock_interval")
    assert groups[0].rows[0].values == {"time_pattern_regime_id": "00001",
                                        "day_of_the_week_id": 1, "start_day": 1.5,
                                        "start_month": None}


@pytest.mark.parametrize("raw", [
    b"[" * 100_000 + b"]" * 100_000,
    b'[{"day_of_the_week_id": ' + b"7" * 5000 + b"}]",
], ids=["deeply-nested", "too-many-digits"])
def test_json_read_hostile_json_is_a_problem_not_an_exception(seed: Catalogue,
                                                              raw: bytes) -> None:
    groups, problems = read_json(seed, None, "clock_interval", raw=raw)
    assert groups == []
    assert len(problems) == 1 and problems[0].file == "in.json"
