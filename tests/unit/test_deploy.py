"""The deployables start nodes as the README and the namespace tests do, and pass their schemas.

What is checked here, with no container engine and no Kubernetes: every ``ulak node`` command in
``ray_cluster.yaml``, ``deploy/Containerfile``, ``deploy/compose.yaml`` and the KubeRay manifest parses
with the ``ulak`` command's own parser, and starts a head or an egress worker as the namespace tests
do (``tests/netns.py``); the compose file against the Compose Specification's JSON schema; every
Kubernetes object (and every pod template inside the RayCluster) against the Kubernetes 1.33 API
schemas (``kubernetes-validate``, strict); the RayCluster by Ray's own KubeRay autoscaler, which reads
its groups and resources; its fields against what the KubeRay CRD names. Not checked: that an image
builds, that the manifests run on a real Kubernetes or compose.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import check_jsonschema.builtin_schemas
import jsonschema
import kubernetes_validate
import pytest
import yaml
from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

from api.cli.main import build_parser
from tests.netns import EGRESS_COMMAND, HEAD_COMMAND

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.33.0"


def node_commands(argv: list[str]) -> list[str]:
    """*argv* checked against ``ulak``'s parser; returns it (without the program name)."""
    assert argv[:2] == ["ulak", "node"], argv
    build_parser().parse_args(argv[1:])  # SystemExit on an unknown option or subcommand
    return argv


def started(commands: list[list[str]]) -> set[tuple[str, ...]]:
    """Which kinds of node *commands* start: the README's head and egress worker, or a plain worker."""
    kinds = set()
    for argv in commands:
        if tuple(argv[:3]) == HEAD_COMMAND:
            kinds.add(HEAD_COMMAND)
        elif tuple(argv[:3]) == EGRESS_COMMAND[:3]:
            kinds.add(EGRESS_COMMAND if EGRESS_COMMAND[3] in argv else EGRESS_COMMAND[:3])
    return kinds


def containerfile() -> dict[str, Any]:
    """The Containerfile's instructions (JSON-form arguments parsed)."""
    out: dict[str, Any] = {}
    for line in (DEPLOY / "Containerfile").read_text().splitlines():
        word, _, rest = line.partition(" ")
        if word in ("ENTRYPOINT", "CMD", "USER", "FROM"):
            out[word] = json.loads(rest) if rest.startswith("[") else rest.strip()
        elif word == "HEALTHCHECK":
            out[word] = json.loads(rest[rest.index("CMD ") + 4 :])
    return out


def kube_documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kuberay" / "ulak.yaml").read_text()) if d]


def ray_pod_templates(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    spec = cluster["spec"]
    return [spec["headGroupSpec"]["template"], *(g["template"] for g in spec["workerGroupSpecs"])]


def test_the_image_runs_ulak_node_as_a_user_of_its_own() -> None:
    image = containerfile()
    assert image["FROM"].startswith("python:3.11-slim")
    assert image["USER"] == "ulak"
    assert started([node_commands([*image["ENTRYPOINT"], *image["CMD"]])]) == {EGRESS_COMMAND[:3]}
    node_commands(image["HEALTHCHECK"])


def test_compose_passes_the_compose_schema_and_starts_the_nodes_the_tests_start() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    schema_path = Path(check_jsonschema.builtin_schemas.__file__).parent / "vendor" / "compose-spec.json"
    jsonschema.validate(compose, json.loads(schema_path.read_text()))
    entry = containerfile()["ENTRYPOINT"]
    ours = {name: s for name, s in compose["services"].items() if s.get("image", "").startswith("ulak:")}
    commands = [node_commands([*entry, *s["command"]]) for s in ours.values()]
    assert started(commands) == {HEAD_COMMAND, EGRESS_COMMAND}
    for s in ours.values():
        test = s.get("healthcheck", {}).get("test")
        if test:
            node_commands(test[1:])
    assert set(compose["services"]) >= {"redis", "ray-head", "egress", "prometheus", "grafana"}
    # What compose mounts is there: Prometheus' config, Grafana's provisioning and the dashboard.
    assert (DEPLOY / "prometheus.yml").exists()
    assert (DEPLOY / "grafana" / "provisioning" / "dashboards" / "ulak.yaml").exists()
    assert (ROOT / "configs" / "grafana" / "ulak-dashboard.json").exists()


@pytest.mark.parametrize("document", kube_documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_kubernetes_object_passes_its_schema(document: dict[str, Any]) -> None:
    if document["kind"] == "RayCluster":
        for template in ray_pod_templates(document):
            wrapped = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "check"},
                "template": template,
            }
            kubernetes_validate.validate(wrapped, K8S_VERSION, strict=True)
        return
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_the_raycluster_is_what_kuberay_and_ray_read() -> None:
    (cluster,) = [d for d in kube_documents() if d["kind"] == "RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    spec = cluster["spec"]
    # The fields the KubeRay CRD names, with the types it gives them.
    assert set(spec) <= {"rayVersion", "headGroupSpec", "workerGroupSpecs", "enableInTreeAutoscaling"}
    assert set(spec["headGroupSpec"]) <= {"rayStartParams", "serviceType", "template"}
    for group in spec["workerGroupSpecs"]:
        fields = {"groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template"}
        assert set(group) <= fields
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    # Ray's KubeRay autoscaler reads the groups: the egress group offers the resource binds ask for.
    config = _derive_autoscaling_config_from_ray_cr(cluster)
    types = config["available_node_types"]
    assert types["egress"]["resources"].get("egress") == 1
    assert "egress" not in types["workers"]["resources"]
    # Every Ray pod runs `ulak node`, as the tests do, on the head Service's address.
    commands = []
    for template in ray_pod_templates(cluster):
        (container,) = template["spec"]["containers"]
        commands.append(node_commands([*container["command"], *container["args"]]))
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["ULAK_NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        assert container["envFrom"] == [{"secretRef": {"name": "ulak-env"}}]
    assert started(commands) == {HEAD_COMMAND, EGRESS_COMMAND, EGRESS_COMMAND[:3]}
    egress = next(g for g in spec["workerGroupSpecs"] if g["groupName"] == "egress")
    assert egress["template"]["spec"]["nodeSelector"] == {"ulak.io/egress": "true"}


def test_ray_s_launcher_config_starts_nodes_with_the_same_commands() -> None:
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    commands = []
    for line in [*config["head_start_ray_commands"], *config["worker_start_ray_commands"]]:
        if "nohup" not in line:  # the others stop what an earlier `ray up` started
            continue
        words = shlex.split(line.replace("$( [ -f /etc/ulak/egress ] && echo --egress )", "--egress"))
        words = words[words.index("nohup") + 1 : words.index(">")]
        words[0] = Path(words[0]).name
        commands.append(node_commands(words))
    assert started(commands) == {HEAD_COMMAND, EGRESS_COMMAND}
