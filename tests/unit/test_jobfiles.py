"""``jobs.data_dir`` and ``jobs.storage``: what each form names, and the errors a wrong one gets at load."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from ulak.jobfiles import JobDir, JobFiles
from ulak.objectstore import filesystem
from ulak.settings import ConfigError, load_settings


def test_a_local_data_dir_keeps_plain_paths_in_job_records(tmp_path: Path) -> None:
    files = JobFiles.at(tmp_path / "jobs")
    folder = files.new("j1")
    assert folder.uri == str(tmp_path / "jobs" / "j1") and folder.is_local and Path(folder.uri).is_dir()
    assert files.dir(folder.uri) == folder
    staging = folder.staging()
    assert staging == Path(folder.uri)  # local: the upload is received in the folder itself
    (staging / "upload.csv").write_text("telefon\n")
    assert folder.adopt(staging / "upload.csv") == "upload.csv" and folder.exists("upload.csv")
    folder.discard(staging)  # never removes the folder itself
    with folder.local("upload.csv") as path:
        assert path == Path(folder.uri) / "upload.csv"  # no copy
    folder.remove()
    assert not Path(folder.uri).exists()


def test_a_job_made_under_an_earlier_local_data_dir_is_still_found(tmp_path: Path) -> None:
    old = JobDir.local_dir(tmp_path / "old" / "j1")
    files = JobFiles.at("s3://bucket/jobs", {"region": "eu-central-1"})
    assert files.dir(old.uri).is_local and files.dir(old.uri).path == old.path
    assert files.dir("s3://bucket/jobs/j2").path == "bucket/jobs/j2"


def test_object_store_uris_take_their_options_from_jobs_storage() -> None:
    fs, path = filesystem("s3://bucket/prefix/", {"region": "eu-central-1", "endpoint_override": "h:9000"})
    assert isinstance(fs, pafs.S3FileSystem) and path == "bucket/prefix"
    with pytest.raises(ValueError, match="names no bucket"):
        filesystem("s3:///prefix", {})
    with pytest.raises(ValueError, match="a local data_dir takes none"):
        filesystem("/srv/jobs", {"region": "x"})
    with pytest.raises(ValueError, match="apply to s3, gs"):
        filesystem("file:///srv/jobs", {"region": "x"})


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("jobs: {data_dir: 's3://b/p', storage: {regoin: x}}", "regoin"),
        ("jobs: {storage: {region: x}}", "jobs.data_dir is not"),
        ("jobs: {data_dir: '/srv/jobs', storage: {region: x}}", "takes none"),
    ],
)
def test_a_wrong_storage_setting_is_refused_when_the_configuration_loads(
    tmp_path: Path, yaml: str, message: str
) -> None:
    (tmp_path / "ulak.yaml").write_text(yaml + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, environ={})


def test_data_dir_may_be_a_path_or_a_uri(tmp_path: Path) -> None:
    (tmp_path / "ulak.yaml").write_text("jobs: {data_dir: 's3://b/p', storage: {region: eu-central-1}}\n")
    jobs = load_settings(tmp_path, environ={}).jobs
    assert (jobs.data_dir, jobs.storage) == ("s3://b/p", {"region": "eu-central-1"})
    (tmp_path / "ulak.yaml").write_text(f"jobs: {{data_dir: '{tmp_path}'}}\n")
    assert load_settings(tmp_path, environ={}).jobs.data_dir == str(tmp_path)


def test_reading_a_job_file_through_holds_no_more_than_a_row_group(tmp_path: Path) -> None:
    """pyarrow's default pre-buffering reads ahead and keeps what it read until the file is closed
    (apache/arrow#39808): a job's actor reading its rows file held ~200 MiB more at 10M rows than at
    the start. Read as a job file is, it holds about the row group it is in, whatever the file."""
    folder = JobDir.local_dir(tmp_path / "j1")
    groups, rows = 60, 2_000
    with pq.ParquetWriter(folder.file("rows.parquet"), pa.schema([("text", pa.string())])) as writer:
        for _ in range(groups):
            texts = [random.randbytes(50).hex() for _ in range(rows)]  # as personalised: no compression
            writer.write_table(pa.table({"text": texts}), row_group_size=rows)
    before = pa.total_allocated_bytes()
    held, read = 0, 0
    for batch in folder.parquet("rows.parquet").iter_batches(batch_size=500):
        held = max(held, pa.total_allocated_bytes() - before)
        read += batch.num_rows
    assert read == groups * rows
    one_group = rows * 104  # its texts and their offsets, decoded
    assert held < 4 * one_group  # pre-buffered: the whole file (~60 groups) from the first batch


def test_a_folder_in_a_job_folder_is_listed_and_removed_with_its_files(tmp_path: Path) -> None:
    # The outcomes snapshot keeps each of its takes in a folder of its own (cluster.reports.snapshot).
    folder = JobDir.local_dir(tmp_path / "j1")
    assert folder.folders("outcomes") == [] and folder.names("outcomes") == []
    for token in ("a", "b"):
        folder.make_folder(f"outcomes/{token}")
        with folder.open_output(f"outcomes/{token}/00000.parquet") as sink:
            sink.write(b"x")
    with folder.open_output("outcomes/stray") as sink:
        sink.write(b"y")
    assert sorted(folder.folders("outcomes")) == ["a", "b"] and folder.names("outcomes") == ["stray"]
    folder.delete_folder("outcomes/a")
    folder.delete_folder("outcomes/a")  # gone already: nothing
    assert folder.folders("outcomes") == ["b"] and folder.names("outcomes/b") == ["00000.parquet"]
