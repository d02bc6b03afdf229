"""`isd downloads build`: build a version's download files before anyone asks for them."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from isd_service.adapters import repository
from isd_service.adapters.download_files import FolderUnusable
from isd_service.entrypoints.api.caching import downloads_root
from isd_service.entrypoints.flask_db import new_uow, uow
from isd_service.service_layer.downloads import Downloads, build_version


def build_after_publication(app: Flask, number: int) -> None:
    """Build a just-published version's downloads when BUILD_DOWNLOADS asks for it."""
    if not app.config.get("BUILD_DOWNLOADS"):
        return
    with app.app_context(), new_uow(app) as unit:
        version = repository.get_version(unit.session, number)
        if version is None:
            return
        try:
            count, size, seconds = build_version(unit.session, downloads_root(), version)
        except FolderUnusable as exc:  # the version is out: its downloads stream meanwhile
            app.logger.warning("version %s: its downloads could not be built (%s); they "
                               "are sent from the database until they can be", number, exc)
            return
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
    db = uow().session
    version = (repository.get_version(db, number) if number
               else repository.latest_version(db))
    if version is None:
        raise click.ClickException(f"no version {number}" if number else "nothing published")
    try:
        count, size, seconds = build_version(db, downloads_root(), version)
    except FolderUnusable as exc:
        raise click.ClickException(f"the downloads folder cannot be written ({exc})") from None
    folder = Downloads(db, downloads_root()).folder(version)
    click.echo(f"version {version.number}: {count} files, {size} bytes in {folder} "
               f"({seconds:.1f}s)")
