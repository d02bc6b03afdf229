"""The webhook sender of a web (or CLI) process: a background thread that sends the notices
a publication of this process queued, then retries them as they fall due.

It sleeps until the next retry, and stops when nothing is pending; the next publication
starts it again. `isd webhooks deliver` (cron, or beside the scheduler) sends what is due for
processes that have gone.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask

from isd_service.entrypoints.flask_db import new_uow
from isd_service.service_layer.webhooks import deliver_due

log = logging.getLogger(__name__)

_lock = threading.Lock()


class _Worker:
    def __init__(self, app: Flask):
        self.app = app
        self.wake = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self.run, name="isd-webhooks", daemon=True)

    def run(self) -> None:
        while True:
            self.wake.clear()
            try:
                with self.app.app_context(), new_uow(self.app) as unit:
                    delay = deliver_due(unit)
            except Exception:  # a database hiccup must not kill the sender for good
                log.exception("webhook delivery failed; retrying")
                delay = float(self.app.config["WEBHOOK_BACKOFF_SECONDS"])
            if delay is None:
                with _lock:
                    if not self.wake.is_set():
                        self.stopping = True
                        return
                continue
            self.wake.wait(min(delay, 300.0))


_workers: dict[int, _Worker] = {}


def kick(app: Flask) -> None:
    """Make sure this process's sender runs and looks at the queue now."""
    with _lock:
        worker = _workers.get(id(app))
        if worker is None or worker.stopping or not worker.thread.is_alive():
            worker = _Worker(app)
            _workers[id(app)] = worker
            worker.thread.start()
        worker.wake.set()


def wait_idle(app: Flask, timeout: float) -> bool:
    """Wait until this process's sender has nothing left to send (tests, shutdown)."""
    worker = _workers.get(id(app))
    if worker is None:
        return True
    worker.thread.join(timeout)
    return not worker.thread.is_alive()


def forget(app: Flask) -> None:
    """Let this process's next publication start a new sender for ``app`` (tests reuse an
    app; a sender waiting to retry wakes up later, finds nothing due and stops)."""
    with _lock:
        _workers.pop(id(app), None)
