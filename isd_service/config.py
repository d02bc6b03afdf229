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
}
