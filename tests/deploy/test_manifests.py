"""The compose file and the Kubernetes manifests under docker/ are valid and agree with each other.

docker/k8s is a kustomize base plus opt-in components. What gets applied is what
``kubectl kustomize`` renders, so the checks run on rendered output: the base alone, each
component on the base, everything together, and each overlay (``COMBINATIONS``, ``overlays/``).
Built-in kinds are validated strictly (unknown fields rejected) by kubernetes-validate against
the schemas its wheel ships, for the oldest Kubernetes minor we support and the newest it
knows. It has no schemas for custom resources (ServiceMonitor, PrometheusRule, KServe's
InferenceService), so those get a schema-light check here: apiVersion, kind, required fields,
and that every name they refer to (Service labels and ports, recorded series, metric names,
model names) exists. The base holds built-in kinds only, so it applies on a bare cluster.
Every file passes yamllint.

kubectl (with its built-in kustomize) is on the project's machines; a machine without it fails
these tests rather than skipping them.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from distilbert_serving.server_flags import ServerOptions
from helpers import docker_script

PROJECT = Path(__file__).resolve().parents[2]
DOCKER = PROJECT / "docker"
K8S = DOCKER / "k8s"
BASE = K8S / "base"
COMPONENTS = K8S / "components"
OVERLAYS = K8S / "overlays"
REPOSITORY = PROJECT / "model_repository"
NAMESPACE = "distilbert"
# Oldest supported minor (stated in docs/OPERATIONS.md) and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# What CI renders: the base, each component on it, all of them together (name → components).
# autoscaling scales on a series that monitoring records, so it never comes without it.
COMBINATIONS = {
    "base": (),
    "monitoring": ("monitoring",),
    "monitoring+autoscaling": ("monitoring", "autoscaling"),
    "grpc-proxy": ("grpc-proxy",),
    "gpu-feature-discovery": ("gpu-feature-discovery",),
    "nvidia-runtime-class": ("nvidia-runtime-class",),
    "gpu-taint-toleration": ("gpu-taint-toleration",),
    "spread-across-nodes": ("spread-across-nodes",),
    "all": (
        "monitoring",
        "autoscaling",
        "grpc-proxy",
        "gpu-feature-discovery",
        "nvidia-runtime-class",
        "gpu-taint-toleration",
        "spread-across-nodes",
    ),
}
BUILT_IN = {
    ("v1", "Namespace"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
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
ADAPTER_VALUES = COMPONENTS / "autoscaling" / "prometheus-adapter-values.yaml"
KSERVE = K8S / "optional" / "kserve-inferenceservice.yaml"
SERVER_LABELS = {"app.kubernetes.io/name": "distilbert-triton", "app.kubernetes.io/component": "server"}


def kubectl() -> str:
    found = shutil.which("kubectl")
    assert found, "kubectl not found: these checks render docker/k8s with 'kubectl kustomize' (the project guide)"
    return found


def render(directory: Path) -> list[dict]:
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {directory}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def combination_kustomization(folder: Path, components: tuple[str, ...]) -> Path:
    """A kustomization in ``folder`` (outside the repository) of the base and ``components``.

    kustomize takes relative paths only, and a component's objects get their namespace from the
    kustomization that includes it, as in an overlay.
    """
    folder.mkdir(parents=True)
    relative = Path(os.path.relpath(K8S, folder))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": [str(relative / "base")],
        "components": [str(relative / "components" / name) for name in components],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return folder


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> dict[str, list[dict]]:
    """Rendered output of each combination, and of each overlay as 'overlays/<name>'."""
    root = tmp_path_factory.mktemp("kustomize")
    out = {name: render(combination_kustomization(root / name, parts)) for name, parts in COMBINATIONS.items()}
    out |= {f"overlays/{overlay.name}": render(overlay) for overlay in sorted(OVERLAYS.iterdir())}
    return out


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [doc for doc in docs if doc["kind"] == kind and name in (None, doc["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def selects(selector: dict, labels: dict) -> bool:
    return selector.items() <= labels.items()


def server_deployment(docs: list[dict]) -> dict:
    return one(docs, "Deployment", "distilbert-triton")


def server_container(docs: list[dict]) -> dict:
    (container,) = server_deployment(docs)["spec"]["template"]["spec"]["containers"]
    return container


def model_config(name: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse((REPOSITORY / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def token_model() -> str:
    """The model on the GPU: the one the text model sends its token ids to (read from its config)."""
    return model_config("distilbert_text").parameters["token_model"].string_value


def kustomization(folder: Path) -> dict:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())


# --- files and combinations ----------------------------------------------------------------------


def test_yamllint_passes_on_every_yaml_file_under_docker():
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-c", str(DOCKER / ".yamllint.yaml"), str(DOCKER)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_component_is_rendered_in_a_combination_and_autoscaling_always_with_monitoring():
    components = {path.name for path in COMPONENTS.iterdir() if path.is_dir()}
    assert components == {name for parts in COMBINATIONS.values() for name in parts}
    for parts in [*COMBINATIONS.values(), *(overlay_components(o) for o in OVERLAYS.iterdir())]:
        assert "autoscaling" not in parts or "monitoring" in parts, parts
    for component in components:
        assert kustomization(COMPONENTS / component)["kind"] == "Component", component


def overlay_components(overlay: Path) -> tuple[str, ...]:
    return tuple(Path(path).name for path in kustomization(overlay).get("components", []))


def test_every_yaml_file_under_k8s_is_used_by_a_kustomization_or_is_a_known_standalone_file():
    used = set()
    for path in K8S.rglob("kustomization.yaml"):
        spec = kustomization(path.parent)
        names = [*spec.get("resources", []), *(p["path"] for p in spec.get("patches", []) if "path" in p)]
        names += [f for generator in spec.get("configMapGenerator", []) for f in generator.get("files", [])]
        used |= {(path.parent / name).resolve() for name in names}
    standalone = {ADAPTER_VALUES, KSERVE}  # a Helm values file; a KServe resource applied on its own
    for path in K8S.rglob("*.yaml"):
        if path.name != "kustomization.yaml" and path not in standalone:
            assert path.resolve() in used, f"{path.relative_to(K8S)} is in no kustomization"


def test_base_holds_built_in_kinds_only_so_it_applies_on_a_bare_cluster(rendered):
    kinds = {(doc["apiVersion"], doc["kind"]) for doc in rendered["base"]}
    assert kinds <= BUILT_IN, f"custom resources in the base: {kinds - BUILT_IN}"
    assert {doc["metadata"].get("namespace") for doc in rendered["base"] if doc["kind"] != "Namespace"} == {NAMESPACE}


def test_every_rendered_kind_is_known_and_namespaced_like_the_base(rendered):
    for name, docs in rendered.items():
        kinds = {(doc["apiVersion"], doc["kind"]) for doc in docs}
        assert kinds <= BUILT_IN | CUSTOM, f"{name}: unknown kinds, add a check: {kinds - BUILT_IN - CUSTOM}"
        namespaces = {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"}
        assert namespaces == {NAMESPACE}, f"{name}: {namespaces}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("combination", [*COMBINATIONS, *(f"overlays/{o.name}" for o in sorted(OVERLAYS.iterdir()))])
def test_rendered_built_in_kinds_pass_strict_kubernetes_validation(rendered, combination, version):
    checked = 0
    for doc in rendered[combination]:
        if (doc["apiVersion"], doc["kind"]) in BUILT_IN:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(
                    f"{doc['kind']} {doc['metadata']['name']}: {'.'.join(map(str, error.path))}: {error.message}"
                )
            checked += 1
    assert checked >= 6


def test_strict_validation_rejects_an_unknown_field(rendered):
    broken = copy.deepcopy(server_deployment(rendered["base"]))
    broken["spec"]["template"]["spec"]["containers"][0]["gpuCount"] = 1
    with pytest.raises(kubernetes_validate.ValidationError, match="gpuCount"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_rendered_custom_resources_have_their_required_fields(rendered):
    required = {
        "ServiceMonitor": [("spec", "selector"), ("spec", "endpoints")],
        "PrometheusRule": [("spec", "groups")],
        "InferenceService": [("spec", "predictor")],
    }
    docs = [*rendered["all"], *yaml.safe_load_all(KSERVE.read_text())]
    assert {doc["kind"] for doc in docs if (doc["apiVersion"], doc["kind"]) in CUSTOM} == set(required)
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) not in CUSTOM:
            continue
        name = doc["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
        assert set(doc) <= {"apiVersion", "kind", "metadata", "spec"}, name
        for keys in required[doc["kind"]]:
            value = doc
            for key in keys:
                assert isinstance(value, dict) and key in value, f"{name}: {'.'.join(keys)} missing"
                value = value[key]
            assert value, f"{name}: {'.'.join(keys)} is empty"


def test_base_names_the_deployments_image_and_each_overlay_sets_it(rendered):
    image = server_container(rendered["base"])["image"]
    assert [entry["name"] for entry in kustomization(BASE)["images"]] == ["distilbert-triton"]
    assert image == "registry.example.com/ml/distilbert-triton:0.1.0-model"
    for overlay in OVERLAYS.iterdir():
        assert [entry["name"] for entry in kustomization(overlay)["images"]] == ["distilbert-triton"], overlay.name


# --- the server Deployment -----------------------------------------------------------------------


def test_deployment_serves_on_the_server_flag_ports_with_the_image_entrypoint_untouched(rendered):
    container = server_container(rendered["base"])
    assert {port["name"]: port["containerPort"] for port in container["ports"]} == PORTS
    # Flags have one source (docker/server_flags.py via docker/entrypoint.py): no command override,
    # and arguments, if any (e.g. --grpc-tls-cert), are the entrypoint's own options.
    assert "command" not in container
    docker_script("entrypoint").parse_args(container.get("args", []))
    (key,) = [env for env in container["env"] if env["name"] == "TRITON_ADMIN_KEY"]
    assert "value" not in key and key["valueFrom"]["secretKeyRef"]["name"]


def test_base_selects_gpus_by_the_resource_request_alone(rendered):
    pod = server_deployment(rendered["base"])["spec"]["template"]["spec"]
    container = server_container(rendered["base"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    for field in ("nodeSelector", "affinity", "tolerations", "runtimeClassName", "nodeName"):
        assert field not in pod, f"the base sets {field}: it would leave pods Pending on some GPU clusters"


@pytest.mark.parametrize(
    ("component", "fields"),
    [
        ("gpu-feature-discovery", {"affinity"}),
        ("nvidia-runtime-class", {"runtimeClassName"}),
        ("gpu-taint-toleration", {"tolerations"}),
        ("spread-across-nodes", {"affinity"}),
    ],
)
def test_each_scheduling_component_adds_only_its_own_pod_field(rendered, component, fields):
    base = server_deployment(rendered["base"])["spec"]["template"]["spec"]
    patched = server_deployment(rendered[component])["spec"]["template"]["spec"]
    assert {key for key in patched.keys() | base.keys() if patched.get(key) != base.get(key)} == fields


def test_runtime_class_and_toleration_components_set_the_nvidia_names(rendered):
    assert server_deployment(rendered["nvidia-runtime-class"])["spec"]["template"]["spec"]["runtimeClassName"] == (
        "nvidia"
    )
    tolerations = server_deployment(rendered["gpu-taint-toleration"])["spec"]["template"]["spec"]["tolerations"]
    assert tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def node_matches(terms: list[dict], labels: dict[str, str]) -> bool:
    """Kubernetes' nodeSelectorTerms semantics: terms ORed, expressions within a term ANDed."""

    def holds(expression: dict) -> bool:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        value = labels.get(key)
        if operator == "In":
            return value in values
        if operator == "Exists":
            return value is not None
        if operator in ("Gt", "Lt"):
            if value is None or not value.isdigit():
                return False
            return int(value) > int(values[0]) if operator == "Gt" else int(value) < int(values[0])
        raise AssertionError(f"operator {operator} not modelled here")

    return any(all(holds(e) for e in term["matchExpressions"]) for term in terms)


def gfd_labels(cuda: str, compute: str) -> dict[str, str]:
    """GPU Feature Discovery's labels for a node whose driver supports ``cuda``, with a GPU of ``compute``."""
    cuda_major, cuda_minor = cuda.split(".")
    compute_major, compute_minor = compute.split(".")
    return {
        "nvidia.com/cuda.runtime-version.major": cuda_major,
        "nvidia.com/cuda.runtime-version.minor": cuda_minor,
        "nvidia.com/gpu.compute.major": compute_major,
        "nvidia.com/gpu.compute.minor": compute_minor,
    }


@pytest.mark.parametrize(
    ("cuda", "compute", "schedulable"),
    [
        ("13.0", "7.5", True),  # Turing, T4: the oldest GPU CUDA 13 supports
        ("13.0", "8.0", True),  # A100
        ("13.1", "9.0", True),  # H100 on a newer driver
        ("13.0", "12.0", True),  # Blackwell
        ("13.0", "7.0", False),  # Volta, V100: dropped by CUDA 13
        ("13.0", "6.1", False),  # Pascal
        ("12.8", "9.0", False),  # an R570 driver: CUDA 12 only
    ],
)
def test_gpu_feature_discovery_component_admits_nodes_that_can_run_the_cuda_13_image(
    rendered, cuda, compute, schedulable
):
    affinity = server_deployment(rendered["gpu-feature-discovery"])["spec"]["template"]["spec"]["affinity"]
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert node_matches(terms, gfd_labels(cuda, compute)) is schedulable
    assert not node_matches(terms, {}), "a node without GFD labels must not match"


def test_gpu_feature_discovery_component_requires_the_cuda_major_of_the_dockerfile(rendered):
    base_cuda = re.search(r"^ARG BASE_CUDA=(\d+)\.(\d+)$", (DOCKER / "Dockerfile").read_text(), re.MULTILINE)
    assert base_cuda, "docker/Dockerfile declares no ARG BASE_CUDA=<major>.<minor>"
    major = int(base_cuda.group(1))
    affinity = server_deployment(rendered["gpu-feature-discovery"])["spec"]["template"]["spec"]["affinity"]
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert node_matches(terms, gfd_labels(f"{major}.0", "9.0"))
    assert not node_matches(terms, gfd_labels(f"{major - 1}.9", "9.0"))


def test_spread_component_prefers_one_server_per_node(rendered):
    affinity = server_deployment(rendered["spread-across-nodes"])["spec"]["template"]["spec"]["affinity"]
    (preference,) = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    term = preference["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert selects(
        term["labelSelector"]["matchLabels"],
        server_deployment(rendered["base"])["spec"]["template"]["metadata"]["labels"],
    )


def test_deployment_probes_triton_readiness_and_liveness_runs_a_real_inference_on_the_token_model(rendered):
    container = server_container(rendered["base"])
    for name in ("startupProbe", "readinessProbe"):
        assert container[name]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "model load and warmup need minutes"

    liveness = container["livenessProbe"]
    python, script, *arguments = liveness["exec"]["command"]
    assert python == "python3" and script == "/opt/distilbert/docker/liveness_probe.py"
    copied = {line.split()[-1] for line in (DOCKER / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")}
    assert script in copied, "the probe script is not where the image copies it"

    options = docker_script("liveness_probe").parse_args(arguments)
    assert options.model == token_model()
    inputs = {i.name: i for i in model_config(token_model()).input}
    assert inputs[options.input].data_type == model_config_pb2.TYPE_INT64 and not inputs[options.input].optional
    assert (options.http_port, options.metrics_port) == (DEFAULTS.http_port, DEFAULTS.metrics_port)
    # Three HTTP calls of at most --timeout-s each must fit in the probe's timeout.
    assert liveness["timeoutSeconds"] > 3 * options.timeout_s
    assert liveness["periodSeconds"] > liveness["timeoutSeconds"]


def test_deployment_runs_non_root_read_only_with_shared_memory_in_ram(rendered):
    pod = server_deployment(rendered["base"])["spec"]["template"]["spec"]
    container = server_container(rendered["base"])
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


def test_termination_grace_covers_the_pre_stop_pause_and_tritons_exit_timeout(rendered):
    pod = server_deployment(rendered["base"])["spec"]["template"]["spec"]
    command = server_container(rendered["base"])["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + DEFAULTS.exit_timeout_s


def test_base_runs_two_replicas_and_the_autoscaling_component_hands_them_to_the_hpa(rendered):
    base = server_deployment(rendered["base"])["spec"]
    assert base["replicas"] == 2
    assert selects(base["selector"]["matchLabels"], base["template"]["metadata"]["labels"])
    for name in ("monitoring+autoscaling", "all", *(f"overlays/{o.name}" for o in OVERLAYS.iterdir())):
        docs = rendered[name]
        if any(doc["kind"] == "HorizontalPodAutoscaler" for doc in docs):
            assert "replicas" not in server_deployment(docs)["spec"], f"{name}: an apply would reset the HPA's count"


# --- Services, monitoring, autoscaling ---------------------------------------------------------


def test_inference_headless_and_metrics_services_reach_the_named_ports_of_the_server_pods(rendered):
    docs = rendered["base"]
    pod_labels = server_deployment(docs)["spec"]["template"]["metadata"]["labels"]
    container_ports = {port["name"] for port in server_container(docs)["ports"]}
    inference = one(docs, "Service", "distilbert-triton")
    headless = one(docs, "Service", "distilbert-triton-headless")
    metrics = one(docs, "Service", "distilbert-triton-metrics")
    for service in (inference, headless, metrics):
        assert selects(service["spec"]["selector"], pod_labels)
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= container_ports
    assert inference["spec"]["type"] == metrics["spec"]["type"] == "ClusterIP"
    assert {port["name"] for port in inference["spec"]["ports"]} == {"http", "grpc"}
    assert {port["name"] for port in metrics["spec"]["ports"]} == {"metrics"}
    # Headless: DNS answers with every ready pod's address, for client-side round_robin.
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"].get("publishNotReadyAddresses", False) is False
    assert [(p["name"], p["port"]) for p in headless["spec"]["ports"]] == [("grpc", DEFAULTS.grpc_port)]


def test_service_monitor_scrapes_only_the_metrics_service(rendered):
    docs = rendered["monitoring"]
    monitor = one(docs, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selects(selector, one(docs, "Service", "distilbert-triton-metrics")["metadata"]["labels"])
    for name in ("distilbert-triton", "distilbert-triton-headless"):
        assert not selects(selector, one(docs, "Service", name)["metadata"]["labels"]), name
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} == {"metrics"}


def rules(docs: list[dict]) -> list[dict]:
    groups = one(docs, "PrometheusRule")["spec"]["groups"]
    found = [rule for group in groups for rule in group["rules"]]
    for rule in found:
        assert ("record" in rule) != ("alert" in rule) and rule["expr"], rule
        assert rule["expr"].count("(") == rule["expr"].count(")") and rule["expr"].count("{") == rule["expr"].count("}")
    return found


def recording_rules(docs: list[dict]) -> dict[str, str]:
    return {rule["record"]: rule["expr"] for rule in rules(docs) if "record" in rule}


def test_every_triton_series_the_rules_read_is_the_token_models_on_the_metrics_job(rendered):
    expressions = "\n".join(rule["expr"] for rule in rules(rendered["monitoring"]))
    series = list(re.finditer(r"\bnv_\w+", expressions))
    assert series, "the rules read no Triton series"
    for match in series:
        assert expressions[match.end()] == "{", f"{match.group()} without a label selector"
        labels = expressions[match.end() : expressions.index("}", match.end())]
        # distilbert_text's requests reach the GPU as BLS requests to the token model: counting both
        # models would count every text request twice.
        assert f'model="{token_model()}"' in labels, f"{match.group()}{labels}}}"
        assert 'job="distilbert-triton-metrics"' in labels, (
            f"{match.group()}: the ServiceMonitor's job is the Service's name"
        )


def test_queue_time_series_is_recorded_per_pod_from_tritons_counters(rendered):
    (expr,) = [expr for name, expr in recording_rules(rendered["monitoring"]).items() if "queue_duration" in name]
    assert "rate(nv_inference_queue_duration_us{" in expr and "rate(nv_inference_request_success{" in expr
    assert expr.count("sum by (namespace, pod)") == 2, "the adapter maps namespace and pod labels to objects"


def test_alerts_fire_on_one_pods_failure_rate_and_on_the_whole_deployments(rendered):
    docs = rendered["monitoring"]
    alerts = [rule for rule in rules(docs) if "alert" in rule]
    per_pod_failures = [
        name
        for name, expr in recording_rules(docs).items()
        if "nv_inference_request_failure" in expr and "sum by (namespace, pod)" in expr
    ]
    per_pod = [rule for rule in alerts if any(name in rule["expr"] for name in per_pod_failures)]
    assert per_pod, "no alert on one pod's failure rate: a pod whose GPU broke stays ready while its requests fail"
    overall = [rule for rule in alerts if "nv_inference_request_failure" in rule["expr"]]
    assert overall and all("by (namespace)" in rule["expr"] for rule in overall)
    for rule in per_pod + overall:
        assert rule["labels"]["severity"] in {"warning", "critical"} and rule["for"], rule["alert"]


def test_hpa_scales_the_deployment_on_the_metric_the_adapter_serves_from_the_recorded_series(rendered):
    docs = rendered["monitoring+autoscaling"]
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "distilbert-triton"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["target"]["type"] == "AverageValue"

    (rule,) = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"]
    recorded = re.match(r"([a-z0-9_:]+)\{", rule["seriesQuery"]).group(1)
    assert recorded in recording_rules(docs)
    assert re.fullmatch(rule["name"]["matches"], recorded)
    assert rule["name"]["as"] == metric["pods"]["metric"]["name"]
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}


def test_adapter_values_add_a_rule_and_change_nothing_else_on_a_shared_adapter():
    values = yaml.safe_load(ADAPTER_VALUES.read_text())
    # rules.default: false would drop the chart's default rules; prometheus.* would repoint the adapter.
    assert values == {"rules": {"custom": values["rules"]["custom"]}}, "only rules.custom may be set"


def test_network_policy_admits_inference_ports_and_metrics_from_monitoring_only(rendered):
    docs = rendered["base"]
    policy = one(docs, "NetworkPolicy", "distilbert-triton")
    assert selects(
        policy["spec"]["podSelector"]["matchLabels"], server_deployment(docs)["spec"]["template"]["metadata"]["labels"]
    )
    by_port = {port["port"]: rule.get("from") for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert set(by_port) == set(PORTS)
    assert by_port["http"] is None and by_port["grpc"] is None
    assert by_port["metrics"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_disruption_budget_keeps_a_server_up_and_selects_the_server_pods(rendered):
    for name in ("base", "monitoring+autoscaling"):
        docs = rendered[name]
        pdb = one(docs, "PodDisruptionBudget", "distilbert-triton")
        assert pdb["spec"]["selector"]["matchLabels"] == SERVER_LABELS
        hpa = [doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler"]
        floor = hpa[0]["spec"]["minReplicas"] if hpa else server_deployment(docs)["spec"]["replicas"]
        assert pdb["spec"]["maxUnavailable"] < floor, name


# --- the gRPC proxy ------------------------------------------------------------------------------


def test_grpc_proxy_sends_to_the_headless_service_and_listens_where_its_service_points(rendered):
    docs = rendered["grpc-proxy"]
    proxy = one(docs, "Deployment", "distilbert-triton-grpc-proxy")
    (container,) = proxy["spec"]["template"]["spec"]["containers"]
    config_map = one(docs, "ConfigMap")
    # The generated name (with its content hash) is the one the pods mount: a config change rolls them.
    mounted = [v["configMap"]["name"] for v in proxy["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    assert mounted == [config_map["metadata"]["name"]]
    config = yaml.safe_load(config_map["data"]["envoy.yaml"])
    assert config == yaml.safe_load((COMPONENTS / "grpc-proxy" / "envoy.yaml").read_text())

    (cluster,) = config["static_resources"]["clusters"]
    ((endpoint,),) = [group["lb_endpoints"] for group in cluster["load_assignment"]["endpoints"]]
    upstream = endpoint["endpoint"]["address"]["socket_address"]
    headless = one(docs, "Service", "distilbert-triton-headless")
    # The short name resolves in the proxy's own namespace, whatever an overlay names it.
    assert upstream["address"] == headless["metadata"]["name"]
    assert upstream["port_value"] == next(p["port"] for p in headless["spec"]["ports"] if p["name"] == "grpc")
    assert cluster["lb_policy"] in {"LEAST_REQUEST", "ROUND_ROBIN"}

    (listener,) = config["static_resources"]["listeners"]
    container_ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container_ports == {"grpc": listener["address"]["socket_address"]["port_value"]}
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1", "the admin API can stop Envoy"
    service = one(docs, "Service", "distilbert-triton-grpc")
    assert selects(service["spec"]["selector"], proxy["spec"]["template"]["metadata"]["labels"])
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(DEFAULTS.grpc_port, "grpc")]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "grpc"}


def test_grpc_proxy_pods_and_server_pods_are_told_apart_by_every_selector(rendered):
    docs = rendered["all"]
    server_labels = server_deployment(docs)["spec"]["template"]["metadata"]["labels"]
    proxy_labels = one(docs, "Deployment", "distilbert-triton-grpc-proxy")["spec"]["template"]["metadata"]["labels"]
    for doc in docs:
        spec = doc.get("spec", {})
        selector = spec.get("selector") if doc["kind"] == "Service" else None
        selector = (
            selector or spec.get("selector", {}).get("matchLabels") or spec.get("podSelector", {}).get("matchLabels")
        )
        if not selector or doc["kind"] == "ServiceMonitor":
            continue
        assert not (selects(selector, server_labels) and selects(selector, proxy_labels)), doc["metadata"]["name"]


def test_grpc_proxy_runs_restricted_with_two_replicas_and_drains_before_it_stops(rendered):
    docs = rendered["grpc-proxy"]
    proxy = one(docs, "Deployment", "distilbert-triton-grpc-proxy")
    pod = proxy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert (
        pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pause
    pdb = one(docs, "PodDisruptionBudget", "distilbert-triton-grpc-proxy")
    assert selects(pdb["spec"]["selector"]["matchLabels"], proxy["spec"]["template"]["metadata"]["labels"])
    assert pdb["spec"]["maxUnavailable"] < proxy["spec"]["replicas"]
    # Worker threads match the CPU request, not the node's core count.
    concurrency = next(a for a in container["args"] if a.startswith("--concurrency="))
    assert int(concurrency.split("=")[1]) == int(container["resources"]["requests"]["cpu"])


# --- KServe and compose ----------------------------------------------------------------------------


def test_kserve_inference_service_runs_the_same_image_and_probes_like_the_deployment(rendered):
    (service,) = yaml.safe_load_all(KSERVE.read_text())
    predictor = service["spec"]["predictor"]
    (container,) = predictor["containers"]
    deployment = server_container(rendered["base"])
    assert container["image"] == deployment["image"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"] == deployment["livenessProbe"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert predictor["securityContext"]["runAsNonRoot"] is True
    # Its pod spec fields are a Kubernetes PodSpec: check them with the built-in schema.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"}, "spec": {}}
    pod["spec"] = {k: v for k, v in predictor.items() if k not in {"minReplicas", "maxReplicas"}}
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)


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
