"""The container files in config/ are what docs/containers.md says they are: pods that a namespace
enforcing the "restricted" Pod Security level admits, a report volume that exists and that uid
10001 can write, an image reference no registry is asked for, and compose services that build the
image themselves. Parsed, no cluster needed (their schemas are checked by kubernetes-validate in
.ci/run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import ROOT

CONFIG = ROOT / "config"
KUBE_FILES = sorted(CONFIG.glob("k8s-*.yaml"))
UID = 10001


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def pod_templates() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in KUBE_FILES:
        for doc in documents(path):
            if doc["kind"] in ("Job", "Deployment"):
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]))
    return found


def kinds(name: str) -> list[str]:
    return [doc["kind"] for doc in documents(CONFIG / name)]


def test_there_are_pods_to_check():
    assert {name.split(":")[0] for name, _ in pod_templates()} == {
        "k8s-job.yaml", "k8s-consumer.yaml", "k8s-consumer-drain.yaml"}


@pytest.mark.parametrize(("name", "pod"), pod_templates(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_pod_meets_the_restricted_pod_security_level(name, pod):
    # https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
    assert pod["securityContext"]["runAsNonRoot"] is True, name
    assert pod["securityContext"]["runAsUser"] == UID, name  # numeric: the kubelet can check it
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
    assert pod["automountServiceAccountToken"] is False, name
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), name
    for volume in pod.get("volumes", []):
        assert "hostPath" not in volume, name
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"] == {"drop": ["ALL"]}, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert "privileged" not in context and "runAsUser" not in context, name


@pytest.mark.parametrize(("name", "pod"), pod_templates(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_pod_asks_a_registry_for_latest(name, pod):
    for container in pod["containers"]:
        image = container["image"]
        assert ":" in image and not image.endswith(":latest"), name
        assert container["imagePullPolicy"] == "IfNotPresent", name
        # The measured peak (docs/performance.md: 82 MB for a million rows) fits in the request.
        assert container["resources"]["requests"]["memory"] == "96Mi", name


def test_the_job_defines_the_volume_it_writes_its_report_to_and_can_write_it():
    docs = documents(CONFIG / "k8s-job.yaml")
    claims = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "PersistentVolumeClaim"}
    (job,) = [doc for doc in docs if doc["kind"] == "Job"]
    pod = job["spec"]["template"]["spec"]
    mounted = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
               if "persistentVolumeClaim" in v}
    assert set(mounted.values()) <= claims and mounted
    # A new block volume's root is root:root 0755: fsGroup makes it writable by the tool's group.
    assert pod["securityContext"]["fsGroup"] == UID
    (container,) = pod["containers"]
    report = container["args"][container["args"].index("--report") + 1]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    report_mount = next(path for path in mounts if report.startswith(path + "/"))
    assert mounts[report_mount]["name"] in mounted and not mounts[report_mount].get("readOnly")
    assert "--resume" in container["args"]


def test_jobs_fail_at_once_on_exit_codes_a_retry_cannot_change():
    (job,) = [doc for doc in documents(CONFIG / "k8s-job.yaml") if doc["kind"] == "Job"]
    (drain,) = [doc for doc in documents(CONFIG / "k8s-consumer-drain.yaml") if doc["kind"] == "Job"]
    for manifest, codes in ((job, [1, 2, 3, 4]), (drain, [2, 3])):
        rules = manifest["spec"]["podFailurePolicy"]["rules"]
        assert rules[0]["action"] == "FailJob" and rules[0]["onExitCodes"]["values"] == codes
        assert rules[1]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]


def test_applying_the_consumer_deployment_starts_no_drain_job():
    assert kinds("k8s-consumer.yaml") == ["ConfigMap", "Deployment", "PodDisruptionBudget"]
    assert kinds("k8s-consumer-drain.yaml") == ["ConfigMap", "Job"]
    # Either file can be applied alone, with the same settings.
    (deployment_config,) = [d for d in documents(CONFIG / "k8s-consumer.yaml") if d["kind"] == "ConfigMap"]
    (drain_config,) = [d for d in documents(CONFIG / "k8s-consumer-drain.yaml") if d["kind"] == "ConfigMap"]
    assert deployment_config == drain_config


def test_consumers_have_a_startup_probe_on_the_metrics_port_and_a_disruption_budget():
    docs = documents(CONFIG / "k8s-consumer.yaml")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (budget,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["startupProbe"]["httpGet"]["port"] == "metrics"
    assert {"name": "metrics", "containerPort": 9108} in container["ports"]
    assert "--metrics-port" in container["args"] and "9108" in container["args"]
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]


def test_compose_builds_its_image_and_keeps_what_it_writes():
    compose = yaml.safe_load((CONFIG / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    ours = {name: s for name, s in services.items() if name != "redis"}
    for name, service in ours.items():
        assert service["build"]["context"] == "..", name
        assert not service["image"].endswith(":latest"), name
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
    for name in ("redis", "simulator", "consumer"):
        assert services[name]["restart"] == "unless-stopped", name
    enqueue = services["enqueue"]
    report = enqueue["command"][enqueue["command"].index("--report") + 1]
    assert not report.startswith("/")  # in the working directory, /work: the named volume
    assert "enqueue-reports:/work" in enqueue["volumes"] and "enqueue-reports" in compose["volumes"]


@pytest.mark.parametrize(("name", "pod"), pod_templates(), ids=lambda v: v if isinstance(v, str) else "")
def test_secrets_reach_every_pod_as_files_it_re_reads(name, pod):
    (container,) = pod["containers"]
    assert not [e for e in container.get("env", []) if "valueFrom" in e], name  # no secret in the environment
    files = {e["name"]: e["value"] for e in container["env"] if e["name"].endswith("_FILE")}
    assert "SNAPRELABEL_TOKEN_FILE" in files, name
    secret_volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for path in files.values():
        directory = path.rsplit("/", 1)[0]
        assert mounts[directory]["name"] in secret_volumes and mounts[directory]["readOnly"], name
