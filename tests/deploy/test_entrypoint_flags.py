"""The container entrypoint starts ``tritonserver`` with the local launcher's flags.

Both take them from ``distilbert_serving.server_flags``; these tests hold the two command lines side by
side for the same arguments and environment. The launcher adds ``--backend-directory`` (the
wheel's server needs one assembled; the NGC image has its own), and nothing else may differ.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from distilbert_serving import launch, server_flags
from distilbert_serving.server_flags import ADMIN_KEY_ENV, ADMIN_KEY_HEADER
from helpers import docker_script

PROJECT = Path(__file__).resolve().parents[2]
ENTRYPOINT = PROJECT / "docker" / "entrypoint.py"
BACKENDS = "/launcher/backends"


entrypoint = docker_script("entrypoint")


class Recorded(launch.ServerStartError):
    """Stops launch.main right where it would start the server."""


def launcher_command(argv: list[str], monkeypatch, tmp_path) -> list[str]:
    """The command ``build/launch.py argv`` would run, without running it."""
    commands: list[list[str]] = []

    def record(server, timeout_s=0):
        commands.append(server.command())
        raise Recorded("recorded")

    monkeypatch.setattr(launch.LocalServer, "start", record)
    monkeypatch.setattr(launch, "prepare_backend_directory", lambda workdir: Path(BACKENDS))
    monkeypatch.setattr(launch.tempfile, "mkdtemp", lambda prefix="": str(tmp_path))
    monkeypatch.setattr(launch.signal, "signal", lambda *args: None)
    assert launch.main(argv) == 1
    (command,) = commands
    return command


ARGUMENTS = [
    pytest.param(["--model-repository", "/models"], id="defaults"),
    pytest.param(
        ["--model-repository", "/mnt/models", "--grpc-port", "9001", "--http-port", "9000", "--metrics-port", "9002"],
        id="ports",
    ),
    pytest.param(["--model-repository", "/models", "--exit-timeout-s", "5", "--log-verbose", "1"], id="timeouts"),
    pytest.param(
        ["--model-repository", "/models", "--grpc-tls-cert", "/tls/tls.crt", "--grpc-tls-key", "/tls/tls.key"],
        id="grpc-tls",
    ),
    pytest.param(
        ["--model-repository", "/models", "--grpc-tls-cert", "/tls/tls.crt", "--grpc-tls-key", "/tls/tls.key"]
        + ["--grpc-tls-client-ca", "/tls/ca.crt"],
        id="grpc-mutual-tls",
    ),
]


@pytest.mark.parametrize("argv", ARGUMENTS)
def test_entrypoint_and_launcher_give_tritonserver_the_same_flags(argv, monkeypatch, tmp_path):
    monkeypatch.setenv(ADMIN_KEY_ENV, "s3cret-admin-key")
    local = launcher_command(argv, monkeypatch, tmp_path)
    container = entrypoint.container_command(argv)

    assert Path(local[0]).name == container[0] == "tritonserver"
    assert local[1:] == [*container[1:], f"--backend-directory={BACKENDS}"]
    # An admin key guards the repository API: versions are loaded while serving (server_flags.model_control_flags).
    assert {"--model-control-mode=explicit", "--load-model=*"} <= set(container)
    assert any(flag.startswith("--grpc-restricted-protocol=") and "s3cret-admin-key" in flag for flag in container)


def test_entrypoint_without_arguments_serves_models_with_the_launchers_default_ports(monkeypatch, tmp_path):
    monkeypatch.setenv(ADMIN_KEY_ENV, "k")
    local = launcher_command(["--model-repository", "/models"], monkeypatch, tmp_path)
    assert entrypoint.container_command([])[1:] == local[1:-1]


def without_key(command: list[str]) -> list[str]:
    marker = f"{ADMIN_KEY_HEADER}="
    return [flag.split(marker, 1)[0] if marker in flag else flag for flag in command]


def test_without_an_admin_key_both_lock_restricted_protocols_with_a_random_key(monkeypatch, tmp_path):
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    local = launcher_command(["--model-repository", "/models"], monkeypatch, tmp_path)
    first, second = entrypoint.container_command([]), entrypoint.container_command([])

    assert without_key(local[1:]) == [*without_key(first[1:]), f"--backend-directory={BACKENDS}"]
    restricted = [flag for flag in first if f"{ADMIN_KEY_HEADER}=" in flag]
    assert [flag.split("=", 1)[0] for flag in restricted] == ["--grpc-restricted-protocol", "--http-restricted-api"]
    key = restricted[0].split(f"{ADMIN_KEY_HEADER}=", 1)[1]
    assert len(key) >= 32 and key not in " ".join(second)


def test_dry_run_prints_the_command_with_the_admin_key_redacted(monkeypatch, capsys):
    monkeypatch.setenv(ADMIN_KEY_ENV, "do-not-print-me")
    assert entrypoint.main(["--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "do-not-print-me" not in printed
    assert printed.startswith("tritonserver --model-repository=/models ")
    assert printed.count(f"triton-admin-key={entrypoint.REDACTED}") == 2


def test_entrypoint_execs_tritonserver_on_a_servable_repository(monkeypatch):
    monkeypatch.setenv(ADMIN_KEY_ENV, "k")
    repository = str(PROJECT / "model_repository")
    execs = []
    monkeypatch.setattr(entrypoint.os, "execvp", lambda file, args: execs.append((file, args)))
    entrypoint.main(["--model-repository", repository])
    assert execs == [("tritonserver", entrypoint.container_command(["--model-repository", repository]))]


@pytest.mark.parametrize("layout", ["missing", "empty", "no_version"])
def test_entrypoint_refuses_an_unservable_repository_before_starting(layout, tmp_path, monkeypatch, capsys):
    repository = tmp_path / "models"
    if layout != "missing":
        repository.mkdir()
    if layout == "no_version":
        (repository / "classifier").mkdir()
        (repository / "classifier" / "config.pbtxt").write_text('backend: "python"\n')
    monkeypatch.setattr(entrypoint.os, "execvp", lambda *args: pytest.fail("must not start tritonserver"))

    assert entrypoint.main(["--model-repository", str(repository)]) == 2
    assert "entrypoint: " in capsys.readouterr().err


def test_the_committed_repository_is_servable_by_the_entrypoint_check():
    assert entrypoint.repository_problems(PROJECT / "model_repository") == []


@pytest.mark.parametrize(
    ("source", "allowed"),
    [(Path(server_flags.__file__), set()), (ENTRYPOINT, {"distilbert_serving"})],
    ids=["server_flags", "entrypoint"],
)
def test_image_python_files_import_only_the_standard_library_and_the_serving_package(source, allowed):
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0] if node.level == 0 else "distilbert_serving")
    assert imported - set(sys.stdlib_module_names) - {"__future__"} == allowed
