"""HTTP hygiene on every answer: security headers, CORS for public reads, structured logs.

- Every answer says: no MIME sniffing, no referrer, no framing, and a Content-Security-Policy
  that lets nothing load (the API serves data, never pages).
- Public GETs (everything under /api but /api/v1/admin) carry
  ``Access-Control-Allow-Origin: *``: the data is public, and no credentials are involved.
  Admin answers never do, so a browser page elsewhere cannot read them.
- One JSON log line per request on the ``isd_service.requests`` logger: method, path,
  status, duration, size, client address and the token's id when there was one; never a
  header value (an Authorization header is a secret).
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from flask import Flask, Response, g, request

log = logging.getLogger("isd_service.requests")

API_PREFIX = "/api/"
ADMIN_PREFIX = "/api/v1/admin"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# Data answers load nothing and may not be framed or run as a page.
API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
# HTML pages (the web pages) need their own style sheets and images, nothing else.
PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'")
PUBLIC_METHODS = ("GET", "HEAD", "OPTIONS")


def is_public_read(path: str, method: str) -> bool:
    return (method in PUBLIC_METHODS and path.startswith(API_PREFIX)
            and not (path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")))


def init_app(app: Flask) -> None:
    if not app.testing and not log.handlers:
        # One line per request on stderr (gunicorn's and the CLI's), already JSON.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    app.before_request(_start)
    app.after_request(_finish)


def _start() -> None:
    g.request_started = time.perf_counter()
    g.request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex


def _finish(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault(
        "Content-Security-Policy", PAGE_CSP if response.mimetype == "text/html" else API_CSP)
    public = is_public_read(request.path, request.method)
    response.headers.setdefault("Cross-Origin-Resource-Policy",
                                "cross-origin" if public else "same-origin")
    if public:
        response.headers["Access-Control-Allow-Origin"] = "*"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
            response.headers["Access-Control-Max-Age"] = "86400"
    else:
        response.headers.pop("Access-Control-Allow-Origin", None)
    response.headers["X-Request-Id"] = g.get("request_id", "")
    _log(response)
    return response


def _log(response: Response) -> None:
    started = g.get("request_started")
    caller = g.get("caller")
    entry = {
        "event": "request",
        "request_id": g.get("request_id"),
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
        "bytes": response.content_length,
        "remote_addr": request.remote_addr,
        "token_id": caller.token_id if caller is not None else None,
        "organisation": caller.organisation if caller is not None else None,
    }
    log.info(json.dumps(entry, separators=(",", ":")))
