"""``ulak node``: the environment file, the address a node advertises, the Ray commands it runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli import node


def test_init_writes_a_file_every_node_can_start_from(tmp_path: Path) -> None:
    path = tmp_path / "ulak.env"
    path.write_text(node.init_env(head_ip="10.0.0.10", data_dir="/mnt/ulak/jobs"))
    env = node.node_environment(path, {})
    assert env["ULAK_RAY__ADDRESS"] == "10.0.0.10:6380"
    assert env["RAY_AUTH_MODE"] == "token" and len(env["RAY_AUTH_TOKEN"]) == 64
    url = env["ULAK_REDIS__URL"]
    assert url.startswith("redis://:") and url.endswith("@10.0.0.10:6379/0")
    assert env["ULAK_JOBS__DATA_DIR"] == "/mnt/ulak/jobs"
    assert url.endswith(f"{env['REDIS_PASSWORD']}@10.0.0.10:6379/0")
    apart = node.read_env_file_text(node.init_env(head_ip="ray-head", redis_host="redis"))
    assert apart["ULAK_RAY__ADDRESS"] == "ray-head:6380" and "@redis:6379/0" in apart["ULAK_REDIS__URL"]
    # Two clusters never share a secret.
    other = node.read_env_file_text(node.init_env(head_ip="10.0.0.10"))
    assert other["RAY_AUTH_TOKEN"] != env["RAY_AUTH_TOKEN"]


def test_the_process_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ulak.env"
    path.write_text(
        "# comment\n\nexport ULAK_RAY__ADDRESS='10.0.0.10:6380'\nRAY_AUTH_TOKEN=\"abc\"\nULAK_X=file\n"
    )
    env = node.node_environment(path, {"ULAK_X": "process"})
    assert env["ULAK_RAY__ADDRESS"] == "10.0.0.10:6380" and env["RAY_AUTH_TOKEN"] == "abc"
    assert env["ULAK_X"] == "process" and env["RAY_AUTH_MODE"] == "token"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("RAY_AUTH_TOKEN=x\n", "ULAK_RAY__ADDRESS is not set"),
        ("ULAK_RAY__ADDRESS=10.0.0.10:6380\n", "RAY_AUTH_TOKEN is not set"),
        ("ULAK_RAY__ADDRESS 10.0.0.10\n", "expected KEY=VALUE"),
    ],
)
def test_a_file_missing_what_a_node_needs_says_what_to_do(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "ulak.env"
    path.write_text(text)
    with pytest.raises(node.NodeError, match=says):
        node.node_environment(path, {})


def test_a_named_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(node.NodeError, match="no such environment file"):
        node.node_environment(None, {"ULAK_ENV_FILE": str(tmp_path / "nope.env")})


def test_auth_may_be_turned_off_explicitly(tmp_path: Path) -> None:
    path = tmp_path / "ulak.env"
    path.write_text("ULAK_RAY__ADDRESS=10.0.0.10:6380\nRAY_AUTH_MODE=disabled\n")
    assert node.node_environment(path, {})["RAY_AUTH_MODE"] == "disabled"


def test_a_node_advertises_its_route_to_the_head_not_ray_s_guess() -> None:
    env = {"ULAK_RAY__ADDRESS": "127.0.0.1:6380"}
    assert node.node_ip(None, env) == "127.0.0.1"
    assert node.node_ip(None, {"ULAK_RAY__ADDRESS": "localhost:6380"}) == "127.0.0.1"  # a name resolves
    assert node.node_ip("10.9.9.9", env) == "10.9.9.9"
    assert node.node_ip(None, {**env, "ULAK_NODE_IP": "10.1.1.1"}) == "10.1.1.1"
    with pytest.raises(node.NodeError, match="HOST:PORT"):
        node.node_ip(None, {"ULAK_RAY__ADDRESS": "10.0.0.10"})


def test_health_says_what_does_not_answer(tmp_path: Path) -> None:
    path = tmp_path / "ulak.env"
    path.write_text("ULAK_RAY__ADDRESS=127.0.0.1:1\nRAY_AUTH_TOKEN=x\n")
    assert "the Ray head does not answer" in str(node.health(path, api=None, timeout=1))


def test_the_ray_commands_name_the_address_the_resources_and_block() -> None:
    env = {"ULAK_RAY__ADDRESS": "10.0.0.10:6380"}
    worker = node.worker_command(env, ip="10.0.0.11", egress=True, num_cpus=4)
    assert worker[1:4] == ["start", "--address=10.0.0.10:6380", "--node-ip-address=10.0.0.11"]
    resources = next(a for a in worker if a.startswith("--resources="))
    assert json.loads(resources.split("=", 1)[1]) == {"egress": 1}
    assert "--num-cpus=4" in worker and worker[-1] == "--block"
    plain = node.worker_command(env, ip="10.0.0.12", egress=False, resources='{"gpu_box": 2}')
    asked = next(a for a in plain if a.startswith("--resources="))
    assert json.loads(asked.split("=", 1)[1]) == {"gpu_box": 2}
    head = node.head_command(env, ip="10.0.0.10", object_store_memory=10**9)
    assert head[1:5] == ["start", "--head", "--node-ip-address=10.0.0.10", "--port=6380"]
    assert "--include-dashboard=false" in head and "--object-store-memory=1000000000" in head
    assert not any(a.startswith("--resources") for a in head) and head[-1] == "--block"


def test_the_head_shortens_how_long_ray_takes_to_give_up_on_a_node() -> None:
    period = int(node.HEALTH_CHECKS["RAY_health_check_period_ms"])
    threshold = int(node.HEALTH_CHECKS["RAY_health_check_failure_threshold"])
    assert period * threshold <= 10_000  # a lost egress node's binds come back within 10 s
