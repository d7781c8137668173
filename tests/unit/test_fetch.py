"""A job's URI is resolved to a filesystem and a path before anything is read: local files only under
``api.uri_root``, remote ones only from ``api.object_stores``, nothing chosen by the URI itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.errors import FileTooLarge, UriNotAllowed, UriNotFound
from ingest.fetch import fetch
from ulak.settings import ConfigError, load_settings


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "uploads"
    directory.mkdir()
    (directory / "list.csv").write_text("telefon\n+905321111111\n")
    (tmp_path / "secret.csv").write_text("telefon\n+905329999999\n")
    return directory


def _fetch(uri: str, root: Path | None, tmp_path: Path, **kw: object) -> tuple[Path, str]:
    dest = tmp_path / "job"
    dest.mkdir(exist_ok=True)
    options: dict[str, object] = {"stores": {}, "max_bytes": 1 << 20, **kw}
    return fetch(uri, root=root, dest_dir=dest, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "uri",
    [
        "{root}/list.csv",
        "file://{root}/list.csv",
        "FILE://{root}/list.csv",
        "local://{root}/list.csv",
        "Local://{root}/list.csv",
        "file://localhost{root}/list.csv",
        "list.csv",
        "./sub/../list.csv",
    ],
)
def test_a_file_under_the_root_is_copied_by_every_local_spelling(
    root: Path, tmp_path: Path, uri: str
) -> None:
    (root / "sub").mkdir(exist_ok=True)
    path, name = _fetch(uri.format(root=root), root, tmp_path)
    assert name == "list.csv" and path.name == "upload.csv"
    assert path.read_text() == "telefon\n+905321111111\n"


@pytest.mark.parametrize(
    "uri",
    [
        "/etc/passwd",
        "local:///etc/passwd",
        "LOCAL:///etc/passwd",
        "file:///etc/passwd",
        "fIlE:///etc/passwd",
        "{root}/../secret.csv",
        "local://{root}/../secret.csv",
        "file://{root}/%2E%2E/secret.csv",
        "../secret.csv",
        "file://otherhost/etc/passwd",
        "file://{root}/list.csv?x=1",
    ],
)
def test_local_files_outside_the_root_are_refused(root: Path, tmp_path: Path, uri: str) -> None:
    with pytest.raises(UriNotAllowed) as err:
        _fetch(uri.format(root=root), root, tmp_path)
    assert err.value.status == 403 and err.value.field == "uri"
    assert not list((tmp_path / "job").iterdir())


@pytest.mark.parametrize("uri", ["/etc/passwd", "local:///etc/passwd", "list.csv", "file:///etc/hosts"])
def test_without_a_root_every_local_path_is_refused(tmp_path: Path, uri: str) -> None:
    with pytest.raises(UriNotAllowed, match="local paths are disabled"):
        _fetch(uri, None, tmp_path)


def test_a_symlink_out_of_the_root_is_refused_and_one_inside_is_followed(root: Path, tmp_path: Path) -> None:
    (root / "out.csv").symlink_to(tmp_path / "secret.csv")
    (root / "in.csv").symlink_to(root / "list.csv")
    (root / "dir").symlink_to(tmp_path)
    with pytest.raises(UriNotAllowed):
        _fetch(str(root / "out.csv"), root, tmp_path)
    with pytest.raises(UriNotAllowed):
        _fetch(str(root / "dir" / "secret.csv"), root, tmp_path)
    assert _fetch(str(root / "in.csv"), root, tmp_path)[0].read_text().startswith("telefon")


def test_what_is_not_a_readable_regular_file_is_refused_without_blocking(root: Path, tmp_path: Path) -> None:
    os.mkfifo(root / "pipe.csv")
    (root / "folder.csv").mkdir()
    for name, error in [("pipe.csv", UriNotFound), ("folder.csv", UriNotFound), ("none.csv", UriNotFound)]:
        with pytest.raises(error):
            _fetch(str(root / name), root, tmp_path)
    with pytest.raises(UriNotFound, match="NUL"):
        _fetch(str(root / "list.csv\x00.txt"), root, tmp_path)


def test_a_file_over_the_limit_is_refused_naming_the_uri_field(root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileTooLarge) as err:
        _fetch(str(root / "list.csv"), root, tmp_path, max_bytes=5)
    assert err.value.field == "uri" and "list.csv" in err.value.message


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/x.csv",
        "S3://bucket/x.csv",
        "gs://bucket/x.csv",
        "hdfs://namenode/x.csv",
        "http://127.0.0.1:6379/x.csv",
        "mock://x.csv",
        "s3://bucket/x.csv?endpoint_override=127.0.0.1:1&scheme=http",
    ],
)
def test_remote_schemes_are_refused_unless_configured(root: Path, tmp_path: Path, uri: str) -> None:
    with pytest.raises(UriNotAllowed, match="not allowed"):
        _fetch(uri, root, tmp_path)


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/x.csv?endpoint_override=127.0.0.1:9&scheme=http",
        "s3://bucket/x.csv#frag",
        "s3://key:secret@bucket/x.csv",
        "S3://bucket/x.csv?region=x",
    ],
)
def test_a_configured_store_takes_no_options_from_the_uri(root: Path, tmp_path: Path, uri: str) -> None:
    with pytest.raises(UriNotAllowed, match=r"api\.object_stores"):
        _fetch(uri, root, tmp_path, stores={"s3": {"region": "eu-central-1"}})


def test_a_very_long_uri_is_quoted_only_in_part(root: Path, tmp_path: Path) -> None:
    with pytest.raises(UriNotAllowed) as err:
        _fetch("/etc/" + "x" * 60_000, root, tmp_path)
    assert len(err.value.message) < 300


def test_object_stores_are_checked_when_the_configuration_loads(tmp_path: Path) -> None:
    (tmp_path / "ulak.yaml").write_text("api: {object_stores: {s3: {region: eu-central-1, nonsense: 1}}}\n")
    with pytest.raises(ConfigError, match="nonsense"):
        load_settings(tmp_path, environ={})
    (tmp_path / "ulak.yaml").write_text("api: {object_stores: {ftp: {}}}\n")
    with pytest.raises(ConfigError, match="ftp"):
        load_settings(tmp_path, environ={})
    (tmp_path / "ulak.yaml").write_text("api: {object_stores: {s3: {region: eu-central-1}}}\n")
    assert load_settings(tmp_path, environ={}).api.object_stores == {"s3": {"region": "eu-central-1"}}
