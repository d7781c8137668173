"""Where a job's files live: a local directory, a shared mount, or any URI a pyarrow filesystem reads.

A job has one folder under ``jobs.data_dir``: the upload (until the job ends), ``accepted.parquet``
and ``rejected.parquet``. On one machine that is a local directory; on a cluster every node that runs
a job's runner, its ingest or the API must reach the same folder, so ``jobs.data_dir`` may also be a
URI (``s3://bucket/prefix``, ``gs://…``, ``hdfs://…``), with ``jobs.storage`` holding the options
of its filesystem (endpoint, region; credentials come from the environment, as pyarrow reads them).

Everything that reads or writes a job's files goes through :class:`JobDir`, so nothing assumes a
local path. The two places that need a real local file, the upload's checks and its read (CSV
sniffing, spreadsheet parsing), get one from :meth:`JobDir.local`: the file itself when the folder is
local, a temporary copy otherwise.

Object stores have no rename: :meth:`JobDir.move` is a copy and a delete there. What matters still
holds: an object appears whole or not at all, so ``accepted.parquet`` (written last) never exists
half-written.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ulak.objectstore import filesystem, scheme_of
from ulak.redis_server import default_state_dir

if TYPE_CHECKING:
    from ulak.settings import JobsConfig


@dataclass(frozen=True)
class JobFiles:
    """The root every job's folder is made under (``jobs.data_dir``)."""

    fs: pafs.FileSystem
    root: str  # the path on *fs*
    scheme: str  # '' for a local root

    @classmethod
    def at(cls, location: str | Path, options: Mapping[str, Any] | None = None) -> JobFiles:
        fs, root = filesystem(str(location), options or {})
        return cls(fs, root, scheme_of(str(location)))

    @classmethod
    def configured(cls, config: JobsConfig) -> JobFiles:
        """``jobs.data_dir`` (by default the state dir's ``jobs``) with ``jobs.storage``."""
        return cls.at(config.data_dir or default_state_dir() / "jobs", config.storage)

    def new(self, job_id: str) -> JobDir:
        """A fresh folder for *job_id* (it must not exist yet)."""
        folder = JobDir(self.fs, f"{self.root}/{job_id}", self.scheme)
        if folder.fs.get_file_info(folder.path).type != pafs.FileType.NotFound:
            raise FileExistsError(f"{folder.uri} already exists")
        folder.fs.create_dir(folder.path, recursive=True)
        return folder

    def dir(self, location: str) -> JobDir:
        """The folder a job record names (its ``dir``): a path on this root's filesystem, as
        :attr:`JobDir.uri` wrote it."""
        scheme = scheme_of(location)
        if scheme != self.scheme:
            # A job made before data_dir moved: its folder is where it was made.
            if scheme:
                raise ValueError(f"job folder {location!r} is not on jobs.data_dir's filesystem")
            return JobDir(pafs.LocalFileSystem(), location, "")
        path = location.split("://", 1)[1] if scheme else location
        return JobDir(self.fs, path.rstrip("/"), scheme)


@dataclass(frozen=True)
class JobDir:
    """One job's folder. Picklable (pyarrow filesystems are), so it travels to Ray tasks and actors."""

    fs: pafs.FileSystem
    path: str
    scheme: str = ""

    @classmethod
    def local_dir(cls, directory: Path) -> JobDir:
        directory.mkdir(parents=True, exist_ok=True)
        return cls(pafs.LocalFileSystem(), str(directory.resolve()))

    @property
    def uri(self) -> str:
        """What the job record keeps: a local path, or the folder's URI."""
        return f"{self.scheme}://{self.path}" if self.scheme else self.path

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def file(self, name: str) -> str:
        return f"{self.path}/{name}"

    def exists(self, name: str) -> bool:
        return bool(self.fs.get_file_info(self.file(name)).type == pafs.FileType.File)

    def open_input(self, name: str) -> pa.NativeFile:
        """A random-access file (what ``pyarrow.parquet.ParquetFile`` reads)."""
        return self.fs.open_input_file(self.file(name))

    def parquet(self, name: str) -> pq.ParquetFile:
        """The Parquet file *name*, to read a batch at a time in file order. Without pyarrow's
        pre-buffering (its default), whose cache of what it read ahead is kept until the file is
        closed (apache/arrow#39808): reading a 10M-row rows file through held ~200 MiB more at the
        end than at the start, in the job's actor as it sends."""
        return parquet_file(self.open_input(name))

    def open_output(self, name: str) -> pa.NativeFile:
        """A new file; it exists, whole, once the stream is closed."""
        return self.fs.open_output_stream(self.file(name))

    def make_folder(self, folder: str) -> None:
        """*folder* inside the job's folder (an object store needs none: a no-op there)."""
        self.fs.create_dir(self.file(folder), recursive=True)

    def names(self, folder: str) -> list[str]:
        """The files in *folder* of the job's folder (none when it does not exist)."""
        return [info.base_name for info in self._listing(folder) if info.type == pafs.FileType.File]

    def folders(self, folder: str) -> list[str]:
        """The folders in *folder* of the job's folder (none when it does not exist)."""
        return [info.base_name for info in self._listing(folder) if info.type == pafs.FileType.Directory]

    def _listing(self, folder: str) -> list[pafs.FileInfo]:
        try:
            found: list[pafs.FileInfo] = self.fs.get_file_info(
                pafs.FileSelector(self.file(folder), allow_not_found=True)
            )
        except FileNotFoundError:
            return []
        return found

    def delete_folder(self, folder: str) -> None:
        """*folder* of the job's folder and everything in it (nothing when it is gone already)."""
        with contextlib.suppress(FileNotFoundError):
            if self.fs.get_file_info(self.file(folder)).type != pafs.FileType.NotFound:
                self.fs.delete_dir(self.file(folder))

    def move(self, source: str, dest: str) -> None:
        self.fs.move(self.file(source), self.file(dest))

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.file(name))

    def remove(self) -> None:
        """The folder and everything in it (nothing when it is gone already)."""
        with contextlib.suppress(FileNotFoundError):
            if self.fs.get_file_info(self.path).type != pafs.FileType.NotFound:
                self.fs.delete_dir(self.path)

    # ---------------------------------------------------------------- local copies, for the upload

    def staging(self) -> Path:
        """A local directory to receive the upload into before :meth:`adopt` keeps it here: the
        folder itself when it is local, a new temporary directory otherwise."""
        if self.is_local:
            return Path(self.path)
        return Path(tempfile.mkdtemp(prefix="ulak-upload-"))

    def adopt(self, local: Path) -> str:
        """Keep the local file *local* (in :meth:`staging`) in this folder under its name; return the
        name. A temporary staging directory is removed."""
        if self.is_local and local.parent == Path(self.path):
            return local.name
        with local.open("rb") as source, self.open_output(local.name) as sink:
            shutil.copyfileobj(source, sink, length=1 << 20)
        self.discard(local.parent)
        return local.name

    def discard(self, staging: Path) -> None:
        """Remove a staging directory that :meth:`staging` made (never the folder itself)."""
        if not (self.is_local and staging == Path(self.path)):
            shutil.rmtree(staging, ignore_errors=True)

    @contextlib.contextmanager
    def local(self, name: str) -> Iterator[Path]:
        """A local path of the file *name*: itself when the folder is local, else a copy removed on
        exit (the file's checks and its read need one; ``ingest.prepare`` keeps that read on the
        node that has the copy)."""
        if self.is_local:
            yield Path(self.file(name))
            return
        staging = Path(tempfile.mkdtemp(prefix="ulak-read-"))
        try:
            copy = staging / name
            with self.open_input(name) as source, copy.open("wb") as sink:
                shutil.copyfileobj(source, sink, length=1 << 20)
            yield copy
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def of(directory: JobDir | Path) -> JobDir:
    """*directory* as a :class:`JobDir` (a local path is made into one, created if missing)."""
    return directory if isinstance(directory, JobDir) else JobDir.local_dir(Path(directory))


def parquet_file(source: str | pa.NativeFile) -> pq.ParquetFile:
    """*source* as a Parquet file read a batch at a time whose memory does not grow with the file
    (:meth:`JobDir.parquet`): no pre-buffering."""
    return pq.ParquetFile(source, pre_buffer=False)
