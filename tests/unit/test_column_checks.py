"""Checks a column at a time (validation.ColumnCheck) keep check_rows' answers exactly.

Random batches of text rows, mostly valid with every kind of fault mixed in, go through
check_batches (columns first, row by row when a batch holds a fault) and through check_rows
alone: the same rows pass with the same key texts and stored data, and the same problems
come out in the same order.
"""

from __future__ import annotations

import json
import random

import pytest

from isd_service import PROJECT_ROOT
from isd_service.domain.catalogue import Catalogue, EntityDef, FieldDef
from isd_service.domain.records import encode
from isd_service.domain.validation import (
    CheckedRows,
    ColumnCheck,
    Problem,
    RowBatch,
    check_batches,
    check_rows,
    validate_rows,
)

ENTITY = EntityDef(
    id="tariff", name="Tariff", source="Tariff", key=("code", "number", "start"),
    effective_from="start", effective_to="end",
    fields=(
        FieldDef("code", "Code", "string", required=True, max_length=6),
        FieldDef("number", "Number", "integer", required=True),
        FieldDef("start", "Start", "date", required=True),
        FieldDef("end", "End", "date"),
        FieldDef("kind", "Kind", "enum", required=True, values=("A", "B", "%s")),
        FieldDef("note", "Note", "string", max_length=12),
        FieldDef("at", "At", "time"),
        FieldDef("count", "Count", "integer"),
    ))

GOOD = {
    "code": ["AB", "X1", "Ünï", "a%sb", "Q\"T", "back\\s"],
    "number": ["1", "01", "-7", "42", "9223372036854775807"],
    "start": ["01/04/1996", "29/02/2000", "31/12/2030"],
    "end": ["", "", "01/01/2031", "31/12/2030"],
    "kind": ["A", "B", "%s"],
    "note": ["", "plain", "a \"quoted\" 1", "back\\slash", "été", "%d %s"],
    "at": ["", "00:00", "24:00", "13:45"],
    "count": ["", "0", "12", "-3"],
}
BAD = {
    "code": ["", "TOOLONGX", "tab\there"],
    "number": ["", "1.5", "x", "99999999999999999999"],
    "start": ["", "1996-04-01", "30/02/2001", "1/4/1996"],
    "end": ["31/03/1990", "00/01/2000"],
    "kind": ["", "C", "a"],
    "note": ["thirteen char", "nul\x00"],
    "at": ["24:01", "9:00", "12:60"],
    "count": ["1e3", " 1"],
}


@pytest.fixture(scope="module")
def seed() -> Catalogue:
    doc = json.loads((PROJECT_ROOT / "seed_data" / "catalogue.json").read_text(encoding="utf-8"))
    return Catalogue.from_list(doc["entities"])


def random_rows(rng: random.Random, count: int, fault_rate: float,
                columns: list[str]) -> list[list[str]]:
    rows = []
    for _ in range(count):
        row = [rng.choice(GOOD[c]) for c in columns]
        if rng.random() < fault_rate:
            i = rng.randrange(len(columns))
            row[i] = rng.choice(BAD[columns[i]])
        rows.append(row)
    return rows


def batches_of(rows: list[list[str]], columns: list[str], size: int) -> list[RowBatch]:
    return [RowBatch(columns, list(range(2 + start, 2 + start + len(rows[start:start + size]))),
                     rows[start:start + size]) for start in range(0, len(rows), size)]


def both_ways(batches: list[RowBatch], *, keys_only: bool = False
              ) -> tuple[tuple[list[tuple[str, str, int]], list[Problem]],
                         tuple[list[tuple[str, str, int]], list[Problem]]]:
    by_columns: list[Problem] = []
    passed = [row for checked in check_batches(ENTITY, batches, by_columns, dates="mdd",
                                               file="t.csv", keys_only=keys_only)
              for row in zip(checked.keys, checked.data, checked.lines, strict=True)]
    by_rows: list[Problem] = []
    reference = list(check_rows(ENTITY, (r for b in batches for r in b.raw_rows()), by_rows,
                                dates="mdd", file="t.csv", keys_only=keys_only))
    return (passed, by_columns), (reference, by_rows)


@pytest.mark.parametrize("seed", range(8))
def test_batches_pass_the_same_rows_with_the_same_problems(seed: int) -> None:
    rng = random.Random(seed)
    columns = list(GOOD)
    rng.shuffle(columns)  # a file's columns come in any order
    rows = random_rows(rng, 3000, fault_rate=0.002, columns=columns)
    batches = batches_of(rows, columns, size=97)
    accepted = sum(ColumnCheck(ENTITY, dates="mdd", keys_only=False)(b) is not None
                   for b in batches)
    # Both ways through check_batches are taken: whole batches by column, faulty ones by row.
    assert 0 < accepted < len(batches)
    (passed, problems), (reference, expected) = both_ways(batches)
    assert passed == reference
    assert [p.to_dict() for p in problems] == [p.to_dict() for p in expected]
    assert len(expected) > 0


def test_a_column_with_no_value_anywhere_and_a_column_missing_from_the_file() -> None:
    columns = ["code", "number", "start", "kind", "note"]
    rows = [["AB", str(n), "01/04/1996", "A", ""] for n in range(50)]
    (passed, problems), (reference, expected) = both_ways(batches_of(rows, columns, 20))
    assert problems == expected == []
    assert passed == reference
    assert passed[0][1] == encode({"code": "AB", "number": 0, "start": "1996-04-01",
                                   "kind": "A"})


def test_stored_data_is_the_canonical_json_of_the_typed_record() -> None:
    columns = list(GOOD)
    rows = [["Q\"T", "01", "29/02/2000", "", "%s", "back\\slash", "24:00", "-3"],
            ["Ünï", "7", "01/04/1996", "01/01/2031", "B", "été", "", ""]]
    checked = ColumnCheck(ENTITY, dates="mdd", keys_only=False)(RowBatch(columns, [2, 3], rows))
    assert isinstance(checked, CheckedRows)
    result, problems = validate_rows(ENTITY, RowBatch(columns, [2, 3], rows).raw_rows(),
                                     dates="mdd")
    assert problems == []
    assert list(zip(checked.keys, checked.data, strict=True)) == list(result.data.items())
    assert checked.data[0] == encode({"code": "Q\"T", "number": 1, "start": "2000-02-29",
                                      "kind": "%s", "note": "back\\slash", "at": "24:00",
                                      "count": -3})


def test_keys_only_batches_read_the_key_fields_alone() -> None:
    rng = random.Random(99)
    columns = list(GOOD)
    rows = random_rows(rng, 500, fault_rate=0.01, columns=columns)
    (passed, problems), (reference, expected) = both_ways(batches_of(rows, columns, 50),
                                                          keys_only=True)
    assert passed == reference and passed
    assert [p.to_dict() for p in problems] == [p.to_dict() for p in expected]


def test_every_seed_entity_reads_its_own_rows_back(seed: Catalogue) -> None:
    # A row of every field filled with a value its type accepts, per seed entity.
    samples = {"string": "X", "enum": None, "date": "01/04/1996", "time": "12:00",
               "integer": "5"}
    for entity in seed.entities.values():
        columns = [f.id for f in entity.fields]
        row = [(f.values or ("",))[0] if f.type == "enum" else samples[f.type] or ""
               for f in entity.fields]
        batch = RowBatch(columns, [2], [row])
        checked = ColumnCheck(entity, dates="mdd", keys_only=False)(batch)
        found: list[Problem] = []
        reference = list(check_rows(entity, batch.raw_rows(), found, dates="mdd"))
        assert found == [], (entity.id, found)
        assert checked is not None, entity.id
        assert list(zip(checked.keys, checked.data, checked.lines, strict=True)) == reference
