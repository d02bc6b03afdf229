"""Three real `isd scheduler` processes against one database publish each release once."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from isd_service.adapters.orm import Release, ReleaseRun, Version
from isd_service.entrypoints.flask_db import session, uow
from isd_service.service_layer import calendar

ADMIN = "/api/v1/admin"
ISD = Path(sys.executable).parent / "isd"
DONE = ("frozen", "published")  # the outcomes of a step that did its work


def test_three_schedulers_publish_each_planned_release_exactly_once(
        app: Flask, client: FlaskClient, publisher_headers: dict[str, str], database_url: str,
        tmp_path: Path) -> None:
    csv = b"gsp_group_id,gsp_group_name\n_A,Eastern\n"
    r = client.post(f"{ADMIN}/loads", headers=publisher_headers,
                    content_type="multipart/form-data",
                    data={"format": "csv", "mode": "replace",
                          "file": (io.BytesIO(csv), "gsp_group.csv")})
    assert r.status_code == 201
    assert client.post(f"{ADMIN}/publications", headers=publisher_headers, json={}).status_code \
        == 201
    now = datetime.now(UTC)
    with app.app_context():
        planned = [calendar.create_release(
            uow(), change_deadline=now + timedelta(seconds=s),
            publish_at=now + timedelta(seconds=s + 2), go_live_date=now.date(),
            empty_draft="publish", actor="test").id for s in (4, 7)]

    env = {**os.environ, "ISD_DATABASE_URL": database_url, "ISD_SCHEDULER_SYNC_SECONDS": "1"}
    procs = []
    for i in range(3):
        log = (tmp_path / f"scheduler{i}.log").open("w")
        procs.append((subprocess.Popen([str(ISD), "scheduler"], env=env, stdout=log,
                                       stderr=subprocess.STDOUT), log))
    try:
        # Generous: three processes start and poll on a shared, possibly busy machine.
        deadline = time.monotonic() + 180
        done = False
        while time.monotonic() < deadline and not done:
            time.sleep(0.5)
            with app.app_context():
                states = set(session().scalars(select(Release.state)))
                session().close()
            done = states == {"published"}
            assert all(p.poll() is None for p, _ in procs), "a scheduler exited early"
        # The others attempt the same steps as they fall due (every due time has passed by
        # now, so each scheduler starts what its job store holds at once): wait until each
        # step's run is recorded and no further run has been recorded for a second. A run
        # still going on at SIGTERM is finished and recorded before its scheduler exits.
        steps = {(release, action) for release in planned for action in ("freeze", "publish")}
        seen, quiet_since = -1, time.monotonic()
        while done:
            with app.app_context():
                runs = session().execute(
                    select(ReleaseRun.release_id, ReleaseRun.action, ReleaseRun.outcome)).all()
                session().close()
            recorded = {(r, a) for r, a, outcome in runs if outcome in DONE}
            # A publish step that finds its release still planned (its schedulers started
            # after both due times, and the publish job fired first) freezes it itself; the
            # freeze job then has nothing to do, and that freeze counts as done.
            recorded |= {(r, "freeze") for r, a in set(recorded) if a == "publish"}
            if len(runs) != seen:
                seen, quiet_since = len(runs), time.monotonic()
            if recorded == steps and time.monotonic() - quiet_since >= 1:
                break
            assert time.monotonic() < deadline, f"runs recorded: {runs}"
            time.sleep(0.1)
    finally:
        for p, _ in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=30) for p, _ in procs]
        for _, log in procs:
            log.close()
    logs = "".join((tmp_path / f"scheduler{i}.log").read_text() for i in range(3))
    assert codes == [0, 0, 0], logs
    assert done, logs

    with app.app_context():
        db = session()
        numbers = sorted(db.scalars(select(Version.number)))
        published = {r.id: r.published_version for r in db.scalars(select(Release))}
        publications = db.scalar(select(func.count()).select_from(ReleaseRun).where(
            ReleaseRun.outcome == "published"))
        failures = list(db.scalars(select(ReleaseRun.detail).where(
            ReleaseRun.outcome == "failed")))
    assert numbers == [1, 2, 3]
    assert published == {planned[0]: 2, planned[1]: 3}
    assert publications == 2
    assert failures == [], logs
