"""The object stores a job may name by URI (``api.object_stores``): a scheme and its filesystem's options.

Built from the configuration only, never from a request's URI (see ``ingest.fetch``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow.fs as pafs

SCHEMES = ("s3", "gs")


def object_store(scheme: str, options: Mapping[str, Any]) -> pafs.FileSystem:
    """The pyarrow filesystem of an ``api.object_stores`` entry; ``TypeError`` names a wrong option."""
    if scheme == "s3":
        return pafs.S3FileSystem(**options)
    if scheme == "gs":
        return pafs.GcsFileSystem(**options)
    raise ValueError(f"no object store for scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
