"""A load streams its rows to the database and compares them there: problems keep their
lines and order, and the net change against the published records is exact.

Rows are read and written in batches of two here, so that duplicates and errors fall on both
sides of batch boundaries (million-row loads are in bench/load_phases.py). A first load of
an entity writes its rows straight into the draft; its problems are those of any load.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from isd_service.adapters import repository
from isd_service.adapters.orm import Load
from isd_service.domain import validation
from isd_service.domain.formats import InputFile, parse_files
from isd_service.domain.records import KEY_SEPARATOR
from isd_service.domain.validation import LoadRejected, validate_rows
from isd_service.entrypoints.flask_db import session, uow
from isd_service.service_layer.drafts import load
from isd_service.service_layer.publishing import publish

HEADER = "gsp_group_id,gsp_group_name\n"


@pytest.fixture
def seeded(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """Version 1 published from the seed (14 GSP groups, _A to _P)."""
    monkeypatch.setattr(repository, "INSERT_BATCH", 2)
    monkeypatch.setattr(validation, "BATCH_ROWS", 2)
    result = app.test_cli_runner().invoke(args=["seed"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        yield app


def gsp_load(lines: list[str], mode: str = "replace") -> dict[str, int]:
    header = "gsp_group_id\n" if mode == "delete" else HEADER  # a delete names keys only
    data = (header + "".join(line + "\n" for line in lines)).encode()
    record = load(uow(), files=[InputFile("gsp_group.csv", data)], fmt="csv", mode=mode,
                  actor="test", organisation="ISDA")
    return record.entities["gsp_group"]


def refused(lines: list[str], mode: str = "replace") -> list[tuple[int | None, str, object]]:
    with pytest.raises(LoadRejected) as caught:
        gsp_load(lines, mode)
    return [(p.line, p.message, p.value) for p in caught.value.problems]


# Rows with a value too long and keys met twice and thrice, and the problems they make.
FAULTY = ["_A,Eastern", "_B,East", "_ABC,Too long", "_A,Again", "_B,Again", "_C,London",
          "_A,Thrice"]
FAULTS = [
    (4, "longer than 2 characters (4)", "_ABC"),
    (5, "duplicate key: the same gsp_group_id is on line 2", "_A"),
    (6, "duplicate key: the same gsp_group_id is on line 3", "_B"),
    (8, "duplicate key: the same gsp_group_id is on line 2", "_A"),
]


def test_problems_keep_their_lines_and_order(seeded: Flask) -> None:
    assert refused(FAULTY) == FAULTS
    assert not repository.has_staged(session())


def test_net_change_against_the_published_records(seeded: Flask) -> None:
    # Keeps _A, renames _B, adds _Q; a replace drops the other 12 groups.
    counts = gsp_load(["_A,Eastern", "_B,East Midlands (renamed)", "_Q,New"])
    assert counts == {"inserted": 1, "updated": 1, "deleted": 12, "unchanged": 1}
    staged = repository.staged(session(), "gsp_group")
    assert len(staged) == 14 and staged["_B"][0] == "upsert" and staged["_C"][0] == "delete"
    first_load = staged["_Q"][2]
    # Putting _B back as published drops its change; _Q, unchanged, keeps its load.
    counts = gsp_load(["_B,East Midlands", "_Q,New"], mode="upsert")
    assert counts == {"inserted": 0, "updated": 1, "deleted": 0, "unchanged": 1}
    staged = repository.staged(session(), "gsp_group")
    assert "_B" not in staged and staged["_Q"][2] == first_load
    # A key the draft deletes already cannot be deleted again; the refusal names its line.
    assert refused(["_A", "_C"], mode="delete") == [
        (3, "no record with this key in the draft to delete", "_C")]
    counts = gsp_load(["_A", "_Q"], mode="delete")
    assert counts == {"inserted": 0, "updated": 0, "deleted": 2, "unchanged": 0}
    staged = repository.staged(session(), "gsp_group")
    assert "_Q" not in staged and staged["_A"][0] == "delete"
    publish(uow(), actor="test", organisation="ISDA")
    assert list(repository.live_rows(session(), "gsp_group")) == ["_B"]


@pytest.fixture
def empty(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """A store with the catalogue and no record: every load below is a first load."""
    monkeypatch.setattr(repository, "INSERT_BATCH", 2)
    monkeypatch.setattr(validation, "BATCH_ROWS", 2)
    with app.app_context():
        yield app


def test_a_first_load_refuses_with_the_same_problems(empty: Flask) -> None:
    # As test_problems_keep_their_lines_and_order, with nothing in the store: the rows go
    # straight to the draft until the repeated key, then the file is read again.
    assert refused(FAULTY) == FAULTS
    # Only repeated keys: found the same way; nothing staged, no load recorded.
    assert refused(["_A,Eastern", "_B,East", "_C,London", "_B,Again"]) == [
        (5, "duplicate key: the same gsp_group_id is on line 3", "_B")]
    assert not repository.has_staged(session())
    assert session().scalars(select(Load)).all() == []


def test_a_first_load_stages_each_record_as_checked(empty: Flask) -> None:
    lines = [f"_{chr(65 + i)},Group {i} \"quoted\" \\ é %s" for i in range(7)]
    counts = gsp_load(lines)
    assert counts == {"inserted": 7, "updated": 0, "deleted": 0, "unchanged": 0}
    data = (HEADER + "".join(line + "\n" for line in lines)).encode()
    groups, _ = parse_files(repository.working_catalogue(session()),
                            [InputFile("gsp_group.csv", data)], "csv", None)
    expected, problems = validate_rows(groups[0].entity, groups[0].rows, file="gsp_group.csv")
    assert problems == [] and len(expected.data) == 7
    load_id = session().scalars(select(Load)).one().id
    assert repository.staged(session(), "gsp_group") == {
        key: ("upsert", data, load_id) for key, data in expected.data.items()}
    assert KEY_SEPARATOR not in next(iter(expected.data))  # a one-field key
    # A second load of the entity compares with the draft: nothing changes.
    assert gsp_load(lines, mode="upsert") == {"inserted": 0, "updated": 0, "deleted": 0,
                                              "unchanged": 7}
    publish(uow(), actor="test", organisation="ISDA")
    assert repository.live_rows(session(), "gsp_group") == expected.data
