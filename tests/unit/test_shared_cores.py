"""The cores of a model's CPU instances, shared among those computing (``token_model.cores``)."""

import subprocess
import sys
from pathlib import Path

from distilbert_serving.token_model import cores
from distilbert_serving.token_model.cores import (
    BUSY,
    FREE,
    IDLE,
    OPENMP_IDLE_SPIN,
    FixedCores,
    SharedCores,
    instance_cores,
    limit_idle_spin,
    table_path,
    threads_for,
)

MODEL_DIR = Path(cores.__file__).parent


def test_threads_are_the_cores_divided_among_the_busy_forwards():
    assert [threads_for(busy, 2) for busy in (1, 2, 3)] == [2, 1, 1]
    assert [threads_for(busy, 16) for busy in (1, 2, 3, 4)] == [16, 8, 5, 4]


def test_a_lone_forward_takes_every_core_and_busy_peers_share_them(tmp_path):
    path = table_path("clf", 1234, folder=tmp_path)
    calls: dict[str, list[int]] = {"a": [], "b": []}
    a = SharedCores(path, slots=2, cores=2, set_threads=calls["a"].append)
    b = SharedCores(path, slots=2, cores=2, set_threads=calls["b"].append)
    assert (a.slot, b.slot) == (0, 1)

    with a.busy() as alone:
        assert alone == 2
        with b.busy() as beside:
            assert beside == 1
            assert path.read_bytes() == bytes([BUSY, BUSY])
    assert path.read_bytes() == bytes([IDLE, IDLE])
    with b.busy() as after:
        assert after == 2
    assert calls == {"a": [2], "b": [1, 2]}


def test_a_forward_that_began_alone_gives_cores_back_when_a_peer_starts(tmp_path):
    path = table_path("clf", 99, folder=tmp_path)
    calls: list[int] = []
    a = SharedCores(path, slots=2, cores=2, set_threads=calls.append)
    b = SharedCores(path, slots=2, cores=2, set_threads=lambda n: None)
    with a.busy():
        assert a.rebalance() == 2  # unchanged: not set again
        with b.busy():
            assert a.rebalance() == 1
        assert a.rebalance() == 2
    assert calls == [2, 1, 2]


def test_a_closed_instance_frees_its_slot_for_a_reloaded_one(tmp_path):
    path = table_path("clf", 1, folder=tmp_path)
    a, b = (SharedCores(path, 2, 2, lambda n: None) for _ in range(2))
    a.close()
    assert path.read_bytes() == bytes([FREE, IDLE])
    reloaded = SharedCores(path, 2, 2, lambda n: None)
    assert reloaded.slot == 0
    # More instances than slots (a reload racing the old instances' exit): they share the last slot.
    c = SharedCores(path, 2, 2, lambda n: None)
    assert c.slot == 1
    for instance in (b, c):
        instance.close()
    assert path.exists(), "a slot is still taken"
    reloaded.close()
    assert not path.exists(), "the last instance removes the table"


def test_fixed_threads_without_peers_or_when_configured():
    calls: list[int] = []
    lone = instance_cores("clf", threads=2, shared_cores=2, instances=1, set_threads=calls.append)
    configured = instance_cores("clf", threads=3, shared_cores=None, instances=2, set_threads=calls.append)
    assert isinstance(lone, FixedCores) and isinstance(configured, FixedCores)
    with lone.busy() as threads:
        assert threads == 2
    assert calls == [2, 3]


def test_idle_spin_limit_is_a_default_the_environment_can_override():
    environ = {"GOMP_SPINCOUNT": "300000"}
    limit_idle_spin(environ)
    assert environ == OPENMP_IDLE_SPIN | {"GOMP_SPINCOUNT": "300000"}


def test_the_model_limits_idle_spin_before_anything_loads_torch():
    # OpenMP reads its environment once, when torch loads it: the limit must come first.
    source = (MODEL_DIR / "model.py").read_text()
    assert source.index("limit_idle_spin()") < source.index("import torch")
    probe = "import sys; import distilbert_serving.token_model.cores; print('torch' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=MODEL_DIR, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"
