"""Ed25519 signatures of manifests, so that mirrors and CDNs need not be trusted.

The key is an Ed25519 private key in a PEM file (``openssl genpkey -algorithm ed25519``),
named by the configuration (ISD_SIGNING_KEY_FILE). The signature is over the exact bytes of
``GET /versions/{n}``, which list every download's SHA-256.
"""

from __future__ import annotations

import base64
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@lru_cache(maxsize=4)
def signing_key(path: str) -> Ed25519PrivateKey:
    """The private key in the PEM file at ``path`` (read once per process)."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"{path} does not hold an Ed25519 private key")
    return key


def sign(key_file: str, data: bytes) -> str:
    """The base64 of the Ed25519 signature of ``data``, with a newline."""
    return base64.b64encode(signing_key(key_file).sign(data)).decode("ascii") + "\n"


def public_key_pem(key_file: str) -> bytes:
    return signing_key(key_file).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
