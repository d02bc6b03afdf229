"""Whether the service can do its work: the database, the downloads folder, and the queue of
download builds.

For load balancers and monitors: cheap (a few small queries, one small file written and
removed). The database down is the service down; the downloads folder failing is the service
degraded, as every download is then sent from the database (service_layer/downloads.py); so
is a build job that no builder has claimed in DOWNLOAD_BUILD_WAIT_SECONDS (none running).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from isd_service.adapters.database import ping
from isd_service.adapters.download_files import probe
from isd_service.service_layer.download_builds import queue_summary

log = logging.getLogger(__name__)


def health(session: Session, downloads_root: Path,
           build_wait_seconds: int | None = None) -> dict[str, Any]:
    """``{"status": "ok"|"degraded"|"down", "database": {...}, "downloads": {...},
    "download_builds": {...}}``: each part's ``status`` is ``ok`` or what is wrong (database:
    ``down``; downloads: its cause class, ``no-space``, ``read-only``, ``permission`` or
    ``io-error``; download builds: ``stalled`` when a job waited longer than
    ``build_wait_seconds`` for a builder)."""
    builds: dict[str, Any] | None = None
    try:
        ping(session)
        database: dict[str, Any] = {"status": "ok"}
        builds = queue_summary(session)
    except SQLAlchemyError as exc:
        session.rollback()
        log.warning("health: the database is unavailable (%s)", exc.__class__.__name__)
        database = {"status": "down", "detail": "the database is unavailable"}
    state, free, reason = probe(downloads_root)
    downloads: dict[str, Any] = {"status": state, "free_bytes": free}
    if reason is not None:
        downloads["detail"] = (f"a file cannot be written in the downloads folder ({reason}); "
                               "downloads are sent from the database")
    stalled = (builds is not None and build_wait_seconds is not None
               and (builds["oldest_queued_seconds"] or 0) > build_wait_seconds)
    status = ("down" if database["status"] != "ok"
              else "ok" if state == "ok" and not stalled else "degraded")
    body = {"status": status, "database": database, "downloads": downloads}
    if builds is not None:
        builds["status"] = "stalled" if stalled else "ok"
        if stalled:
            builds["detail"] = ("a download build has waited longer than "
                                f"{build_wait_seconds}s for a builder (is `isd scheduler` or "
                                "`isd downloads worker` running?); its files are built on "
                                "request meanwhile")
        body["download_builds"] = builds
    return body
