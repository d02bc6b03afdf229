"""Where `isd mirror` writes the static tree: a local folder, or an S3-compatible bucket.

A folder gets each file under a temporary name in its own directory, then renamed into place,
so a web server rooted there never serves half a file. A bucket gets each file as one PUT
(atomic in S3) with the Content-Type and Cache-Control the application sends and the
file's SHA-256 in its metadata, which is how the next run knows what is already there.
boto3 is imported only for a bucket (pip install 'isd-service[s3]'); credentials, region and
endpoint come from the usual AWS environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from isd_service.adapters.download_files import CHUNK, sha256_of


class TargetError(Exception):
    """The mirror's target cannot be used; the message says why."""


def checked(path: str) -> str:
    """A static path as a relative POSIX path that stays inside the target."""
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise TargetError(f"refusing to write {path!r}: not a plain relative path")
    return path


class DirectoryTarget:
    """A local folder that any web server can serve as it is."""

    def __init__(self, root: Path):
        if root.exists() and not root.is_dir():
            raise TargetError(f"{root} exists and is not a folder")
        self.root = root

    def __str__(self) -> str:
        return str(self.root)

    def holds(self, file: Any) -> bool:
        path = self.root / checked(file.path)
        try:
            if path.stat().st_size != file.size:
                return False
            return sha256_of(path)[1] == file.sha256
        except OSError:
            return False

    def put(self, file: Any) -> None:
        path = self.root / checked(file.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        temp = Path(name)
        try:
            os.chmod(fd, 0o644)  # public data, read by a web server running as another user
            with os.fdopen(fd, "wb") as out:
                if isinstance(file.source, bytes):
                    out.write(file.source)
                else:
                    with Path(file.source).open("rb") as source:
                        shutil.copyfileobj(source, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


class BucketTarget:
    """An S3-compatible bucket (``s3://bucket[/prefix]``)."""

    def __init__(self, url: str, client: Any | None = None):
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise TargetError(f"{url!r} is not an s3://bucket[/prefix] URL")
        self.url = url
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        if client is None:
            try:
                import boto3
            except ImportError:
                raise TargetError("writing to a bucket needs boto3: pip install "
                                  "'isd-service[s3]'") from None
            client = boto3.client("s3")
        self.client = client
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors = (BotoCoreError, ClientError)
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self._errors as exc:
            raise TargetError(f"cannot use bucket {self.bucket!r}: {exc}") from None

    def __str__(self) -> str:
        return self.url

    def key(self, path: str) -> str:
        return f"{self.prefix}/{checked(path)}" if self.prefix else checked(path)

    def holds(self, file: Any) -> bool:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(file.path))
        except self._errors:
            return False
        return bool(head.get("ContentLength") == file.size
                    and head.get("Metadata", {}).get("sha256") == file.sha256
                    and head.get("ContentType") == file.content_type
                    and head.get("CacheControl") == file.cache_control)

    def put(self, file: Any) -> None:
        args = {"Bucket": self.bucket, "Key": self.key(file.path),
                "ContentType": file.content_type, "CacheControl": file.cache_control,
                "Metadata": {"sha256": file.sha256}}
        try:
            if isinstance(file.source, bytes):
                self.client.put_object(Body=file.source, **args)
            else:
                with Path(file.source).open("rb") as body:
                    self.client.put_object(Body=body, **args)
        except self._errors as exc:
            raise TargetError(f"cannot write {self.key(file.path)} to bucket "
                              f"{self.bucket!r}: {exc}") from None


def target_for(where: str) -> DirectoryTarget | BucketTarget:
    """A bucket for an ``s3://`` URL, else a local folder."""
    if where.startswith("s3://"):
        return BucketTarget(where)
    if "://" in where:
        raise TargetError(f"{where!r}: a mirror goes to a folder or an s3:// bucket")
    return DirectoryTarget(Path(where))
