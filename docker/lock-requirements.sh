#!/usr/bin/env bash
# Writes the image's lock files from their inputs: every package pip will install, pinned, with
# the sha256 of each of its PyPI files (the Dockerfile's pip --require-hashes refuses anything else).
#
#   docker/lock-requirements.sh               # keep the locked versions the inputs still allow
#   docker/lock-requirements.sh --upgrade     # take the newest versions the inputs allow
#
#   requirements-torch.in  -> requirements-torch.txt    torch and its CUDA wheels: the first pip step
#   requirements-server.in -> requirements-server.txt   the rest, resolved with torch's lock as
#                                                       constraints, so shared packages get one version
#
# Needs PyPI and uv (UV=/path/to/uv, or on PATH; not a project dependency:
# python3 -m venv /tmp/uv && /tmp/uv/bin/pip install uv). The target is the image's Python:
# CPython 3.12, x86_64 Linux, glibc 2.39 (Ubuntu 24.04), which takes manylinux_2_28 wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-uv}
common=(
    --quiet
    --generate-hashes
    --python-version 3.12
    --python-platform x86_64-manylinux_2_28
    --index-url https://pypi.org/simple
    --custom-compile-command docker/lock-requirements.sh
    "$@"
)
"$uv" pip compile "${common[@]}" docker/requirements-torch.in -o docker/requirements-torch.txt
"$uv" pip compile "${common[@]}" -c docker/requirements-torch.txt docker/requirements-server.in \
    -o docker/requirements-server.txt
