"""Every setting of the service, read here and only here: defaults for the embedded SQLite
set-up, overridden by ``ISD_*`` environment variables (then by a test's own values).

A setting that cannot be used is refused when the app starts, naming the variable, rather
than at the first request that needs it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where the embedded database and the download files live unless configured elsewhere.
INSTANCE_DIR = PROJECT_ROOT / "instance"

EMPTY_POLICIES = ("skip", "publish")
DOWNLOAD_BUILD_MODES = ("background", "on-request")

DEFAULTS: dict[str, Any] = {
    # None: a SQLite file in the instance folder.
    "DATABASE_URL": None,
    # Uploads above this are refused with 413 (a full MDD version is about 12 MB).
    "MAX_CONTENT_LENGTH": 200 * 1024 * 1024,
    "MAX_FORM_MEMORY_SIZE": 200 * 1024 * 1024,
    # How many validation errors a refused load reports (the total is always given).
    "MAX_REPORTED_ERRORS": 200,
    # The organisation that CLI loads and publications are recorded under.
    "ADMIN_ORG": "ISDA",
    "PAGE_SIZE_DEFAULT": 100,
    "PAGE_SIZE_MAX": 5000,
    # The longest one record query (API or entity page) may run in the database before it
    # is stopped and refused with 503: far below a web worker's time-out.
    "RECORD_QUERY_BUDGET_MS": 2000,
    # Where the download files of published versions are built; None: <instance>/downloads.
    "DOWNLOADS_DIR": None,
    # How a new version's listed downloads get built: "background" (a publication queues a
    # build job that a builder runs: the scheduler, `isd downloads worker`, or the one that
    # `isd serve` starts; a request for a file being built gets 503 and Retry-After), or
    # "on-request" (each file on its first request, as the only way before).
    "DOWNLOAD_BUILDS": "background",
    # A builder's lease on a job, renewed while it builds: a job whose builder died is
    # claimed again this long after its last renewal.
    "DOWNLOAD_BUILD_LEASE_SECONDS": 120,
    # How often an idle builder looks for queued jobs.
    "DOWNLOAD_BUILD_POLL_SECONDS": 2.0,
    # A job that no builder has had in hand for this long (none running) stops making
    # requests wait: its files are built on request, as without a job.
    "DOWNLOAD_BUILD_WAIT_SECONDS": 900,
    # `isd publish` builds the new version's downloads itself (claiming its build job)
    # before it exits, rather than leaving them to a builder.
    "BUILD_DOWNLOADS": False,
    # max-age (seconds) of answers that move: latest, the version list, open-ended deltas.
    "MOVING_MAX_AGE": 60,
    # An Ed25519 private key (PEM) to sign manifests with; None: manifests are not signed.
    "SIGNING_KEY_FILE": None,
    # Entity id -> the field naming a record's owner (the ownership policy); empty: off.
    "OWNERSHIP": {},
    # The service's public address, for links in notices; None: the request's own address.
    "PUBLIC_URL": None,
    # Who publishes the data, as the DCAT catalogue names it (dct:publisher).
    "PUBLISHER_NAME": "Industry Standing Data agent",
    # What `isd seed` publishes: mdd/ (portal files or zip) and records/ (CSV by entity id);
    # None: the project's seed_data/ (the latest real MDD version and the ISD-only records).
    "SEED_DIR": None,
    # The scheduler: how late a step may still run, what an empty release does, and how
    # often it re-reads the calendar.
    "SCHEDULE_GRACE_SECONDS": 3600,
    "EMPTY_RELEASE": "skip",
    "SCHEDULER_SYNC_SECONDS": 15,
    # The admin pages: the key that signs their cookie and forms (None: one kept in the
    # instance folder), and how long a sign-in lasts (a fixed lifetime, never extended).
    "SECRET_KEY": None,
    "ADMIN_SESSION_MINUTES": 480,
    # Four eyes: how many other publishers must approve a publication (0: publish at once).
    "PUBLICATION_APPROVALS": 0,
    # Webhooks: "thread" sends from the publishing process; "queue" only by
    # `isd webhooks deliver`.
    "WEBHOOK_DELIVERY": "thread",
    "WEBHOOK_BACKOFF_SECONDS": 30.0,
    "WEBHOOK_MAX_ATTEMPTS": 6,
    "WEBHOOK_TIMEOUT_SECONDS": 10.0,
    "DIP_ENVIRONMENT_TAG": "prod",
    "DIP_SENDER_ID": "ISDA",
    "DIP_INTERFACE_ID": "IF-176",
}

# ISD_<name> -> how its text becomes the setting <name>
_FROM_TEXT: dict[str, Any] = {
    "DATABASE_URL": str,
    "MAX_UPLOAD_BYTES": int,
    "ADMIN_ORG": str,
    "DOWNLOADS_DIR": str,
    "SIGNING_KEY_FILE": str,
    "BUILD_DOWNLOADS": lambda text: text.strip().lower() in ("1", "true", "yes", "on"),
    "DOWNLOAD_BUILDS": str,
    "DOWNLOAD_BUILD_LEASE_SECONDS": int,
    "DOWNLOAD_BUILD_POLL_SECONDS": float,
    "DOWNLOAD_BUILD_WAIT_SECONDS": int,
    "OWNERSHIP": json.loads,
    "PUBLIC_URL": str,
    "PUBLISHER_NAME": str,
    "SEED_DIR": str,
    "SCHEDULE_GRACE_SECONDS": int,
    "EMPTY_RELEASE": str,
    "SCHEDULER_SYNC_SECONDS": int,
    "PUBLICATION_APPROVALS": int,
    "SECRET_KEY": str,
    "ADMIN_SESSION_MINUTES": int,
    "RECORD_QUERY_BUDGET_MS": int,
}


class SettingError(ValueError):
    """A setting that the service cannot run with."""


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the ISD_* variables; an unset (or empty) one keeps the default."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for name, parse in _FROM_TEXT.items():
        text = environ.get(f"ISD_{name}")
        if not text:
            continue
        try:
            value = parse(text)
        except ValueError as exc:
            raise SettingError(f"ISD_{name}: {exc}") from None
        config["MAX_CONTENT_LENGTH" if name == "MAX_UPLOAD_BYTES" else name] = value
    return config


def settings(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The defaults, the environment on top, then ``overrides``; checked."""
    config = {**DEFAULTS, **from_environment(), **(overrides or {})}
    check(config)
    return config


def check(config: dict[str, Any]) -> None:
    """Refuse settings the service cannot use, naming the variable."""
    config["OWNERSHIP"] = check_ownership(config.get("OWNERSHIP") or {})
    if config["DOWNLOAD_BUILDS"] not in DOWNLOAD_BUILD_MODES:
        raise SettingError("ISD_DOWNLOAD_BUILDS must be one of "
                           f"{', '.join(DOWNLOAD_BUILD_MODES)}")
    if not 10 <= int(config["DOWNLOAD_BUILD_LEASE_SECONDS"]) <= 3600:
        raise SettingError("ISD_DOWNLOAD_BUILD_LEASE_SECONDS must be 10 to 3600 seconds")
    if not 0.1 <= float(config["DOWNLOAD_BUILD_POLL_SECONDS"]) <= 300:
        raise SettingError("ISD_DOWNLOAD_BUILD_POLL_SECONDS must be 0.1 to 300 seconds")
    if int(config["DOWNLOAD_BUILD_WAIT_SECONDS"]) < 1:
        raise SettingError("ISD_DOWNLOAD_BUILD_WAIT_SECONDS must be a positive number of "
                           "seconds")
    if config["EMPTY_RELEASE"] not in EMPTY_POLICIES:
        raise SettingError(f"ISD_EMPTY_RELEASE must be one of {', '.join(EMPTY_POLICIES)}")
    if not 1 <= int(config["ADMIN_SESSION_MINUTES"]) <= 24 * 60:
        raise SettingError("ISD_ADMIN_SESSION_MINUTES must be 1 to 1440 minutes")
    if not 0 <= int(config["PUBLICATION_APPROVALS"]) <= 10:
        raise SettingError("ISD_PUBLICATION_APPROVALS must be a number of approvals from 0 "
                           "(publish at once) to 10")
    if not 1 <= int(config["RECORD_QUERY_BUDGET_MS"]) <= 600_000:
        raise SettingError("ISD_RECORD_QUERY_BUDGET_MS must be a number of milliseconds "
                           "from 1 to 600000")
    for name in ("SCHEDULE_GRACE_SECONDS", "SCHEDULER_SYNC_SECONDS"):
        if int(config[name]) < (0 if name == "SCHEDULE_GRACE_SECONDS" else 1):
            raise SettingError(f"ISD_{name} must be a positive number of seconds")


def check_ownership(value: Any) -> dict[str, str]:
    """The ownership mapping (entity id -> owner field id), or SettingError."""
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()):
        raise SettingError("ISD_OWNERSHIP must map entity ids to owner field ids (both text)")
    return dict(value)


def database_url(config: Mapping[str, Any] | None = None) -> str:
    """The database the service uses: the configured URL, or the embedded SQLite file."""
    url = (config or settings()).get("DATABASE_URL")
    return url or f"sqlite:///{INSTANCE_DIR / 'isd.sqlite3'}"


def web_server(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """gunicorn's settings for the web processes (gunicorn.conf.py reads them here)."""
    environ = os.environ if environ is None else environ
    return {
        "bind": environ.get("ISD_BIND", "127.0.0.1:8000").split(","),
        "workers": int(environ.get("ISD_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 16))),
        "threads": int(environ.get("ISD_THREADS", "1")),
        "timeout": int(environ.get("ISD_TIMEOUT", "120")),
        "loglevel": environ.get("ISD_LOG_LEVEL", "info"),
        "forwarded_allow_ips": environ.get("ISD_FORWARDED_ALLOW_IPS", "127.0.0.1"),
    }
