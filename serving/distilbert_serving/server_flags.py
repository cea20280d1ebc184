"""The one place that decides how ``tritonserver`` is started.

Both the local launcher (``build/launch.py``) and the container entrypoint
(``docker/entrypoint.sh``) take their flags from here, so a server started on a
laptop and one started in the NGC container behave the same way.

    python docker/server_flags.py --model-repository /models     # prints one flag per line
"""

from __future__ import annotations

import argparse
import os
import secrets
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path

# Protocol groups that let a caller change or inspect the server rather than run inference.
# They are restricted to callers that present the admin key (see ``ServerOptions.admin_key``).
RESTRICTED_PROTOCOLS = "shared-memory,model-repository,statistics,trace,logging"
ADMIN_KEY_HEADER = "triton-admin-key"
ADMIN_KEY_ENV = "TRITON_ADMIN_KEY"
# Over gRPC, Triton reads the key from this metadata key (its own prefix + the HTTP header name).
GRPC_ADMIN_KEY_HEADER = f"triton-grpc-protocol-{ADMIN_KEY_HEADER}"


def generate_admin_key() -> str:
    """A random admin key, for a launcher that restricts by default when none is configured."""
    return secrets.token_urlsafe(32)


def flag(default=MISSING, help: str | None = None, *, path: bool = False):
    """A ``ServerOptions`` field that every entry point takes as a flag: ``--grpc-port`` for ``grpc_port``.

    Its default and help are given here once (``add_server_arguments`` reads them); ``path``: a file or
    folder, made absolute when ``options_from_arguments`` is asked to.
    """
    return field(default=default, metadata={"flag": True, "help": help, "path": path})


@dataclass(frozen=True)
class ServerOptions:
    model_repository: str = flag(path=True)
    grpc_port: int = flag(8001)
    http_port: int = flag(8000)
    metrics_port: int = flag(8002)
    # Seconds tritonserver waits for in-flight requests after SIGTERM before exiting.
    exit_timeout_s: int = flag(30)
    log_verbose: int = flag(0)
    # When set, the protocol groups above need header ``triton-admin-key: <admin_key>``, and models may be
    # loaded while serving by callers presenting it (``model_control_flags``).
    admin_key: str | None = None
    backend_directory: str | None = None
    # gRPC over TLS when both are set (PEM files). With ``grpc_tls_client_ca`` too, clients must
    # present a certificate signed by that CA (mutual TLS). HTTP stays plain: bind it to a trusted network.
    grpc_tls_cert: str | None = flag(None, "PEM server certificate: serve gRPC over TLS", path=True)
    grpc_tls_key: str | None = flag(None, "PEM private key of --grpc-tls-cert", path=True)
    grpc_tls_client_ca: str | None = flag(None, "PEM CA that client certificates must chain to (mutual TLS)", path=True)


def server_flags(options: ServerOptions) -> list[str]:
    """Command-line flags for ``tritonserver`` (the binary name not included)."""
    flags = [
        f"--model-repository={options.model_repository}",
        *model_control_flags(options),
        # Ready means every model loaded; a model that fails to load keeps the server unready.
        "--strict-readiness=true",
        "--exit-on-error=true",
        # config.pbtxt is complete (build/export.py writes every field): without this the Python backend
        # starts one extra stub per model at load only to echo it back, seconds of every (re)start.
        "--disable-auto-complete-config",
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
    if bool(options.grpc_tls_cert) != bool(options.grpc_tls_key):
        raise ValueError("gRPC TLS needs both a certificate and its private key")
    if options.grpc_tls_client_ca and not options.grpc_tls_cert:
        raise ValueError("mutual gRPC TLS (a client CA) needs a server certificate and key too")
    if options.grpc_tls_cert:
        flags += [
            "--grpc-use-ssl=true",
            f"--grpc-server-cert={options.grpc_tls_cert}",
            f"--grpc-server-key={options.grpc_tls_key}",
        ]
        if options.grpc_tls_client_ca:
            flags += ["--grpc-use-ssl-mutual=true", f"--grpc-root-cert={options.grpc_tls_client_ca}"]
    if options.backend_directory:
        flags.append(f"--backend-directory={options.backend_directory}")
    return flags


def model_control_flags(options: ServerOptions) -> list[str]:
    """Live model control where an admin key guards it, else a repository fixed at start.

    With a key: ``explicit``. Every model of the repository loads at start, and a caller with the key loads
    a new version (or a new model) through the repository API while the old one serves; a version that fails
    to load is refused with its error, and the one serving goes on (docs/OPERATIONS.md, rolling out). Explicit
    rather than ``poll``: a poll would load a version folder still being copied, and nobody would hear that
    it failed. Without a key any caller could load or unload models: ``none``, nothing changes until a restart.
    """
    if not options.admin_key:
        return ["--model-control-mode=none"]
    return ["--model-control-mode=explicit", "--load-model=*"]


def add_server_arguments(parser: argparse.ArgumentParser, model_repository: str | None = None) -> None:
    """The server options every entry point takes: the launcher, the container, and this script.

    ``model_repository`` is the default repository; None makes ``--model-repository`` required.
    """
    for option in _flagged():
        name = "--" + option.name.replace("_", "-")
        if option.name == "model_repository":
            parser.add_argument(name, required=model_repository is None, default=model_repository)
        else:
            kind = int if isinstance(option.default, int) else None
            parser.add_argument(name, type=kind, default=option.default, help=option.metadata["help"])


def options_from_arguments(
    args: argparse.Namespace, admin_key: str | None, absolute_paths: bool = False
) -> ServerOptions:
    """``ServerOptions`` from arguments added by ``add_server_arguments``."""

    def value(option: Field):
        given = getattr(args, option.name)
        return str(Path(given).resolve()) if absolute_paths and given and option.metadata["path"] else given

    return ServerOptions(**{option.name: value(option) for option in _flagged()}, admin_key=admin_key)


def _flagged() -> list[Field]:
    return [option for option in fields(ServerOptions) if "flag" in option.metadata]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_arguments(parser)
    args = parser.parse_args(argv)
    options = options_from_arguments(args, admin_key=os.environ.get(ADMIN_KEY_ENV) or None)
    print("\n".join(server_flags(options)))


if __name__ == "__main__":
    main()
