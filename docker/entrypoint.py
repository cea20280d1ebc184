"""Container entrypoint: check the model repository, then become ``tritonserver``.

    python3 docker/entrypoint.py                       # /models, ports 8000 (HTTP) 8001 (gRPC) 8002 (metrics)
    python3 docker/entrypoint.py --model-repository /mnt/models --log-verbose 1
    python3 docker/entrypoint.py --dry-run             # print the command, admin key redacted, and exit
    python3 docker/entrypoint.py --grpc-tls-cert /tls/tls.crt --grpc-tls-key /tls/tls.key   # gRPC over TLS

The flags come from ``distilbert_serving.server_flags``, the function the local launcher
(``build/launch.py``) uses too; the only flag the launcher adds is ``--backend-directory``
(the wheel's server needs one assembled, the NGC image has its own). The options below
have the launcher's names and defaults, except the repository, ``/models`` here.

Admin key: the restricted protocol groups (model repository, statistics, trace, logging,
shared memory) need header ``triton-admin-key``. Its value is ``TRITON_ADMIN_KEY`` when set;
when it is not, a random key that is printed and stored nowhere, so those groups stay locked.
The launcher's ``--unrestricted`` (development) has no counterpart here.

The process ``exec``s ``tritonserver``, so SIGTERM from Docker or Kubernetes reaches the
server directly and in-flight requests finish (``--exit-timeout-secs``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from distilbert_serving.server_flags import (
    ADMIN_KEY_ENV,
    ADMIN_KEY_HEADER,
    ServerOptions,
    add_server_arguments,
    generate_admin_key,
    options_from_arguments,
    server_flags,
)

TRITONSERVER = "tritonserver"  # on PATH in the NGC image: /opt/tritonserver/bin
DEFAULT_REPOSITORY = "/models"
REDACTED = "<redacted>"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_arguments(parser, model_repository=DEFAULT_REPOSITORY)
    parser.add_argument("--dry-run", action="store_true", help="print the command (admin key redacted) and exit")
    return parser.parse_args(argv)


def server_options(args: argparse.Namespace, env: Mapping[str, str]) -> ServerOptions:
    # Never None: without a configured key the restricted groups get one nobody knows.
    return options_from_arguments(args, admin_key=env.get(ADMIN_KEY_ENV) or generate_admin_key())


def container_command(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> list[str]:
    """The ``tritonserver`` command line this entrypoint runs for ``argv`` and ``env``."""
    options = server_options(parse_args(argv), os.environ if env is None else env)
    return [TRITONSERVER, *server_flags(options)]


def repository_problems(repository: Path) -> list[str]:
    """What makes ``repository`` unservable before Triton even starts; empty when it looks servable."""
    if not repository.is_dir():
        return [f"model repository {repository} does not exist: mount one there or build the image's 'baked' target"]
    models = sorted(config.parent.name for config in repository.glob("*/config.pbtxt"))
    if not models:
        return [f"model repository {repository} holds no <model>/config.pbtxt: export one with build/export.py"]
    return [
        f"model {name} has no numeric version folder (e.g. {repository / name / '1'})"
        for name in models
        if not any(child.is_dir() and child.name.isdigit() for child in (repository / name).iterdir())
    ]


def redacted(command: list[str]) -> list[str]:
    """``command`` with the admin key replaced, for printing."""
    marker = f"{ADMIN_KEY_HEADER}="
    return [flag.split(marker, 1)[0] + marker + REDACTED if marker in flag else flag for flag in command]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = [TRITONSERVER, *server_flags(server_options(args, os.environ))]
    if args.dry_run:
        print(" ".join(redacted(command)))
        return 0
    problems = repository_problems(Path(args.model_repository))
    if problems:
        print("\n".join(f"entrypoint: {problem}" for problem in problems), file=sys.stderr)
        return 2
    if not os.environ.get(ADMIN_KEY_ENV):
        print(f"entrypoint: {ADMIN_KEY_ENV} not set: restricted protocols locked with a random key", flush=True)
    os.execvp(TRITONSERVER, command)  # no return: tritonserver replaces this process


if __name__ == "__main__":
    sys.exit(main())
