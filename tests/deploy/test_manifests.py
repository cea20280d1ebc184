"""The compose file and Kubernetes manifests under docker/ are valid and agree with each other.

Built-in kinds are validated strictly (unknown fields rejected) by kubernetes-validate against
the schemas its wheel ships, for the oldest Kubernetes minor we support and the newest it knows.
It has no schemas for custom resources (ServiceMonitor, PrometheusRule, KServe's
InferenceService), so those get a schema-light check here: apiVersion, kind, required fields,
and that every name they refer to (Service labels and ports, recorded series, metric names)
exists. Every file passes yamllint.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from server_flags import ServerOptions

PROJECT = Path(__file__).resolve().parents[2]
DOCKER = PROJECT / "docker"
K8S = DOCKER / "k8s"
# Oldest supported minor (stated in docs/OPERATIONS.md) and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
BUILT_IN = {
    ("v1", "Namespace"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
}
CUSTOM = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("serving.kserve.io/v1beta1", "InferenceService"),
}
DEFAULTS = ServerOptions(model_repository="/models")
PORTS = {"http": DEFAULTS.http_port, "grpc": DEFAULTS.grpc_port, "metrics": DEFAULTS.metrics_port}
ADAPTER_VALUES = K8S / "monitoring" / "prometheus-adapter-values.yaml"


def load_entrypoint():
    spec = importlib.util.spec_from_file_location("docker_entrypoint", DOCKER / "entrypoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml" and p != ADAPTER_VALUES)


def resources() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in manifest_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


def one(kind: str, name: str | None = None) -> dict:
    found = [doc for _, doc in resources() if doc["kind"] == kind and name in (None, doc["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def selects(selector: dict, labels: dict) -> bool:
    return selector.items() <= labels.items()


def deployment() -> dict:
    return one("Deployment", "distilbert-triton")


def server_container() -> dict:
    (container,) = deployment()["spec"]["template"]["spec"]["containers"]
    return container


def test_yamllint_passes_on_every_yaml_file_under_docker():
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-c", str(DOCKER / ".yamllint.yaml"), str(DOCKER)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_manifest_is_a_known_kind():
    kinds = {(doc["apiVersion"], doc["kind"]) for _, doc in resources()}
    assert kinds <= BUILT_IN | CUSTOM, f"unknown kinds, add a check: {kinds - BUILT_IN - CUSTOM}"
    assert kinds >= BUILT_IN


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_built_in_kinds_pass_strict_kubernetes_validation(version):
    checked = 0
    for path, doc in resources():
        if (doc["apiVersion"], doc["kind"]) in BUILT_IN:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{path.name}: {'.'.join(map(str, error.path))}: {error.message}")
            checked += 1
    assert checked == len([d for _, d in resources() if (d["apiVersion"], d["kind"]) in BUILT_IN])


def test_strict_validation_rejects_an_unknown_field():
    broken = yaml.safe_load((K8S / "deployment.yaml").read_text())
    broken["spec"]["template"]["spec"]["containers"][0]["gpuCount"] = 1
    with pytest.raises(kubernetes_validate.ValidationError, match="gpuCount"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_custom_resources_have_their_required_fields():
    required = {
        "ServiceMonitor": [("spec", "selector"), ("spec", "endpoints")],
        "PrometheusRule": [("spec", "groups")],
        "InferenceService": [("spec", "predictor")],
    }
    for path, doc in resources():
        if (doc["apiVersion"], doc["kind"]) not in CUSTOM:
            continue
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), path.name
        assert set(doc) <= {"apiVersion", "kind", "metadata", "spec"}, path.name
        for keys in required[doc["kind"]]:
            value = doc
            for key in keys:
                assert isinstance(value, dict) and key in value, f"{path.name}: {'.'.join(keys)} missing"
                value = value[key]
            assert value, f"{path.name}: {'.'.join(keys)} is empty"


def test_kustomization_lists_every_top_level_manifest_and_names_the_deployments_image():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    assert [image["name"] for image in kustomization["images"]] == [server_container()["image"]]


def test_deployment_serves_on_the_server_flag_ports_with_the_image_entrypoint_untouched():
    container = server_container()
    assert {port["name"]: port["containerPort"] for port in container["ports"]} == PORTS
    # Flags have one source (docker/server_flags.py via docker/entrypoint.py): no command override,
    # and arguments, if any (e.g. --grpc-tls-cert), are the entrypoint's own options.
    assert "command" not in container
    load_entrypoint().parse_args(container.get("args", []))
    (key,) = [env for env in container["env"] if env["name"] == "TRITON_ADMIN_KEY"]
    assert "value" not in key and key["valueFrom"]["secretKeyRef"]["name"]


def test_deployment_requests_a_gpu_and_probes_triton_health_endpoints():
    container = server_container()
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["startupProbe"]["path"] == probes["readinessProbe"]["path"] == "/v2/health/ready"
    assert probes["livenessProbe"]["path"] == "/v2/health/live"
    assert {probe["port"] for probe in probes.values()} == {"http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "model load and warmup need minutes"


def test_deployment_runs_non_root_read_only_with_shared_memory_in_ram():
    pod = deployment()["spec"]["template"]["spec"]
    container = server_container()
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 1000  # the image's USER
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_termination_grace_covers_the_pre_stop_pause_and_tritons_exit_timeout():
    pod = deployment()["spec"]["template"]["spec"]
    command = server_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + DEFAULTS.exit_timeout_s


def test_deployment_leaves_replicas_to_the_autoscaler_and_selects_its_own_pods():
    spec = deployment()["spec"]
    assert "replicas" not in spec
    assert selects(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"])


def test_inference_and_metrics_services_are_separate_and_reach_the_named_ports():
    pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    container_ports = {port["name"] for port in server_container()["ports"]}
    inference, metrics = one("Service", "distilbert-triton"), one("Service", "distilbert-triton-metrics")
    for service in (inference, metrics):
        assert service["spec"]["type"] == "ClusterIP"
        assert selects(service["spec"]["selector"], pod_labels)
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= container_ports
    assert {port["name"] for port in inference["spec"]["ports"]} == {"http", "grpc"}
    assert {port["name"] for port in metrics["spec"]["ports"]} == {"metrics"}


def test_service_monitor_scrapes_only_the_metrics_service():
    monitor = one("ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    metrics, inference = one("Service", "distilbert-triton-metrics"), one("Service", "distilbert-triton")
    assert selects(selector, metrics["metadata"]["labels"])
    assert not selects(selector, inference["metadata"]["labels"])
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} == {"metrics"}


def recording_rules() -> dict[str, str]:
    groups = one("PrometheusRule")["spec"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    for rule in rules:
        assert ("record" in rule) != ("alert" in rule) and rule["expr"], rule
        assert rule["expr"].count("(") == rule["expr"].count(")") and rule["expr"].count("{") == rule["expr"].count("}")
    return {rule["record"]: rule["expr"] for rule in rules if "record" in rule}


def test_queue_time_series_is_recorded_per_pod_from_tritons_counters_on_the_metrics_job():
    (expr,) = [expr for name, expr in recording_rules().items() if "queue_duration" in name]
    assert "rate(nv_inference_queue_duration_us{" in expr and "rate(nv_inference_request_success{" in expr
    assert expr.count("sum by (namespace, pod)") == 2, "the adapter maps namespace and pod labels to objects"
    assert expr.count('job="distilbert-triton-metrics"') == 2, "the ServiceMonitor's job is the Service's name"


def test_hpa_scales_the_deployment_on_the_metric_the_adapter_serves_from_the_recorded_series():
    hpa = one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "distilbert-triton"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["target"]["type"] == "AverageValue"

    (rule,) = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"]
    recorded = re.match(r"([a-z0-9_:]+)\{", rule["seriesQuery"]).group(1)
    assert recorded in recording_rules()
    assert re.fullmatch(rule["name"]["matches"], recorded)
    assert rule["name"]["as"] == metric["pods"]["metric"]["name"]
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}


def test_network_policy_admits_inference_ports_and_metrics_from_monitoring_only():
    policy = one("NetworkPolicy")
    assert selects(policy["spec"]["podSelector"]["matchLabels"], deployment()["spec"]["template"]["metadata"]["labels"])
    by_port = {port["port"]: rule.get("from") for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert set(by_port) == set(PORTS)
    assert by_port["http"] is None and by_port["grpc"] is None
    assert by_port["metrics"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_disruption_budget_keeps_a_server_up_and_selects_the_pods():
    pdb, hpa = one("PodDisruptionBudget"), one("HorizontalPodAutoscaler")
    assert selects(pdb["spec"]["selector"]["matchLabels"], deployment()["spec"]["template"]["metadata"]["labels"])
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]


def test_kserve_inference_service_runs_the_same_image_like_the_deployment():
    predictor = one("InferenceService")["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["image"].rsplit("/", 1)[-1].split(":")[0] == server_container()["image"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert predictor["securityContext"]["runAsNonRoot"] is True
    # Its pod spec fields are a Kubernetes PodSpec: check them with the built-in schema.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"}, "spec": {}}
    pod["spec"] = {k: v for k, v in predictor.items() if k not in {"minReplicas", "maxReplicas"}}
    kubernetes_validate.validate(pod, KUBERNETES_VERSIONS[0], strict=True)


def test_compose_reserves_a_gpu_mounts_the_repository_and_publishes_the_server_ports():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    (service,) = compose["services"].values()
    assert (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DOCKER / "Dockerfile"
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert service["shm_size"]
    assert sorted(service["ports"]) == sorted(f"{port}:{port}" for port in PORTS.values())
    (volume,) = service["volumes"]
    assert volume["target"] == DEFAULTS.model_repository and volume["read_only"]
    assert (DOCKER / volume["source"]).resolve() == PROJECT / "model_repository"
    assert service["restart"] in {"always", "unless-stopped", "on-failure"}
    assert "command" not in service and "entrypoint" not in service
    assert int(service["stop_grace_period"].rstrip("s")) > DEFAULTS.exit_timeout_s
