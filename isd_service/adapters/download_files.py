"""Download files on disk: built once, atomically, then only read.

Nothing here imports Flask. A version's files live in a folder named after the version and a
hash of its manifest, so the folder's name fixes its content: a rebuilt database (or a second
machine) can never be served another database's bytes under the same name.

A file is written to a temporary name in its own folder, hashed, gzipped to a second temporary
file, and only then renamed into place; the small ``.meta.json`` written last is the sign that
the file is complete. Two processes building the same file at once each write their own
temporary files and rename identical bytes over each other, so a reader always opens a whole
file.

The folder may fail (full, read-only, an I/O error): every such failure surfaces as
``FolderUnusable`` naming its cause class, and the same bytes can then be hashed
(``digest_of``) or sent (``stream``) without touching the disk. A file on disk is only
returned when its size (every time) and hash (once per process, and again whenever the file
changes) match its metadata.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,150}$")
# What writes a download: its bytes, the same every time it is called.
Chunks = Callable[[], Iterable[bytes]]

# errno -> the cause class a failing folder is reported under (others: io-error)
CAUSES = {errno.ENOSPC: "no-space", errno.EDQUOT: "no-space", errno.EROFS: "read-only",
          errno.EACCES: "permission", errno.EPERM: "permission"}


def cause_of(exc: OSError) -> str:
    """The class of a file system failure: no-space, read-only, permission or io-error."""
    return CAUSES.get(exc.errno or 0, "io-error")


class FolderUnusable(Exception):
    """The downloads folder could not give a file: ``cause`` says why, in a word."""

    def __init__(self, path: Path, exc: OSError):
        self.path = path
        self.cause = cause_of(exc)
        self.reason = exc.strerror or str(exc)
        super().__init__(f"{self.cause}: {self.reason} ({path})")


@dataclass(frozen=True)
class Digest:
    """What a download's bytes are: size and SHA-256, and those of its gzip copy."""

    size: int
    sha256: str
    gz_size: int | None = None
    gz_sha256: str | None = None


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

    @property
    def digest(self) -> Digest:
        return Digest(self.size, self.sha256, self.gz_size, self.gz_sha256)


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
        built = Built(path, int(meta["size"]), str(meta["sha256"]), meta.get("gz_size"),
                      meta.get("gz_sha256"))
    except (OSError, ValueError, KeyError, TypeError):  # absent, half-written or foreign
        return None
    if not path.is_file() or (built.gz_path is not None and not built.gz_path.is_file()):
        return None
    return built


def ensure(path: Path, chunks: Chunks, *, compress: bool,
           expected: Digest | None = None) -> Built:
    """Return the file at ``path``, building it from ``chunks`` first if it is not there.

    ``chunks`` must give the same bytes every time (the files are content, not caches of
    a moment). ``compress`` also stores a gzip copy, built once here rather than per request.
    A file found whose size or hash differs from its metadata (or from ``expected``, what the
    bytes are known to be) is removed and built again. Raises FolderUnusable when the folder
    fails.
    """
    try:
        found = _sound(path, expected)
        if found is not None:
            return found
        path.parent.mkdir(parents=True, exist_ok=True)
        # Processes sharing this folder build one at a time (the others wait, then find the
        # file); the temporary names and renames keep readers safe, the lock only saves work.
        with (path.parent / f".{path.name}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return _sound(path, expected) or _build(path, chunks, compress=compress)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except OSError as exc:
        raise FolderUnusable(path, exc) from exc


class Mismatch(Exception):
    """A file on disk whose bytes are not those its metadata names."""


# path -> the (inode, size, mtime) at which this process last hashed the file and found it
# sound: a file is hashed again only when it changed, yet never served unchecked.
_verified: dict[Path, tuple[int, int, int]] = {}


def _sound(path: Path, expected: Digest | None) -> Built | None:
    """The complete file at ``path`` if its bytes match its metadata; None if there is
    none. A file that does not match is removed, and the event logged, so that it is built
    again."""
    found = existing(path)
    if found is None:
        return None
    try:
        check(found, expected)
    except Mismatch as exc:
        log.warning("download file %s is not the bytes its metadata names (%s): removing "
                    "it, to build it again", path, exc)
        for stale in (_meta_path(path), path, path.with_name(path.name + ".gz")):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        _verified.pop(path, None)
        return None
    return found


def check(built: Built, expected: Digest | None = None) -> None:
    """Raise Mismatch unless the file and its gzip copy are the bytes their metadata (and
    ``expected``) name: sizes every time, hashes when the file changed since last checked."""
    if expected is not None and built.digest != expected:
        raise Mismatch(f"its metadata ({built.size} bytes, {built.sha256[:12]}...) is not "
                       f"the download's ({expected.size} bytes, {expected.sha256[:12]}...)")
    pairs = [(built.path, built.size, built.sha256)]
    if built.gz_path is not None:
        assert built.gz_size is not None and built.gz_sha256 is not None
        pairs.append((built.gz_path, built.gz_size, built.gz_sha256))
    for file, size, sha in pairs:
        stat = file.stat()
        if stat.st_size != size:
            raise Mismatch(f"{file.name} holds {stat.st_size} bytes, its metadata says {size}")
        signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if _verified.get(file) == signature:
            continue
        if sha256_of(file)[1] != sha:
            raise Mismatch(f"{file.name}'s SHA-256 is not the {sha[:12]}... of its metadata")
        _verified[file] = signature


def _gzip(out: Any) -> gzip.GzipFile:
    # mtime=0 and no file name: the same bytes always gzip to the same bytes.
    return gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6)


def _build(path: Path, chunks: Chunks, *, compress: bool) -> Built:
    temps: list[Path] = []

    def temp() -> tuple[Any, Path]:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        temps.append(Path(name))
        # Published data is public: a reverse proxy or mirror under another user may read it.
        os.chmod(fd, 0o644)
        return os.fdopen(fd, "w+b"), Path(name)

    try:
        out, data_tmp = temp()
        with out, _opened(chunks) as made:
            for chunk in made:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        size, digest = sha256_of(data_tmp)
        meta: dict[str, Any] = {"size": size, "sha256": digest}
        if compress:
            gz_out, gz_tmp = temp()
            with gz_out, data_tmp.open("rb") as source:
                with _gzip(gz_out) as zipped:
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


@contextlib.contextmanager
def _opened(chunks: Chunks) -> Iterator[Iterator[bytes]]:
    """The bytes of ``chunks``, closed when left, even on an error: a generator left open
    would hold its database cursor until the garbage collector came by."""
    made = iter(chunks())
    try:
        yield made
    finally:
        close = getattr(made, "close", None)
        if close is not None:
            close()


class _Sink:
    """Collects what a writer (gzip) writes, for a generator to hand on."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        if data:
            self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts = []
        return data


def stream(chunks: Chunks, *, gz: bool) -> Iterator[bytes]:
    """The download's bytes (gzipped as the stored copy would be when ``gz``), made as they
    are sent: nothing touches the disk."""
    if not gz:
        with _opened(chunks) as made:
            yield from made
        return
    sink = _Sink()
    with _opened(chunks) as made, _gzip(sink) as zipped:
        for chunk in made:
            zipped.write(chunk)
            if len(sink.parts) > 16:
                yield sink.take()
    yield sink.take()


def digest_of(chunks: Chunks, *, compress: bool) -> Digest:
    """Size and SHA-256 of the bytes ``chunks`` gives (and of their gzip copy), in one pass
    and without writing them anywhere."""
    sink = _Sink()
    raw, zipped_hash = hashlib.sha256(), hashlib.sha256()
    size = gz_size = 0
    with contextlib.ExitStack() as stack:
        zipped = stack.enter_context(_gzip(sink)) if compress else None
        for chunk in stack.enter_context(_opened(chunks)):
            raw.update(chunk)
            size += len(chunk)
            if zipped is not None:
                zipped.write(chunk)
                for part in sink.parts:
                    zipped_hash.update(part)
                    gz_size += len(part)
                sink.parts = []
    if zipped is None:
        return Digest(size, raw.hexdigest())
    last = sink.take()
    zipped_hash.update(last)
    return Digest(size, raw.hexdigest(), gz_size + len(last), zipped_hash.hexdigest())


def probe(root: Path) -> tuple[str, int | None, str | None]:
    """Whether files can be written under ``root``: ("ok" or a cause class, the bytes free,
    what failed). Writes and removes one small file: cheap enough for a health check."""
    free = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        stats = os.statvfs(root)
        free = stats.f_bavail * stats.f_frsize
        fd, name = tempfile.mkstemp(dir=root, prefix=".probe.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(b"\0" * 4096)
                out.flush()
                os.fsync(out.fileno())
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)
    except OSError as exc:
        return cause_of(exc), free, exc.strerror or str(exc)
    return "ok", free, None
