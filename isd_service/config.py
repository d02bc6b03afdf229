"""Configuration from the environment (ISD_*), with defaults for the embedded SQLite set-up."""

from __future__ import annotations

import os
from typing import Any


def from_environment() -> dict[str, Any]:
    """Read the ISD_* variables; an unset one keeps the default."""
    config: dict[str, Any] = {}
    if url := os.environ.get("ISD_DATABASE_URL"):
        config["DATABASE_URL"] = url
    if size := os.environ.get("ISD_MAX_UPLOAD_BYTES"):
        config["MAX_CONTENT_LENGTH"] = int(size)
    if org := os.environ.get("ISD_ADMIN_ORG"):
        config["ADMIN_ORG"] = org
    if downloads := os.environ.get("ISD_DOWNLOADS_DIR"):
        config["DOWNLOADS_DIR"] = downloads
    if key_file := os.environ.get("ISD_SIGNING_KEY_FILE"):
        config["SIGNING_KEY_FILE"] = key_file
    if build := os.environ.get("ISD_BUILD_DOWNLOADS"):
        config["BUILD_DOWNLOADS"] = build.strip().lower() in ("1", "true", "yes", "on")
    return config


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
    # Where the download files of published versions are built; None: <instance>/downloads.
    "DOWNLOADS_DIR": None,
    # Build a version's downloads as soon as `isd publish` or the scheduler has published it,
    # in that process, so that no web request waits for (or times out on) a large build.
    "BUILD_DOWNLOADS": False,
    # max-age (seconds) of answers that move: latest, the version list, open-ended deltas.
    "MOVING_MAX_AGE": 60,
    # An Ed25519 private key (PEM) to sign manifests with; None: manifests are not signed.
    "SIGNING_KEY_FILE": None,
}
