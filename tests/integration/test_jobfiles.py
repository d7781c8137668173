"""Job files on an object store: ``jobs.data_dir: s3://…`` against a real S3 endpoint over HTTP.

The endpoint is moto's server (an S3 implementation that answers S3's REST API on a port); pyarrow's
S3 client talks to it as to AWS. The campaign runs through the API process, a job actor in Ray and
the simulator, and no job folder may appear on the local disk.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from tests.helpers import SimProcess, wait_for
from tests.integration.stack import (
    TEMPLATE,
    assert_done,
    campaign_csv,
    no_duplicates,
    post_job,
    running_stack,
    wait_state,
)
from ulak import keys
from ulak.jobfiles import JobFiles

BUCKET = "ulak-jobs"


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    """A real S3 endpoint on a free port; yields the ``jobs.storage`` options that reach it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # Real deployments leave the keys to the environment (AWS_ACCESS_KEY_ID, an instance role); the
    # test server takes any, and naming them here keeps pyarrow from asking EC2's metadata service.
    options = {
        "endpoint_override": f"{host}:{port}",
        "scheme": "http",
        "region": "us-east-1",
        "access_key": "test",
        "secret_key": "test",
    }
    pafs.S3FileSystem(**options, allow_bucket_creation=True).create_dir(BUCKET)
    yield options
    server.stop()


def _objects(options: dict[str, Any], prefix: str) -> set[str]:
    fs = pafs.S3FileSystem(**options)
    found = fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{prefix}", recursive=True, allow_not_found=True))
    return {f.path.removeprefix(f"{BUCKET}/{prefix}/") for f in found if f.type == pafs.FileType.File}


def test_job_folders_on_an_object_store_keep_what_a_local_one_does(s3: dict[str, Any]) -> None:
    files = JobFiles.at(f"s3://{BUCKET}/unit", s3)
    folder = files.new("j1")
    assert folder.uri == f"s3://{BUCKET}/unit/j1" and not folder.is_local
    assert files.dir(folder.uri) == folder  # what a job record keeps finds the same folder
    with pytest.raises(FileExistsError):
        files.new("j1")

    staging = folder.staging()
    (staging / "upload.csv").write_bytes(b"telefon\n+905321112233\n")
    assert folder.adopt(staging / "upload.csv") == "upload.csv"
    assert not staging.exists()  # the local copy went once the store had it
    with folder.local("upload.csv") as copy:
        assert copy.read_bytes() == b"telefon\n+905321112233\n"
    assert not copy.exists()

    with folder.open_output("x.tmp") as sink:
        sink.write(b"whole")
    folder.move("x.tmp", "x")
    assert folder.exists("x") and not folder.exists("x.tmp")
    assert folder.open_input("x").read() == b"whole"
    folder.delete("upload.csv")
    folder.delete("upload.csv")  # gone already: nothing to do
    assert _objects(s3, "unit/j1") == {"x"}
    folder.remove()
    assert _objects(s3, "unit/j1") == set()
    folder.remove()


def test_a_campaign_whose_files_live_in_s3(ray_session: Any, s3: dict[str, Any], tmp_path: Path) -> None:
    sim = SimProcess(tmp_path, "--account", "test:secret", "--seed", "5", "--dlr-delay", "0.05:0.2")
    jobs = {"data_dir": f"s3://{BUCKET}/campaigns", "storage": s3}
    with running_stack(tmp_path, sim, tps=400, name="s3", jobs=jobs) as stack:
        prefix = "905325"
        path = tmp_path / "s3.csv"
        expected = campaign_csv(path, prefix, 600, bad_every=50, long_every=40)
        with stack.client() as http:
            bad = http.post("/v1/jobs", files={"file": ("x.csv", b"ad\nAyse\n")}, data={"template": "x"})
            assert bad.status_code == 422 and bad.json()["code"] == "no_phone_column", bad.text
            created = post_job(http, path, template=TEMPLATE, name="s3")
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]
            view = wait_state(http, job_id, "done", "failed")
            report = http.get(f"/v1/jobs/{job_id}/report").text
            rejected = http.get(f"/v1/jobs/{job_id}/rejected").text
            parquet = http.get(f"/v1/jobs/{job_id}/report", params={"format": "parquet"}).content
            records = stack.records(prefix)

            # A dry run of a file named by URI: fetched, checked and kept through the same folders.
            (tmp_path / "uploads" / "named.csv").write_bytes(path.read_bytes())
            named = http.post(
                "/v1/jobs",
                json={"uri": str(tmp_path / "uploads" / "named.csv"), "template": TEMPLATE, "dry_run": True},
            )
            assert named.status_code == 202, named.text
            dry = wait_state(http, named.json()["id"], "done", "failed")
            assert dry["state"] == "done" and dry["counts"]["accepted"] == expected["accepted"], dry

            # Every job's folder is in the bucket, holding its reports and the summary's snapshots
            # (taken by the job's actor as the job ended) and nothing else: the uploads are gone with
            # their jobs, the refused upload left no folder, nothing was half-written.
            folders = {p.partition("/")[0] for p in _objects(s3, "campaigns")}
            assert folders == {job_id, named.json()["id"]}
            kept = {"accepted.parquet", "rejected.parquet", "engagement.parquet"}

            def snapshots_taken() -> bool:
                named = stack.redis.hget(keys.job(job_id), "outcomes_files")
                if named is None:
                    return False
                token, _ = named.decode().split()  # 600 rows: one chunk
                return _objects(s3, f"campaigns/{job_id}") == {*kept, f"outcomes/{token}/00000.parquet"}

            wait_for(snapshots_taken, timeout=30, what="the snapshots")
            assert not (tmp_path / "jobs").exists()

            def purged() -> bool:
                http.post("/v1/jobs/purge", json={"older_than_days": 1e-9})
                return _objects(s3, "campaigns") == set()

            wait_for(purged, timeout=10, what="both jobs to be purged with their folders")
            assert http.get(f"/v1/jobs/{job_id}").status_code == 404
        assert _objects(s3, "campaigns") == set()

    assert_done(view, expected)
    assert view["counts"]["acked"] == expected["accepted"]
    no_duplicates(records)
    assert len(records) == view["parts"]["total"]
    rows = list(csv.DictReader(io.StringIO(report)))
    assert [int(r["row"]) for r in rows] == sorted(int(r["row"]) for r in rows)
    assert len(rows) == expected["accepted"] and {r["status"] for r in rows} == {"acked"}
    assert {r["msisdn"] for r in rows} == {r["dst"] for r in records}
    assert pq.read_table(io.BytesIO(parquet)).num_rows == expected["accepted"]
    refused = list(csv.DictReader(io.StringIO(rejected)))
    assert len(refused) == expected["rejected"] and {r["reason"] for r in refused} == {"invalid_number"}
