"""Writers at the same time: the draft's lock serialises them, so nothing is lost or doubled."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from isd_service.adapters.orm import Version
from isd_service.domain.formats import InputFile
from isd_service.service_layer.drafts import load
from isd_service.service_layer.publishing import PublishRefused, publish
from isd_service.service_layer.unit_of_work import UnitOfWork
from tests.conftest import database_of


def run_together(app: Flask, jobs: list[Callable[[Any], Any]]) -> list[Any]:
    """Run each job in its own thread and unit of work, released at the same moment."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def worker(i: int) -> None:
        db = UnitOfWork(database_of(app).session_factory)
        try:
            barrier.wait()
            results[i] = jobs[i](db)
        except Exception as exc:  # the test inspects what each writer got
            results[i] = exc
        finally:
            db.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def gsp(rows: str) -> list[InputFile]:
    return [InputFile("gsp_group.csv", ("gsp_group_id,gsp_group_name\n" + rows).encode())]


def test_two_publications_at_once_make_exactly_one_version(app: Flask) -> None:
    with UnitOfWork(database_of(app).session_factory) as unit:
        load(unit, files=gsp("_A,Eastern\n"), fmt="csv", mode="upsert", actor="t",
             organisation=None)
    results = run_together(app, [
        lambda s: publish(s, actor="a", organisation=None),
        lambda s: publish(s, actor="b", organisation=None),
    ])
    published = [r for r in results if isinstance(r, Version)]
    refused = [r for r in results if isinstance(r, PublishRefused)]
    assert len(published) == 1 and len(refused) == 1, results
    assert "empty" in str(refused[0])
    db = database_of(app).session_factory()
    assert db.scalar(select(func.count()).select_from(Version)) == 1
    db.close()


def test_two_loads_into_one_entity_at_once_lose_nothing(app: Flask, client: Any,
                                                         admin_headers: dict[str, str]) -> None:
    results = run_together(app, [
        lambda s: load(s, files=gsp("_A,Eastern\n"), fmt="csv", mode="upsert", actor="a",
                       organisation=None),
        lambda s: load(s, files=gsp("_B,East Midlands\n"), fmt="csv", mode="upsert",
                       actor="b", organisation=None),
    ])
    assert not [r for r in results if isinstance(r, Exception)], results
    response = client.post("/api/v1/admin/publications", json={}, headers=admin_headers)
    assert response.status_code == 201
    records = client.get("/api/v1/entities/gsp_group/records").get_json()["records"]
    assert {r["gsp_group_id"] for r in records} == {"_A", "_B"}
