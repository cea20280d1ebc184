"""The image installs the versions the project pins, and the local path runs those same versions.

``docker/requirements-server.txt`` is what the Dockerfile's pip installs into the NGC image's
Python. Each of its pins must equal ``pyproject.toml``'s, it must cover every third-party
module the served models import and every project pin they pull in, and the environment
running these tests (``make install``) must hold the same versions: so CI exercises what the
image will run. torch differs only in its build: ``+cu130`` there, ``+cpu`` here.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires, version
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PROJECT = Path(__file__).resolve().parents[2]
REQUIREMENTS = PROJECT / "docker" / "requirements-server.txt"
# Provided by Triton's Python backend, not by pip.
BACKEND_MODULES = {"triton_python_backend_utils"}


def image_requirements() -> tuple[dict[str, Requirement], list[str]]:
    """(name → requirement, pip option lines) of the image's requirements file."""
    requirements, options = {}, []
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-"):
            options.append(line)
        elif line:
            requirement = Requirement(line)
            requirements[canonicalize_name(requirement.name)] = requirement
    return requirements, options


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


def pinned_version(requirement: Requirement) -> Version:
    specifiers = list(requirement.specifier)
    assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{requirement} is not an exact pin"
    return Version(specifiers[0].version)


def model_imports() -> set[str]:
    """Top-level third-party modules imported by the models' code (model.py and its packages)."""
    local_packages = {path.name for path in PROJECT.glob("model_repository/*/1/*") if path.is_dir()}
    modules = set()
    for source in PROJECT.glob("model_repository/*/1/**/*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - local_packages - BACKEND_MODULES - {"__future__"}


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


def test_every_image_requirement_is_an_exact_pin_of_a_project_dependency():
    requirements, _ = image_requirements()
    pins = project_pins()
    assert set(requirements) <= set(pins), f"pinned for the image only: {set(requirements) - set(pins)}"
    for name, requirement in requirements.items():
        assert pinned_version(requirement).public == pins[name].public, (
            f"{name}: image {requirement}, pyproject {pins[name]}"
        )


def test_image_pins_cover_every_third_party_module_the_models_import():
    requirements, _ = image_requirements()
    distributions = packages_distributions()
    imported = model_imports()
    assert {"torch", "numpy"} <= imported, "the scan of model_repository found no model code"
    for module in imported:
        assert module in distributions, f"models import {module!r}, which no installed distribution provides"
        assert {canonicalize_name(d) for d in distributions[module]} & set(requirements), f"{module} is not pinned"


def test_project_pins_that_the_image_pulls_in_are_pinned_there_too():
    requirements, _ = image_requirements()
    pulled_in = dependency_closure(set(requirements)) & set(project_pins())
    assert pulled_in <= set(requirements), f"pulled in unpinned: {pulled_in - set(requirements)}"


def test_image_torch_is_the_cuda_build_of_the_project_version_from_the_matching_index():
    requirements, options = image_requirements()
    torch = pinned_version(requirements["torch"])
    assert re.fullmatch(r"cu\d{3}", torch.local or ""), f"image torch {torch} is not a CUDA build"
    assert f"--extra-index-url https://download.pytorch.org/whl/{torch.local}" in options
    assert torch.public == project_pins()["torch"].public


def test_the_local_environment_runs_the_versions_the_image_installs():
    requirements, _ = image_requirements()
    for name, requirement in requirements.items():
        installed = Version(version(name))
        assert installed.public == pinned_version(requirement).public, f"{name}: here {installed}, image {requirement}"


def test_makefile_installs_the_same_torch_first():
    match = re.search(r"install --quiet torch==(\S+)", (PROJECT / "Makefile").read_text())
    assert match, "Makefile no longer installs a pinned torch first"
    assert Version(match.group(1)).public == project_pins()["torch"].public
