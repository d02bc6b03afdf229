"""`isd downloads build`: build a version's download files before anyone asks for them."""

from __future__ import annotations

import time

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from isd_service.downloads import build_all, version_folder
from isd_service.extensions import session
from isd_service.models import Version
from isd_service.store import get_version, latest_version


def build_version(app: Flask, version: Version) -> tuple[int, int, float]:
    """Build every listed download of ``version``; return (files, bytes, seconds)."""
    started = time.perf_counter()
    with app.test_request_context():
        files = build_all(version)
    return len(files), sum(b.size for _n, b in files), time.perf_counter() - started


def build_after_publication(app: Flask, number: int) -> None:
    """Build a just-published version's downloads when BUILD_DOWNLOADS asks for it."""
    if not app.config.get("BUILD_DOWNLOADS"):
        return
    version = get_version(session(), number)
    if version is None:
        return
    count, size, seconds = build_version(app, version)
    app.logger.info("version %s: %s download files (%s bytes) built in %.1fs",
                    number, count, size, seconds)


@click.group("downloads")
def downloads_group() -> None:
    """The download files of published versions."""


@downloads_group.command("build")
@click.argument("number", required=False, type=click.IntRange(1, 2**31 - 1))
@with_appcontext
def build_command(number: int | None) -> None:
    """Build every download of a version (default: the latest) into the downloads folder.

    Run it after a publication on each machine that has its own downloads folder, so that
    no request has to wait for a large version's files.
    """
    db = session()
    version = get_version(db, number) if number else latest_version(db)
    if version is None:
        raise click.ClickException(f"no version {number}" if number else "nothing published")
    count, size, seconds = build_version(current_app._get_current_object(),  # type: ignore[attr-defined]
                                         version)
    click.echo(f"version {version.number}: {count} files, {size} bytes in "
               f"{version_folder(version)} ({seconds:.1f}s)")
