"""A load streams its rows to the database and compares them there: problems keep their
lines and order, and the net change against the published records is exact.

Rows are written in batches of two here, so that duplicates and errors fall on both sides
of batch boundaries (million-row loads are in bench/load_phases.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from isd_service.adapters import repository
from isd_service.domain.formats import InputFile
from isd_service.domain.validation import LoadRejected
from isd_service.entrypoints.flask_db import session, uow
from isd_service.service_layer.drafts import load
from isd_service.service_layer.publishing import publish

HEADER = "gsp_group_id,gsp_group_name\n"


@pytest.fixture
def seeded(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """Version 1 published from the seed (14 GSP groups, _A to _P)."""
    monkeypatch.setattr(repository, "INSERT_BATCH", 2)
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


def test_problems_keep_their_lines_and_order(seeded: Flask) -> None:
    problems = refused(["_A,Eastern", "_B,East", "_ABC,Too long", "_A,Again", "_B,Again",
                        "_C,London", "_A,Thrice"])
    assert problems == [
        (4, "longer than 2 characters (4)", "_ABC"),
        (5, "duplicate key: the same gsp_group_id is on line 2", "_A"),
        (6, "duplicate key: the same gsp_group_id is on line 3", "_B"),
        (8, "duplicate key: the same gsp_group_id is on line 2", "_A"),
    ]
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
