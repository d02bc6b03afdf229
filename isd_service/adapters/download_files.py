"""Download files on disk: built once, atomically, then only read.

Nothing here imports Flask. A version's files live in a folder named after the version and a
hash of its manifest, so the folder's name fixes its content: a rebuilt database (or a second
machine) can never be served another database's bytes under the same name.

A file is written to a temporary name in its own folder, hashed, gzipped to a second temporary
file, and only then renamed into place; the small ``.meta.json`` written last is the sign that
the file is complete. Two processes building the same file at once each write their own
temporary files and rename identical bytes over each other, so a reader always opens a whole
file.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1024 * 1024
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,150}$")


@dataclass(frozen=True)
class Built:
    """A complete download file: its path, size and SHA-256, and those of its gzip copy."""

    path: Path
    size: int
    sha256: str
    gz_size: int | None = None
    gz_sha256: str | None = None

    @property
    def gz_path(self) -> Path | None:
        return self.path.with_name(self.path.name + ".gz") if self.gz_sha256 else None


def folder_key(manifest: dict[str, Any]) -> str:
    """A short hash of a version's manifest: names the folder its downloads live in."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def safe_part(name: str) -> str:
    """Use a name in a file name as it is when it is plain, else a hash of it."""
    if SAFE_NAME.match(name) and ".." not in name:
        return name
    return "h" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:20]


def sha256_of(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def existing(path: Path) -> Built | None:
    """The built file at ``path``, or None when it is not (completely) there."""
    try:
        meta = json.loads(_meta_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    built = Built(path, meta["size"], meta["sha256"], meta.get("gz_size"), meta.get("gz_sha256"))
    if not path.is_file() or (built.gz_path is not None and not built.gz_path.is_file()):
        return None
    return built


def ensure(path: Path, write: Callable[[BinaryIO], None], *, compress: bool) -> Built:
    """Return the file at ``path``, building it with ``write`` first if it is not there.

    ``write`` must produce the same bytes every time (the files are content, not caches of
    a moment). ``compress`` also stores a gzip copy, built once here rather than per request.
    """
    found = existing(path)
    if found is not None:
        return found
    path.parent.mkdir(parents=True, exist_ok=True)
    # Processes sharing this folder build one at a time (the others wait, then find the file);
    # the temporary names and renames are what keep readers safe, the lock only saves work.
    with (path.parent / f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return existing(path) or _build(path, write, compress=compress)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(path: Path, write: Callable[[BinaryIO], None], *, compress: bool) -> Built:
    temps: list[Path] = []

    def temp() -> tuple[BinaryIO, Path]:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        # Published data is public: a reverse proxy or mirror under another user may read it.
        os.chmod(fd, 0o644)
        temps.append(Path(name))
        return os.fdopen(fd, "w+b"), Path(name)

    try:
        out, data_tmp = temp()
        with out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        size, digest = sha256_of(data_tmp)
        meta: dict[str, Any] = {"size": size, "sha256": digest}
        if compress:
            gz_out, gz_tmp = temp()
            with gz_out, data_tmp.open("rb") as source:
                # mtime=0 and no file name: the same bytes always gzip to the same bytes.
                with gzip.GzipFile(filename="", mode="wb", fileobj=gz_out, mtime=0,
                                   compresslevel=6) as zipped:
                    shutil.copyfileobj(source, zipped, CHUNK)
                gz_out.flush()
                os.fsync(gz_out.fileno())
            meta["gz_size"], meta["gz_sha256"] = sha256_of(gz_tmp)
            os.replace(gz_tmp, path.with_name(path.name + ".gz"))
        os.replace(data_tmp, path)
        meta_out, meta_tmp = temp()
        with meta_out:
            meta_out.write(json.dumps(meta, sort_keys=True).encode("utf-8"))
        os.replace(meta_tmp, _meta_path(path))
    finally:
        for leftover in temps:
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    result = existing(path)
    assert result is not None
    return result
