"""Build-time check: the torch just installed is the locked version, built for the image's CUDA.

    python3 docker/check_torch_cuda.py --lock docker/requirements-torch.txt --cuda 13.0

Exit 1, saying what is wrong, when torch is not the version in ``--lock``, is a CPU build, or
was built for another CUDA major.minor than ``--cuda`` (the base image's); when the lock's
``cuda-toolkit`` is another CUDA; or when the base image declares its CUDA (``CUDA_VERSION``,
set by NVIDIA's CUDA images) with another major.minor. No GPU is needed: this reads torch's
build metadata. Whether a host's driver can run that CUDA is a deployment question
(docs/OPERATIONS.md, "The image").
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path


def locked_versions(lock_text: str) -> dict[str, str]:
    """name → version of every ``name==version`` line of a pip requirements lock."""
    return {
        match.group(1).lower(): match.group(2)
        for match in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", lock_text, re.MULTILINE)
    }


def major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def problems(
    torch_version: str, torch_cuda: str | None, locked: dict[str, str], cuda: str, image_cuda: str | None
) -> list[str]:
    """What is wrong with this torch for an image of CUDA ``cuda``; empty when nothing is."""
    found = []
    if "torch" not in locked:
        found.append("the lock pins no torch")
    elif torch_version.split("+")[0] != locked["torch"]:
        found.append(f"torch {torch_version} is installed, the lock pins {locked['torch']}")
    if torch_cuda is None:
        found.append(f"torch {torch_version} is a CPU build (torch.version.cuda is None); the image needs CUDA {cuda}")
    elif major_minor(torch_cuda) != cuda:
        found.append(f"torch {torch_version} is built for CUDA {torch_cuda}; the base image has CUDA {cuda}")
    toolkit = locked.get("cuda-toolkit")
    if toolkit is not None and major_minor(toolkit) != cuda:
        found.append(f"the lock's cuda-toolkit is {toolkit}; the base image has CUDA {cuda}")
    if image_cuda and major_minor(image_cuda) != cuda:
        found.append(f"the base image declares CUDA_VERSION={image_cuda}, not CUDA {cuda}: update --cuda and the lock")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lock", type=Path, required=True, help="the torch lock file the image installed")
    parser.add_argument("--cuda", required=True, help="the base image's CUDA, major.minor (e.g. 13.0)")
    args = parser.parse_args(argv)
    import torch  # after argument parsing: --help works without torch

    found = problems(
        torch.__version__,
        torch.version.cuda,
        locked_versions(args.lock.read_text()),
        args.cuda,
        os.environ.get("CUDA_VERSION"),
    )
    if found:
        print("\n".join(f"check_torch_cuda: {problem}" for problem in found), file=sys.stderr)
        return 1
    print(
        f"check_torch_cuda: torch {torch.__version__}, CUDA {torch.version.cuda}: matches the image's CUDA {args.cuda}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
