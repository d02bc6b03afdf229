"""Moments in time as the service writes them: ISO 8601 in UTC with a Z (pure)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime) -> str:
    """Write an aware moment in UTC as ISO 8601, e.g. 2027-01-19T12:00:00Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_utc_or_none(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment is not None else None
