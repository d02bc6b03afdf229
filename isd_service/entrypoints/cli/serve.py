"""`isd serve`: the web processes, with gunicorn and the settings of gunicorn.conf.py, and a
download builder process beside them (`isd downloads worker`), so that a version published
here has its downloads built in the background, never in a web worker."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys

import click
from flask import Flask

from isd_service.config import PROJECT_ROOT, settings


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", type=click.IntRange(1, 64),
              help="worker processes [default: gunicorn.conf.py's, from ISD_WORKERS or CPUs]")
@click.option("--builder/--no-builder", default=True, show_default=True,
              help="run a download builder process beside the web workers (with "
                   "ISD_DOWNLOAD_BUILDS=background; leave it to the scheduler with --no-builder)")
def serve_command(host: str, port: int, workers: int | None, builder: bool) -> None:
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

    child = start_builder() if builder and settings()["DOWNLOAD_BUILDS"] == "background" \
        else None
    try:
        Server().run()
    finally:
        if child is not None:
            stop_builder(child)


def start_builder() -> subprocess.Popen[bytes]:
    """`isd downloads worker` as a child process, which exits if this process goes."""
    return subprocess.Popen([sys.executable, "-c",
                             "from isd_service.entrypoints.cli import main; main()",
                             "downloads", "worker", "--parent", str(os.getpid())])


def stop_builder(child: subprocess.Popen[bytes]) -> None:
    """Stop the builder: it gives a job it is building back to the queue."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
