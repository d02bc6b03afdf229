"""Whether the service can do its work: the database, and the downloads folder.

For load balancers and monitors: cheap (one query, one small file written and removed).
The database down is the service down; the downloads folder failing is the service degraded,
as every download is then sent from the database (service_layer/downloads.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from isd_service.adapters.database import ping
from isd_service.adapters.download_files import probe

log = logging.getLogger(__name__)


def health(session: Session, downloads_root: Path) -> dict[str, Any]:
    """``{"status": "ok"|"degraded"|"down", "database": {...}, "downloads": {...}}``: each
    part's ``status`` is ``ok`` or what is wrong (database: ``down``; downloads: its cause
    class, ``no-space``, ``read-only``, ``permission`` or ``io-error``)."""
    try:
        ping(session)
        database: dict[str, Any] = {"status": "ok"}
    except SQLAlchemyError as exc:
        session.rollback()
        log.warning("health: the database is unavailable (%s)", exc.__class__.__name__)
        database = {"status": "down", "detail": "the database is unavailable"}
    state, free, reason = probe(downloads_root)
    downloads: dict[str, Any] = {"status": state, "free_bytes": free}
    if reason is not None:
        downloads["detail"] = (f"a file cannot be written in the downloads folder ({reason}); "
                               "downloads are sent from the database")
    status = ("down" if database["status"] != "ok"
              else "ok" if state == "ok" else "degraded")
    return {"status": status, "database": database, "downloads": downloads}
