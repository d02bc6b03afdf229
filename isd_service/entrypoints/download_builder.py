"""The download builder: a loop, outside every web request, that builds the downloads of new
versions as their publications queue them (service_layer/download_builds.py).

It runs as a thread of the scheduler process, as `isd downloads worker` (a process of its
own), and as the process that `isd serve` starts beside its web workers. Any number may run
against one database: each job is claimed by one builder at a time. An idle builder looks for
jobs every DOWNLOAD_BUILD_POLL_SECONDS; ``kick`` makes it look now (the scheduler, after it
published). Stopping gives an unfinished job back to the queue.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from flask import Flask

from isd_service.entrypoints.api.caching import downloads_root
from isd_service.entrypoints.flask_db import new_uow
from isd_service.service_layer import download_builds
from isd_service.service_layer.download_builds import Outcome

log = logging.getLogger(__name__)


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


class Builder:
    """Builds queued download jobs of one app's database, into its downloads folder."""

    def __init__(self, app: Flask, *, runner: str | None = None,
                 alive: Callable[[], bool] = lambda: True):
        self.app = app
        self.runner = runner or runner_name()
        self.alive = alive  # False: stop (a builder whose parent process has gone)
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def _stopping(self) -> bool:
        return self.stop.is_set() or not self.alive()

    def run_due(self, *, only: int | None = None) -> list[Outcome]:
        """Claim and build every job queued now (``only``: that version's job, if queued)."""
        with self.app.app_context(), new_uow(self.app) as unit, new_uow(self.app) as beats:
            return download_builds.run_due(unit, beats, self.runner, downloads_root(),
                                           stopping=self._stopping, only=only)

    def announce(self) -> None:
        """Tell the web processes a builder is here: their requests for a queued version's
        files then wait for it (503) rather than build them."""
        with self.app.app_context(), new_uow(self.app) as unit:
            download_builds.announce(unit, self.runner)

    def run(self) -> None:
        """Build jobs as they are queued, until ``stop`` is set (or the parent is gone)."""
        poll = float(self.app.config["DOWNLOAD_BUILD_POLL_SECONDS"])
        log.info("download builder %s started (looking for jobs every %ss)", self.runner, poll)
        while not self._stopping():
            self.wake.clear()
            try:
                self.announce()
                self.run_due()
            except Exception:  # a database hiccup must not stop the builder for good
                log.exception("download builder %s: looking for jobs failed; trying again",
                              self.runner)
            self.wake.wait(poll)
        log.info("download builder %s stopped", self.runner)

    def kick(self) -> None:
        """Look for jobs now."""
        self.wake.set()

    def start(self) -> threading.Thread:
        """Run in a thread of this process (the scheduler's)."""
        self.thread = threading.Thread(target=self.run, name="isd-download-builder",
                                       daemon=True)
        self.thread.start()
        return self.thread

    def request_stop(self) -> None:
        """Stop soon (from a signal handler): a job being built is given back to the queue."""
        self.stop.set()
        self.wake.set()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop, and wait for the thread; a job being built is given back to the queue."""
        self.request_stop()
        if self.thread is not None:
            self.thread.join(timeout)
