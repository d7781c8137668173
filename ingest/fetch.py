"""Copy the campaign file a job names by URI into the job's directory, under the configured policy.

Every URI is first resolved to a filesystem and a path, and only then is it decided whether it may be
read. Nothing in the URI chooses how it is read:

- A local path (no scheme, ``file://`` or ``local://``, in any letter case) is read only under
  ``api.uri_root``, after normalisation and with every symlink resolved; a relative path is taken
  relative to that root. Without a root, local paths are refused.
- A remote URI is read only if its scheme is configured in ``api.object_stores``; the filesystem is
  built from that entry's options (region, endpoint, credentials), never from the request. Query
  strings, fragments and credentials in the URI are refused: ``?endpoint_override=127.0.0.1:6379`` is
  how a request would otherwise make the API connect wherever it likes (SSRF).

Errors are :mod:`ingest.errors` (403 for what the policy refuses, 422 for what cannot be read), and
quote the URI only in part.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from ingest.errors import FileTooLarge, UriNotAllowed, UriNotFound, UriUnreadable
from ulak.objectstore import object_store
from ulak.quoting import quoted

LOCAL_SCHEMES = frozenset({"file", "local"})  # pyarrow opens local:// as the local filesystem too
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_COPY_CHUNK = 1 << 20


def fetch(
    uri: str,
    *,
    root: Path | None,
    stores: Mapping[str, Mapping[str, Any]],
    dest_dir: Path,
    max_bytes: int,
) -> tuple[Path, str]:
    """Copy *uri* into *dest_dir* as ``upload.<ext>``; returns that path and the file's own name."""
    if "\x00" in uri:
        raise UriNotFound(f"{quoted(uri)}: no such file (the name holds a NUL byte)", field="uri")
    match = _SCHEME.match(uri)
    scheme = match[1].lower() if match else ""
    if not scheme or scheme in LOCAL_SCHEMES:
        return _fetch_local(uri, scheme, root=root, dest_dir=dest_dir, max_bytes=max_bytes)
    if scheme not in stores:
        configured = ", ".join(sorted(stores)) or "none"
        raise UriNotAllowed(
            f"{scheme}:// URIs are not allowed (configured object stores: {configured}); add the store "
            "to api.object_stores, or upload the file",
            field="uri",
        )
    parts = urlsplit(uri)
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise UriNotAllowed(
            f"{quoted(uri)}: a URI may not carry options, a fragment or credentials; the object store's "
            "endpoint and options come from api.object_stores",
            field="uri",
        )
    path = unquote(parts.netloc + parts.path)
    name = Path(path).name
    if not parts.netloc or not name:
        raise UriNotFound(f"{quoted(uri)}: name a bucket and a file, e.g. {scheme}://bucket/list.csv", "uri")
    dest = dest_dir / ("upload" + Path(name).suffix.lower())
    try:
        fs = object_store(scheme, stores[scheme])
        with fs.open_input_stream(path) as src:
            copy_limited(src, dest, limit=max_bytes, name=name, field="uri")
    except FileNotFoundError:
        raise UriNotFound(f"{quoted(uri)}: no such file", field="uri") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UriUnreadable(f"cannot read {quoted(uri)}: {quoted(exc, 200)}", field="uri") from None
    return dest, name


def _fetch_local(
    uri: str, scheme: str, *, root: Path | None, dest_dir: Path, max_bytes: int
) -> tuple[Path, str]:
    if root is None:
        raise UriNotAllowed(
            "local paths are disabled: set api.uri_root to the directory jobs may read, or upload the file",
            field="uri",
        )
    if scheme:
        parts = urlsplit(uri)
        if parts.query or parts.fragment:
            raise UriNotAllowed(f"{quoted(uri)}: a local URI may not carry a query or fragment", "uri")
        if parts.netloc not in ("", "localhost"):
            raise UriNotAllowed(f"{quoted(uri)}: only files on this host may be named", field="uri")
        raw = unquote(parts.path)
    else:
        raw = uri
    base = root.resolve()
    try:
        resolved = (base / raw).resolve()  # an absolute raw path replaces base; symlinks are followed
    except (OSError, RuntimeError, ValueError):
        raise UriNotFound(f"{quoted(uri)}: no such file", field="uri") from None
    if not resolved.is_relative_to(base):
        raise UriNotAllowed(f"{quoted(uri)} is outside api.uri_root", field="uri")
    try:
        # O_NOFOLLOW: the path was resolved above, so a symlink now is one swapped in since.
        # O_NONBLOCK: opening a FIFO must not hang the request; it is refused below as not a file.
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UriNotFound(f"{quoted(uri)}: no such file", field="uri") from None
    except OSError:
        raise UriUnreadable(f"{quoted(uri)}: the file cannot be opened", field="uri") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UriNotFound(f"{quoted(uri)} is not a regular file", field="uri")
    with os.fdopen(fd, "rb") as src:
        dest = dest_dir / ("upload" + resolved.suffix.lower())
        copy_limited(src, dest, limit=max_bytes, name=resolved.name, field="uri")
    return dest, resolved.name


def copy_limited(src: BinaryIO | Any, dest: Path, *, limit: int, name: str, field: str) -> int:
    """Copy *src* to *dest*, refusing (413) past *limit* bytes; returns the size."""
    size = 0
    with dest.open("wb") as out:
        while chunk := src.read(_COPY_CHUNK):
            size += len(chunk)
            if size > limit:
                raise FileTooLarge(f"{name} exceeds {limit:,} bytes (ingest.max_file_bytes)", field=field)
            out.write(chunk)
    return size
