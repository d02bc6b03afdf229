"""Webhook notices over HTTP: signed POSTs, redirects not followed."""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request
from typing import Any


def sign(secret: str, body: bytes) -> str:
    """``X-ISD-Signature``: HMAC-SHA256 of the exact body bytes with the subscriber's secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer like any other non-2xx: the notice is not re-sent elsewhere."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect())


def post(url: str, body: bytes, headers: dict[str, str], timeout: float
         ) -> tuple[int | None, str | None]:
    """POST a notice; return (status code, error), an error when there was no 2xx answer."""
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with _opener.open(req, timeout=timeout) as response:
            response.read(65536)
            return response.status, None
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, str(getattr(exc, "reason", exc))[:500]
