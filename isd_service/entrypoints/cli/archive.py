"""`isd import-archive DIR`: an archive of MDD versions, each published under its own number."""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from isd_service.domain.errors import DomainError
from isd_service.entrypoints.cli import fail, refused
from isd_service.entrypoints.cli.drafts import input_files
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer.archive import PUBLISHED, import_version


def version_folders(archive: Path) -> list[tuple[int, Path]]:
    """The archive's version folders (named by their number), in numeric order."""
    if not archive.is_dir():
        fail(f"{archive}: no such folder")
    folders = sorted((int(p.name), p) for p in archive.iterdir()
                     if p.is_dir() and p.name.isdigit())
    if not folders:
        fail(f"{archive} holds no version folder (a folder named by its version's number)")
    return folders


@click.command("import-archive")
@click.argument("archive", type=click.Path(file_okay=False, path_type=Path))
@click.option("--by", "actor", default="archive", show_default=True, help="who is importing")
@with_appcontext
def import_archive_command(archive: Path, actor: str) -> None:
    """Load and publish every version folder of ARCHIVE (each with that version's portal
    files, or a portal zip) in numeric order, under its own number.

    It can be stopped and run again: a version already published with the same content is
    skipped, one whose content differs is an error naming the version and entity.
    """
    folders = version_folders(archive)
    organisation = current_app.config["ADMIN_ORG"]
    on_terminal = sys.stderr.isatty()
    started = time.perf_counter()
    total_records = 0
    with click.progressbar(folders, label="import", file=sys.stderr, show_pos=True,
                           item_show_func=lambda item: f"version {item[0]}" if item else "",
                           ) if on_terminal else nullcontext(folders) as versions:
        for number, folder in versions:
            began = time.perf_counter()
            try:
                done = import_version(uow(), number, input_files((str(folder),), "mdd-csv"),
                                      actor=actor, organisation=organisation)
            except DomainError as exc:
                refused(exc, f"version {number} ({folder}) was refused; the versions before "
                             "it are published")
            seconds = time.perf_counter() - began
            total_records += done.records
            rate = done.records / seconds if seconds > 0 else 0
            line = (f"{number}: published, {done.records} records, {done.changes} changes, "
                    f"{seconds:.1f}s, {rate:,.0f} records/s" if done.outcome == PUBLISHED
                    else f"{number}: already published with the same content, skipped")
            if on_terminal:
                versions.label = f"import ({rate:,.0f} records/s)"  # type: ignore[union-attr]
            else:
                click.echo(line)
    seconds = time.perf_counter() - started
    click.echo(f"imported {len(folders)} versions ({total_records} records) in "
               f"{seconds:.1f}s; the latest is {folders[-1][0]}")
