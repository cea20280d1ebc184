"""The CPU cores of a model's instances, shared among those that are computing at the moment.

Triton runs each instance in its own process. A fixed share of the cores (cores ÷ instances) wastes
half the machine at low load: a lone request runs on one instance's share while the other instance
idles (a single text takes about half as long on two threads as on one). So
the instances of one model on one server keep a tiny shared table, one byte per instance, in
``/dev/shm``: an instance marks itself busy before a forward and idle after it, and takes
``cores ÷ busy instances`` torch threads, looking again before each layer. At low load one forward
gets every core; under load every instance is busy and each gets its even share, as before.

Looking again per layer matters: with the thread count fixed per forward, a forward that began alone
kept both cores while the other instance's began beside it, three threads on two cores, and
throughput fell. Setting torch's thread count costs well under a microsecond.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
from collections.abc import Callable, Iterator
from pathlib import Path

FREE, IDLE, BUSY = 0, 1, 2
SHM_FOLDER = Path("/dev/shm")
# How long an OpenMP worker thread spins, once its work is done, before it sleeps. libgomp (torch's
# OpenMP on Linux) spins 300,000 pause instructions by default, ~10 ms. Triton hands consecutive
# requests to alternating instances, so at low load the instance that has just answered would keep a
# core spinning through most of the next instance's forward
# (``benchmarks/benchmark.py idle-spin`` serves both settings). 30,000 spins (~1 ms) still bridge
# the gaps between the parallel regions of one forward, which are microseconds. KMP_BLOCKTIME (ms)
# is the same for Intel's OpenMP runtime.
# They are set before torch loads its OpenMP runtime, unless the environment sets them already.
OPENMP_IDLE_SPIN = {"GOMP_SPINCOUNT": "30000", "KMP_BLOCKTIME": "1"}


def limit_idle_spin(environ: dict = os.environ) -> None:
    """Let OpenMP's idle threads give their core back within ~1 ms (``OPENMP_IDLE_SPIN``); before torch loads."""
    for name, value in OPENMP_IDLE_SPIN.items():
        environ.setdefault(name, value)


def table_path(model_name: str, server_pid: int, folder: Path = SHM_FOLDER) -> Path:
    """The table of ``model_name``'s instances on the server with pid ``server_pid`` (each stub's parent)."""
    return folder / f"{model_name}-busy-instances-{server_pid}"


# A forward whose feed-forward GEMMs are smaller than this (multiply-adds: tokens × dim × hidden_dim)
# runs on one thread: splitting it saves less than OpenMP's fork and join cost, and its second thread
# would take the core another instance's forward is running on. A full-size DistilBERT forward passes
# from four tokens up; a small model's batches of short texts stay on one thread.
MIN_PARALLEL_MACS = 8_000_000


def threads_for(busy: int, cores: int) -> int:
    """Threads for one of ``busy`` forwards running at once on ``cores`` cores."""
    return max(1, cores // max(1, busy))


class SharedCores:
    """This instance's slot in the table of its model's instances, and the threads to compute with."""

    def __init__(self, path: Path, slots: int, cores: int, set_threads: Callable[[int], None]):
        self.path = path
        self.cores = cores
        self.limit = cores
        self.set_threads = set_threads
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # instances start in parallel: claim a slot one at a time
            if os.fstat(fd).st_size < slots:
                os.ftruncate(fd, slots)
            self.table = mmap.mmap(fd, slots)
            free = self.table.find(bytes([FREE]))
            if free < 0:  # more instances than slots (a reload racing the old instances' exit): share the last
                free = slots - 1
            self.slot = free
            self.table[self.slot] = IDLE
        finally:
            # Unlock explicitly: mmap keeps a duplicate of the descriptor, which would hold the lock.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def busy(self, macs: int | None = None) -> Iterator[int]:
        """Mark this instance busy and set the threads for the forward inside (yielded); one thread for
        a forward of fewer than ``MIN_PARALLEL_MACS`` feed-forward multiply-adds (None: unknown, any)."""
        self.table[self.slot] = BUSY
        self.threads = 0
        self.limit = 1 if macs is not None and macs < MIN_PARALLEL_MACS else self.cores
        try:
            yield self.rebalance()
        finally:
            self.table[self.slot] = IDLE

    def rebalance(self) -> int:
        """Set the threads for the instances busy now: called before each layer, so a forward that began
        alone gives the cores back within a layer when another instance starts (and takes them back)."""
        threads = min(threads_for(self.table[:].count(BUSY), self.cores), self.limit)
        if threads != self.threads:
            self.set_threads(threads)
            self.threads = threads
        return threads

    def close(self) -> None:
        """Give the slot back (a model reload's new instances take it); the last instance removes the table."""
        self.table[self.slot] = FREE
        if not self.table[:].strip(bytes([FREE])):
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.table.close()


class FixedCores:
    """A fixed thread count: ``cpu_threads`` set explicitly, a GPU instance, or a lone CPU instance."""

    def __init__(self, threads: int, set_threads: Callable[[int], None]):
        self.threads = threads
        set_threads(threads)

    @contextlib.contextmanager
    def busy(self, macs: int | None = None) -> Iterator[int]:
        yield self.threads

    def rebalance(self) -> int:
        return self.threads

    def close(self) -> None:
        pass


def instance_cores(
    model_name: str, threads: int, shared_cores: int | None, instances: int, set_threads: Callable[[int], None]
) -> SharedCores | FixedCores:
    """The threads of one instance: ``threads`` always, or, when ``shared_cores`` is given and it has peers,
    ``shared_cores`` divided among the ``instances`` busy at each forward (``threads`` until the first)."""
    if shared_cores is None or instances < 2:
        return FixedCores(threads, set_threads)
    set_threads(threads)  # loading and warm-up run beside the other instances' own
    return SharedCores(table_path(model_name, os.getppid()), instances, shared_cores, set_threads)
