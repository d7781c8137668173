"""The object stores a job may name by URI (``api.object_stores``): a scheme and its filesystem's options.

Built from the configuration only, never from a request's URI (see ``ingest.fetch``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

SCHEMES = ("s3", "gs")


def object_store(scheme: str, options: Mapping[str, Any]) -> pafs.FileSystem:
    """The pyarrow filesystem of an ``api.object_stores`` entry; ``TypeError`` names a wrong option."""
    if scheme == "s3":
        return pafs.S3FileSystem(**options)
    if scheme == "gs":
        return pafs.GcsFileSystem(**options)
    raise ValueError(f"no object store for scheme {scheme!r}: use one of {', '.join(SCHEMES)}")


def scheme_of(location: str) -> str:
    """The URI scheme of *location*, or '' for a local path (a Windows drive letter is a path)."""
    scheme = urlsplit(location).scheme
    return scheme if len(scheme) > 1 else ""


def filesystem(location: str, options: Mapping[str, Any]) -> tuple[pafs.FileSystem, str]:
    """The filesystem *location* names and the path on it. ``s3://`` and ``gs://`` are built from
    *options* (``ulak.objectstore``); another scheme pyarrow knows (``hdfs://``, ``file://``) from
    the URI alone; a path without a scheme is local. ``ValueError`` says what is wrong."""
    scheme = scheme_of(location)
    if not scheme:
        if options:
            raise ValueError("jobs.storage is for a data_dir URI (s3://, gs://); a local data_dir takes none")
        return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())
    if scheme in SCHEMES:
        parts = urlsplit(location)
        path = (parts.netloc + parts.path).rstrip("/")
        if not parts.netloc:
            raise ValueError(f"{location!r} names no bucket: write {scheme}://bucket/prefix")
        return object_store(scheme, options), path
    if options:
        raise ValueError(f"jobs.storage options apply to {', '.join(SCHEMES)} URIs, not {scheme}://")
    try:
        fs, path = pafs.FileSystem.from_uri(location)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(f"{location!r}: pyarrow reads no filesystem from it ({exc})") from None
    return fs, path.rstrip("/")
