"""The `isd` command: database, tokens, loads, publication, catalogue, releases, downloads,
seed data and the server. Each command parses its arguments, calls the service layer and
prints the result; a refusal is printed with every reason and exits with 1."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click
from flask import Flask
from flask.cli import FlaskGroup

from isd_service.domain.catalogue import CatalogueError
from isd_service.domain.errors import DomainError
from isd_service.domain.validation import LoadRejected


def fail(message: str, problems: list[dict[str, Any]] | None = None) -> NoReturn:
    """Print an error (and its problems, one per line) and exit with 1."""
    click.echo(f"error: {message}", err=True)
    for p in problems or []:
        where = ", ".join(f"{k} {p[k]}" for k in ("entity", "file", "line", "field")
                          if p.get(k) is not None)
        value = f" (value {p['value']!r})" if p.get("value") is not None else ""
        click.echo(f"  {where}: {p['message']}{value}", err=True)
    sys.exit(1)


def refused(exc: DomainError, what: str | None = None, *, limit: int = 200) -> NoReturn:
    """Report a use case's refusal and exit with 1."""
    if isinstance(exc, LoadRejected):
        fail(f"{what or 'the load was refused and nothing changed'}: "
             f"{len(exc.problems)} problem(s)", [p.to_dict() for p in exc.problems[:limit]])
    if isinstance(exc, CatalogueError):
        fail(what or str(exc), exc.problems)
    fail(str(exc))


def register_commands(app: Flask) -> None:
    from isd_service.entrypoints.cli import (
        archive,
        bench,
        calendar,
        catalogue,
        database,
        downloads,
        drafts,
        mirror,
        publishing,
        serve,
        tokens,
        webhooks,
    )

    for command in (database.db_group, database.seed_command, tokens.token_group,
                    drafts.load_command, drafts.draft_group, publishing.publish_command,
                    publishing.publication_group,
                    catalogue.catalogue_group, calendar.release_group,
                    calendar.scheduler_command, downloads.downloads_group, bench.bench_group,
                    webhooks.webhooks_group, serve.serve_command,
                    archive.import_archive_command, mirror.mirror_command):
        app.cli.add_command(command)


def main() -> None:
    """Entry point of the `isd` console script."""
    from isd_service.entrypoints.app import create_app

    cli = FlaskGroup(create_app=lambda: create_app(), add_default_commands=False,
                     add_version_option=False, load_dotenv=False)
    cli(prog_name="isd")
