"""`isd serve`: the web processes, with gunicorn and the settings of gunicorn.conf.py."""

from __future__ import annotations

import runpy

import click
from flask import Flask

from isd_service.config import PROJECT_ROOT


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", type=click.IntRange(1, 64),
              help="worker processes [default: gunicorn.conf.py's, from ISD_WORKERS or CPUs]")
def serve_command(host: str, port: int, workers: int | None) -> None:
    """Serve the API with gunicorn, with the settings of gunicorn.conf.py."""
    from gunicorn.app.base import BaseApplication

    from isd_service.entrypoints.app import create_app

    class Server(BaseApplication):
        def load_config(self) -> None:
            settings = PROJECT_ROOT / "gunicorn.conf.py"
            if settings.is_file():
                for name, value in runpy.run_path(str(settings)).items():
                    if name in self.cfg.settings and name != "wsgi_app" and value is not None:
                        self.cfg.set(name, value)
            self.cfg.set("bind", f"{host}:{port}")
            if workers is not None:
                self.cfg.set("workers", workers)

        def load(self) -> Flask:
            return create_app()

    Server().run()
