"""The one place that decides how ``tritonserver`` is started.

Both the local launcher (``build/launch.py``) and the container entrypoint
(``docker/entrypoint.sh``) take their flags from here, so a server started on a
laptop and one started in the NGC container behave the same way.

    python build/server_flags.py --model-repository /models     # prints one flag per line
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

# Protocol groups that let a caller change or inspect the server rather than run inference.
# They are restricted to callers that present the admin key (see ``ServerOptions.admin_key``).
RESTRICTED_PROTOCOLS = "shared-memory,model-repository,statistics,trace,logging"
ADMIN_KEY_HEADER = "triton-admin-key"
ADMIN_KEY_ENV = "TRITON_ADMIN_KEY"


@dataclass(frozen=True)
class ServerOptions:
    model_repository: str
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    # Seconds tritonserver waits for in-flight requests after SIGTERM before exiting.
    exit_timeout_s: int = 30
    log_verbose: int = 0
    # When set, the protocol groups above need header ``triton-admin-key: <admin_key>``.
    admin_key: str | None = None
    backend_directory: str | None = None


def server_flags(options: ServerOptions) -> list[str]:
    """Command-line flags for ``tritonserver`` (the binary name not included)."""
    flags = [
        f"--model-repository={options.model_repository}",
        # The repository is fixed at start: no client can load, unload or swap models.
        "--model-control-mode=none",
        # Ready means every model loaded; a model that fails to load keeps the server unready.
        "--strict-readiness=true",
        "--exit-on-error=true",
        f"--exit-timeout-secs={options.exit_timeout_s}",
        f"--grpc-port={options.grpc_port}",
        f"--http-port={options.http_port}",
        f"--metrics-port={options.metrics_port}",
        "--allow-metrics=true",
        "--allow-gpu-metrics=true",
        f"--log-verbose={options.log_verbose}",
    ]
    if options.admin_key:
        restriction = f"{RESTRICTED_PROTOCOLS}:{ADMIN_KEY_HEADER}={options.admin_key}"
        flags += [f"--grpc-restricted-protocol={restriction}", f"--http-restricted-api={restriction}"]
    if options.backend_directory:
        flags.append(f"--backend-directory={options.backend_directory}")
    return flags


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-repository", required=True)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--exit-timeout-s", type=int, default=30)
    args = parser.parse_args(argv)
    options = ServerOptions(
        model_repository=args.model_repository,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        exit_timeout_s=args.exit_timeout_s,
        admin_key=os.environ.get(ADMIN_KEY_ENV) or None,
    )
    print("\n".join(server_flags(options)))


if __name__ == "__main__":
    main()
