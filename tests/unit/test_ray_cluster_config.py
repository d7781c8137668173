"""ray_cluster.yaml is a config Ray's cluster launcher accepts, with the egress resource binds ask for."""

from __future__ import annotations

from pathlib import Path

import yaml

# Ray's own checks of a launcher config (what `ray up` runs first); private, so a Ray upgrade that
# moves them fails here loudly rather than leaving the file unchecked.
from ray.autoscaler._private.util import prepare_config, validate_config

CONFIG = Path(__file__).resolve().parents[2] / "ray_cluster.yaml"


def test_the_launcher_accepts_it() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    validate_config(prepare_config(config))
    assert config["provider"]["type"] == "local"


def test_egress_nodes_advertise_the_resource_the_readme_names() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    workers = " ".join(config["worker_start_ray_commands"])
    assert "ulak node worker $( [ -f /etc/ulak/egress ] && echo --egress )" in workers
    readme = (CONFIG.parent / "README.md").read_text(encoding="utf-8")
    assert "node_resource: egress" in readme
