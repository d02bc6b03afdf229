"""The bearer-token check every admin blueprint runs before its views."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, g, request

from isd_service.domain.access import Caller
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer.tokens import authenticate


def protect(bp: Blueprint, role: str | None = None) -> None:
    """Authenticate every request to ``bp`` (401 without a valid token), and need ``role``."""

    @bp.before_request
    def _authenticate() -> None:
        # Set before the role check, so that the request log names who was refused.
        g.caller = authenticate(uow(), request.headers.get("Authorization"))
        if role is not None:
            g.caller.require(role)


def requires(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Need one of ``roles`` (403) before the request's input is read: put it above
    ``@bp.arguments``, whose parsing would otherwise answer first."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            caller().require(*roles)
            return view(*args, **kwargs)

        return checked

    return decorator


def caller() -> Caller:
    """Who sent the current admin request (set by ``protect``)."""
    return g.caller
