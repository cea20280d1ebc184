"""The image installs locked, hashed versions that agree with the project's pins, and the local path runs them.

The Dockerfile's pip installs two lock files, torch's first (``docker/requirements-torch.txt``)
and then the rest (``docker/requirements-server.txt``), with ``--require-hashes``. Both are
written by ``docker/lock-requirements.sh`` from the ``.in`` files beside them. Checked here:

- each lock is what ``pip install --require-hashes`` accepts: every requirement an exact
  ``name==version`` pin with at least one sha256, nothing that makes pip look elsewhere
  (no index or link options, no URLs, no editable installs), each package once;
- the ``.in`` pins equal ``pyproject.toml``'s, each lock holds its ``.in`` pins at those versions,
  and a package in both locks has one version;
- the pins cover every third-party module the served models import and every project pin they
  pull in, and the environment running these tests (``make install``) has the same versions: so
  CI exercises what the image will run (torch: ``+cpu`` here, PyPI's CUDA 13.0 wheel there);
- torch's lock is the CUDA build of the base image's CUDA (``cuda-toolkit`` of the same
  major.minor as the Dockerfile's ``BASE_CUDA``), which ``docker/check_torch_cuda.py`` asserts at build.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires, version
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import distilbert_serving
from helpers import docker_script

check_torch_cuda = docker_script("check_torch_cuda")

PROJECT = Path(__file__).resolve().parents[2]
DOCKER = PROJECT / "docker"
LOCKS = {"torch": DOCKER / "requirements-torch.txt", "server": DOCKER / "requirements-server.txt"}
# Provided by Triton's Python backend, not by pip.
BACKEND_MODULES = {"triton_python_backend_utils"}
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def logical_lines(text: str) -> list[str]:
    """A requirements file's lines as pip reads them: continuations joined, comments and blanks dropped."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines()]
    return [line for line in lines if line]


def parse_lock(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """name → (version, sha256 hashes), failing on anything ``pip install --require-hashes`` would refuse."""
    entries = {}
    for line in logical_lines(path.read_text()):
        assert not line.startswith("-"), f"{path.name}: option line {line!r}: a lock holds requirements only"
        requirement_text, *options = line.split(" --")
        options = [f"--{option.strip()}" for option in options]
        hashes = [option for option in options if HASH.fullmatch(option)]
        assert hashes and len(hashes) == len(options), f"{path.name}: {requirement_text}: options {options}"
        requirement = Requirement(requirement_text)
        name = canonicalize_name(requirement.name)
        assert requirement.url is None and not requirement.extras and requirement.marker is None, line
        (specifier,) = requirement.specifier
        assert specifier.operator == "==" and "*" not in specifier.version, f"{path.name}: {requirement} is not pinned"
        assert name not in entries, f"{path.name}: {name} twice"
        entries[name] = (Version(specifier.version), [h.removeprefix("--hash=sha256:") for h in hashes])
    assert entries, f"{path.name} locks nothing"
    return entries


def input_pins(kind: str) -> dict[str, Version]:
    """name → version of ``docker/requirements-<kind>.in``: exact pins only."""
    pins = {}
    for line in logical_lines((DOCKER / f"requirements-{kind}.in").read_text()):
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"requirements-{kind}.in: {line} is not an exact pin"
        pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


def all_input_pins() -> dict[str, Version]:
    return {**input_pins("torch"), **input_pins("server")}


def project_pins() -> dict[str, Version]:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *(s for extra in project["optional-dependencies"].values() for s in extra)]
    pins = {}
    for spec in specs:
        requirement = Requirement(spec)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"pyproject.toml: {spec} is not an exact pin"
        pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


def model_imports() -> set[str]:
    """Top-level third-party modules the server runs in the image: the two models' code, followed
    through the serving package's own imports, and the server flags the entrypoint reads."""
    package = Path(distilbert_serving.__file__).parent
    todo = [package / "token_model" / "model.py", package / "text_model" / "model.py", package / "server_flags.py"]
    seen, modules = set(), set()
    while todo:
        source = todo.pop()
        if source in seen or not source.exists():
            continue
        seen.add(source)
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom):  # this package: follow it
                base = source.parents[node.level - 1]
                target = base.joinpath(*(node.module or "").split("."))
                todo += [target.with_suffix(".py"), target / "__init__.py"]
    return modules - set(sys.stdlib_module_names) - {"distilbert_serving"} - BACKEND_MODULES - {"__future__"}


def dependency_closure(names: set[str]) -> set[str]:
    """``names`` and everything they require in this environment (extras not taken)."""
    seen, todo = set(), list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            declared = requires(name) or []
        except PackageNotFoundError:
            continue
        for spec in map(Requirement, declared):
            if spec.marker is None or spec.marker.evaluate({"extra": ""}):
                todo.append(spec.name)
    return seen


def base_cuda() -> str:
    match = re.search(r"^ARG BASE_CUDA=(\d+\.\d+)$", (DOCKER / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "docker/Dockerfile declares no ARG BASE_CUDA=<major>.<minor>"
    return match.group(1)


@pytest.mark.parametrize("kind", LOCKS)
def test_every_lock_line_is_an_exact_pin_with_sha256_hashes_and_nothing_else(kind):
    for name, (pinned, hashes) in parse_lock(LOCKS[kind]).items():
        assert pinned.local is None, f"{name}=={pinned}: a local version is not on PyPI"
        assert len(set(hashes)) == len(hashes), f"{name}: a hash twice"


def test_lock_parser_refuses_what_pip_require_hashes_refuses(tmp_path):
    lock = tmp_path / "lock.txt"
    for bad in (
        "torch==2.13.0\n",  # no hash
        "torch>=2.13.0 \\\n    --hash=sha256:" + "0" * 64 + "\n",  # not pinned
        "--extra-index-url https://example.org/simple\ntorch==2.13.0 --hash=sha256:" + "0" * 64 + "\n",  # two indexes
        "torch==2.13.0 --hash=md5:" + "0" * 32 + "\n",  # not sha256
        "torch @ https://example.org/torch.whl --hash=sha256:" + "0" * 64 + "\n",  # a URL
    ):
        lock.write_text(bad)
        with pytest.raises(AssertionError):
            parse_lock(lock)
    lock.write_text("# comment\ntorch==2.13.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via -r x.in\n")
    assert parse_lock(lock) == {"torch": (Version("2.13.0"), ["a" * 64])}


def test_the_locks_are_written_by_the_lock_script_from_their_inputs():
    for kind, path in LOCKS.items():
        header = path.read_text().splitlines()[:2]
        assert header[1].strip("# ") == "docker/lock-requirements.sh", f"{path.name}: {header}"
        locked = parse_lock(path)
        for name, pinned in input_pins(kind).items():
            assert name in locked, (
                f"requirements-{kind}.in pins {name}, the lock lacks it: run docker/lock-requirements.sh"
            )
            assert locked[name][0] == pinned, (
                f"{name}: .in {pinned}, lock {locked[name][0]}: run docker/lock-requirements.sh"
            )


def test_torch_is_alone_in_the_first_lock_and_shared_packages_have_one_version():
    torch_lock, server_lock = parse_lock(LOCKS["torch"]), parse_lock(LOCKS["server"])
    assert list(input_pins("torch")) == ["torch"]
    assert "torch" not in server_lock and "torch" not in input_pins("server")
    for name in torch_lock.keys() & server_lock.keys():
        assert torch_lock[name][0] == server_lock[name][0], f"{name}: {torch_lock[name][0]} and {server_lock[name][0]}"


def test_every_pin_of_the_image_equals_the_projects_pin():
    pins = project_pins()
    inputs = all_input_pins()
    assert set(inputs) <= set(pins), f"pinned for the image only: {set(inputs) - set(pins)}"
    for name, pinned in inputs.items():
        assert pinned == pins[name], f"{name}: image {pinned}, pyproject {pins[name]}"
    # Indirect packages of the image that the project also pins (a client dependency, say) agree too.
    for lock in LOCKS.values():
        for name, (locked, _) in parse_lock(lock).items():
            if name in pins:
                assert locked == pins[name], f"{name}: {lock.name} {locked}, pyproject {pins[name]}"


def test_image_pins_cover_every_third_party_module_the_models_import():
    inputs = all_input_pins()
    distributions = packages_distributions()
    imported = model_imports()
    assert {"torch", "numpy"} <= imported, "the scan of model_repository found no model code"
    for module in imported:
        assert module in distributions, f"models import {module!r}, which no installed distribution provides"
        assert {canonicalize_name(d) for d in distributions[module]} & set(inputs), f"{module} is not pinned"


def test_project_pins_that_the_image_pulls_in_are_pinned_there_too():
    inputs = all_input_pins()
    pulled_in = dependency_closure(set(inputs)) & set(project_pins())
    assert pulled_in <= set(inputs), f"pulled in unpinned: {pulled_in - set(inputs)}"


def test_the_local_environment_runs_the_versions_the_image_installs():
    for name, pinned in all_input_pins().items():
        installed = Version(version(name))
        assert installed.public == str(pinned), f"{name}: here {installed}, image {pinned}"


def test_torch_lock_is_the_cuda_build_for_the_base_images_cuda():
    locked = parse_lock(LOCKS["torch"])
    assert locked["torch"][0] == project_pins()["torch"]
    # PyPI's torch wheel for Linux requires cuda-toolkit of the CUDA it was built with.
    toolkit = locked["cuda-toolkit"][0]
    assert f"{toolkit.major}.{toolkit.minor}" == base_cuda(), f"torch's CUDA {toolkit}, base image CUDA {base_cuda()}"
    assert any(name.startswith("nvidia-cudnn-cu") for name in locked), "no cuDNN wheel: not a CUDA build of torch"


def test_makefile_installs_the_same_torch_first():
    match = re.search(r"install --quiet torch==(\S+)", (PROJECT / "Makefile").read_text())
    assert match, "Makefile no longer installs a pinned torch first"
    assert Version(match.group(1)).public == str(project_pins()["torch"])


def test_torch_check_accepts_the_locked_cuda_build_and_names_each_mismatch():
    locked = check_torch_cuda.locked_versions(LOCKS["torch"].read_text())
    cuda = base_cuda()
    assert check_torch_cuda.problems(locked["torch"], cuda, locked, cuda, f"{cuda}.2.006") == []
    assert check_torch_cuda.problems(f"{locked['torch']}+cu130", cuda, locked, cuda, None) == []
    (cpu,) = check_torch_cuda.problems(f"{locked['torch']}+cpu", None, locked, cuda, None)
    assert "CPU build" in cpu
    (other,) = check_torch_cuda.problems(locked["torch"], "12.8", locked, cuda, None)
    assert "CUDA 12.8" in other
    (image,) = check_torch_cuda.problems(locked["torch"], cuda, locked, cuda, "12.9.1")
    assert "CUDA_VERSION=12.9.1" in image
    (version_problem,) = check_torch_cuda.problems("2.0.0", cuda, locked, cuda, None)
    assert "lock pins" in version_problem


def test_torch_check_fails_the_build_on_this_environments_cpu_torch():
    result = subprocess.run(
        [sys.executable, str(DOCKER / "check_torch_cuda.py"), "--lock", str(LOCKS["torch"]), "--cuda", base_cuda()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CPU build" in result.stderr
