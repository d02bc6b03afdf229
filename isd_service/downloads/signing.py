"""Ed25519 signatures of manifests, so that mirrors and CDNs need not be trusted.

The key is an Ed25519 private key in a PEM file (``openssl genpkey -algorithm ed25519``),
named by the configuration (``SIGNING_KEY_FILE``, ``ISD_SIGNING_KEY_FILE``). The signature is
over the exact bytes of ``GET /versions/{n}``, which list every download's SHA-256.
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import current_app

from isd_service.errors import ApiError


def signing_key() -> Ed25519PrivateKey:
    """The configured key; 404 (as a problem) when this service does not sign."""
    name = current_app.config.get("SIGNING_KEY_FILE")
    if not name:
        raise ApiError(404, "this service does not sign its manifests", slug="not-signed")
    cache = current_app.extensions.setdefault("isd_signing_key", {})
    if name not in cache:
        key = serialization.load_pem_private_key(Path(name).read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError(f"{name} does not hold an Ed25519 private key")
        cache[name] = key
    return cache[name]


def signature(data: bytes) -> str:
    """The base64 of the Ed25519 signature of ``data``, with a newline."""
    return base64.b64encode(signing_key().sign(data)).decode("ascii") + "\n"


def public_key_pem() -> bytes:
    return signing_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
