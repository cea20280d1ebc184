"""Start the real ``tritonserver`` from the ``nvidia-pytriton`` wheel on a model repository.

    python build/launch.py --model-repository model_repository \
        --grpc-port 8001 --http-port 8000 --metrics-port 8002

The wheel carries a full Triton Inference Server build and one Python-backend stub
per Python version. This module assembles a backend directory with the stub of the
running interpreter, fixes the library path, starts the server with the flags from
``server_flags``, waits until ``/v2/health/ready`` answers, and on SIGINT/SIGTERM
stops it the way Triton intends: SIGTERM, then up to ``--exit-timeout-s`` seconds
for in-flight requests to finish.

For development only: production runs the NGC container (see ``docker/``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .backends import install as install_backends
from .server_flags import (
    ADMIN_KEY_ENV,
    ADMIN_KEY_HEADER,
    GRPC_ADMIN_KEY_HEADER,
    RESTRICTED_PROTOCOLS,
    ServerOptions,
    add_server_arguments,
    generate_admin_key,
    options_from_arguments,
    server_flags,
)


class ServerStartError(RuntimeError):
    """The server exited or did not become ready in time."""


def free_port() -> int:
    """A TCP port free on this host now: for servers started beside others (tests, benchmarks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def options_on_free_ports(model_repository, **options) -> ServerOptions:
    """Server options with every port free now: for servers started beside others (tests, benchmarks)."""
    ports = {"grpc_port": free_port(), "http_port": free_port(), "metrics_port": free_port()}
    return ServerOptions(model_repository=str(model_repository), **ports, **options)


# A folder laid out like the wheel's site-packages (pytriton/tritonserver/..., nvidia_pytriton.libs/)
# used instead of the installed wheel: the trimmed copy benchmarks/gpu_bundle.py ships to a GPU machine.
SERVER_HOME_ENV = "TRITONSERVER_HOME"


def pytriton_root() -> Path:
    if home := os.environ.get(SERVER_HOME_ENV):
        return Path(home) / "pytriton"
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError(
            "tritonserver comes from the nvidia-pytriton wheel: pip install --no-deps nvidia-pytriton==0.7.0"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def tritonserver_binary() -> Path:
    return pytriton_root() / "tritonserver" / "bin" / "tritonserver"


def prepare_backend_directory(workdir: Path) -> Path:
    """Copy the Python backend, put the running interpreter's stub beside it, and add this package's backends."""
    triton = pytriton_root() / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = triton / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise ServerStartError(f"the nvidia-pytriton wheel has no Python-backend stub for Python {version}")
    backends = workdir / "backends"
    shutil.copytree(triton / "backends" / "python", backends / "python", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(stub, backends / "python" / "triton_python_backend_stub")
    install_backends(backends)  # this package's backends: the models' code
    return backends


# sysconfig fills its table on first use; two threads doing so at once (servers started side by side)
# can read it half-filled (CPython 3.11: LIBDIR None). Filled here, at import, once.
LIBDIR = sysconfig.get_config_var("LIBDIR")


def server_environment() -> dict[str, str]:
    env = dict(os.environ)
    # The stub links libpython; the system copy (Debian's) can shadow this interpreter's
    # and break extension modules, so this interpreter's LIBDIR goes first.
    libdirs = [LIBDIR, str(pytriton_root().parent / "nvidia_pytriton.libs")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*libdirs, env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
    # The stub imports model.py's packages through the first python3 on PATH: make it ours.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # Model hubs are unreachable from a server; never let a model load hang on one.
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


STUB_NAME = "triton_python_backend_stub"
# The stub's shared memory with the server: /dev/shm/<prefix><uuid>, named on the stub's command line.
SHM_REGION_PREFIX = "triton_python_backend_shm_region_"
# What a stopping tritonserver logs once no inference is in flight (core src/server.cc, 2.51 to 2.62).
IN_FLIGHT_DONE = b"Found 0 model versions that have in-flight inferences"


def child_processes(pid: int) -> list[tuple[int, str, str]]:
    """(pid, state, command line) of each child of ``pid``, from /proc; state ``Z`` is a dead, unreaped child."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # The command name (field 2) is in parentheses and may hold spaces: parse after it.
            state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
            if int(ppid) == pid:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                children.append((int(entry.name), state, cmdline or stat[stat.index("(") + 1 : stat.rindex(")")]))
        except (OSError, ValueError):
            continue  # the process ended while being read
    return children


class LocalServer:
    """A ``tritonserver`` child process; use as a context manager or call start/stop."""

    def __init__(self, options: ServerOptions, log_path: Path | None = None):
        self.options = options
        self._workdir = Path(tempfile.mkdtemp(prefix="tritonserver-"))
        self.log_path = log_path or self._workdir / "tritonserver.log"
        self.process: subprocess.Popen | None = None
        # Python-backend stubs running when the server became ready (one per model instance).
        self.ready_stubs: int = 0
        self._shm_regions: set[str] = set()

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.options.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.options.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.options.metrics_port}/metrics"

    def command(self) -> list[str]:
        backends = prepare_backend_directory(self._workdir)
        options = ServerOptions(**{**self.options.__dict__, "backend_directory": str(backends)})
        return [str(tritonserver_binary()), *server_flags(options)]

    def start(self, timeout_s: float = 180.0) -> LocalServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=server_environment(), start_new_session=True
        )
        log.close()
        self.wait_until_ready(timeout_s)
        return self

    def is_ready(self) -> bool:
        """Ready, and every endpoint listening: Triton opens the metrics port after HTTP says ready."""
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as response:
                if response.status != 200:
                    return False
            with socket.create_connection(("127.0.0.1", self.options.metrics_port), timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def wait_until_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerStartError(f"tritonserver exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.is_ready():
                self.ready_stubs = len(self.live_stubs())
                self._shm_regions = self.stub_shm_regions()
                return
            time.sleep(0.25)
        self.stop()
        raise ServerStartError(f"tritonserver not ready after {timeout_s:.0f}s:\n{self.log_tail()}")

    def live_stubs(self) -> list[int]:
        """Pids of this server's Python-backend stubs that are still running."""
        if self.process is None or self.process.poll() is not None:
            return []
        return [pid for pid, state, cmd in child_processes(self.process.pid) if STUB_NAME in cmd and state != "Z"]

    def stub_shm_regions(self) -> set[str]:
        """Names of the shared-memory regions (``/dev/shm``) of this server's stubs, from their command lines."""
        if self.process is None:
            return set()
        return {
            word
            for _, _, cmd in child_processes(self.process.pid)
            if STUB_NAME in cmd
            for word in cmd.split()
            if word.startswith(SHM_REGION_PREFIX)
        }

    def stubs_healthy(self) -> bool:
        """False once a stub has died. Triton 2.51 neither restarts it nor marks its model unready:
        the model answers every request with INTERNAL "Stub process '<instance>' is not healthy." (see RELIABILITY.md)."""
        return len(self.live_stubs()) >= self.ready_stubs

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM, wait for in-flight requests (Triton's exit timeout), then SIGKILL as a last resort."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s or self.options.exit_timeout_s + 15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # Stubs are in the server's process group; none may outlive it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        # A server killed (or a model that never unloaded, its stub dead) leaves its stubs' regions behind.
        # So does the token model's table of busy instances (token_model/cores.py), named by the server's pid.
        leftovers = [Path("/dev/shm") / region for region in self._shm_regions]
        leftovers += Path("/dev/shm").glob(f"*-busy-instances-{self.process.pid}")
        for leftover in leftovers:
            with contextlib.suppress(OSError):
                leftover.unlink()
        shutil.rmtree(self._workdir / "backends", ignore_errors=True)
        return self.process.returncode

    def stop_after_in_flight(self, grace_s: float) -> int | None:
        """Stop a server one of whose stubs died: SIGTERM, then kill it as soon as no inference is in flight.

        Such a server never exits before its exit timeout (the dead stub's model does not unload), but
        Triton logs when no model has in-flight inferences any more: waiting longer serves no caller.
        ``grace_s`` bounds the wait for in-flight inferences of the healthy models.
        """
        if self.process is None or self.process.poll() is not None:
            return self.stop()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self.process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), open(self.log_path, "rb") as log:
                log.seek(offset)
                if IN_FLIGHT_DONE in log.read():
                    break
            time.sleep(0.1)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        return self.stop()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_arguments(parser, model_repository="model_repository")
    parser.add_argument("--startup-timeout-s", type=float, default=300)
    parser.add_argument(
        "--no-restart-on-stub-death",
        action="store_true",
        help="do not restart tritonserver when a Python-backend stub dies (Triton itself does not recover it)",
    )
    parser.add_argument(
        "--no-restart-on-crash",
        action="store_true",
        help="exit, instead of starting it again, when tritonserver itself dies (a signal or a non-zero exit)",
    )
    parser.add_argument(
        "--restart-grace-s",
        type=float,
        default=5.0,
        help="after a stub died: at most this long for the in-flight inferences of the healthy models, then the "
        "server is killed and started again (by itself it waits --exit-timeout-s: the dead model never unloads)",
    )
    parser.add_argument(
        "--unrestricted",
        action="store_true",
        help=f"do not restrict {RESTRICTED_PROTOCOLS} (default: restricted, key from ${ADMIN_KEY_ENV} or generated)",
    )
    args = parser.parse_args(argv)

    admin_key = None if args.unrestricted else os.environ.get(ADMIN_KEY_ENV) or None
    options = options_from_arguments(args, admin_key, absolute_paths=True)
    server = LocalServer(options)
    if args.unrestricted:
        print(f"WARNING: --unrestricted: any caller can use {RESTRICTED_PROTOCOLS}", flush=True)
    elif admin_key is None:
        # Restricted by default: a generated key, readable by this user only, never printed.
        key_file = server.log_path.parent / "admin-key"
        key_file.touch(mode=0o600)
        key_file.write_text(generate_admin_key())
        server.options = ServerOptions(**{**options.__dict__, "admin_key": key_file.read_text()})
        print(
            f"{RESTRICTED_PROTOCOLS} need header {ADMIN_KEY_HEADER} (HTTP) or {GRPC_ADMIN_KEY_HEADER} (gRPC): "
            f"the key is in {key_file} "
            f"(set ${ADMIN_KEY_ENV} to choose it)",
            flush=True,
        )
    else:
        print(
            f"{RESTRICTED_PROTOCOLS} need header {ADMIN_KEY_HEADER} (HTTP) or {GRPC_ADMIN_KEY_HEADER} (gRPC) "
            f"= ${ADMIN_KEY_ENV}",
            flush=True,
        )
    stopping = False

    def request_stop(signum, _frame):
        nonlocal stopping
        if not stopping:
            stopping = True
            print(f"\n{signal.Signals(signum).name}: stopping tritonserver (in-flight requests finish)...", flush=True)
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(f"starting tritonserver on {options.model_repository} (log: {server.log_path})", flush=True)
    try:
        server.start(timeout_s=args.startup_timeout_s)
        print(
            f"ready: gRPC {server.grpc_url}  HTTP {server.http_url}  metrics {server.metrics_url}\nCtrl-C stops it.",
            flush=True,
        )

        def start_again() -> None:
            server.start(timeout_s=args.startup_timeout_s)
            print(f"ready again: gRPC {server.grpc_url}  HTTP {server.http_url}", flush=True)

        crashes: list[float] = []
        while True:
            while server.process.poll() is None:
                # Every request routed to a dead stub fails until the restart: notice it fast.
                time.sleep(0.25)
                if not args.no_restart_on_stub_death and server.process.poll() is None and not server.stubs_healthy():
                    print("a Python-backend stub died: restarting tritonserver (in-flight requests finish)", flush=True)
                    code = server.stop_after_in_flight(args.restart_grace_s)
                    print(f"tritonserver stopped (exit code {code})", flush=True)
                    if code is not None and code < 0 and -code not in (signal.SIGTERM, signal.SIGKILL):
                        break  # the server itself crashed and took its stubs along: a crash, counted below
                    start_again()
            code = server.process.returncode
            print(f"tritonserver exited with {code}:\n{server.log_tail()}", file=sys.stderr, flush=True)
            # A crash (e.g. the Python backend's SIGSEGV under load, docs/RELIABILITY.md) is restarted like a
            # dead stub, as an orchestrator would; a crash loop (3 within 5 minutes) is not.
            crashes = [t for t in crashes if time.monotonic() - t < 300] + [time.monotonic()]
            if code == 0 or args.no_restart_on_crash or len(crashes) >= 3:
                return code or 1
            server.stop()  # its stubs and their shared memory go too
            print("tritonserver crashed: starting it again", flush=True)
            start_again()
    except KeyboardInterrupt:
        code = server.stop()
        print(f"tritonserver stopped (exit code {code})", flush=True)
        return 0
    except ServerStartError as error:
        print(error, file=sys.stderr)
        server.stop()
        return 1


if __name__ == "__main__":
    sys.exit(main())
