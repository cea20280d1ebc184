"""Overload, short version: every well-formed request is answered correctly or refused fast and clearly.

The long version (minutes, full-size model, 2 × saturation) is ``benchmarks/load_test.py``; see RELIABILITY.md.
"""

from __future__ import annotations

import asyncio

import numpy as np
from traffic import FIGURES, MODEL, PROBE, PROBE_QUEUE, Case, send_all, tensor

from load_test import LoadClient, Workload, closed_loop, measure_expected, open_loop, rss_mib

QUEUE_FULL = "Exceeds maximum queue size"


def test_a_burst_over_the_queue_is_answered_or_refused_at_once_with_unavailable(client, hardened_server):
    heavy = np.full((64, 512), 1000, dtype=np.int64)  # a full batch of maximum length: one execute each
    expected = client.infer(PROBE, [tensor("input_ids", heavy)]).as_numpy("logits")
    burst = 10 * PROBE_QUEUE
    answers = send_all(client, [Case("heavy", PROBE, [tensor("input_ids", heavy)], expected)] * burst, window=burst)

    answered = [a for a in answers if a.error is None]
    rejected = [a for a in answers if a.status == "UNAVAILABLE" and QUEUE_FULL in a.message]
    others = [f"{a.status} {a.message}" for a in answers if a.error is not None and a not in rejected]
    FIGURES["queue burst"] = {
        "sent": burst,
        "answered": len(answered),
        "rejected (UNAVAILABLE queue full)": len(rejected),
        "other errors": len(others),
        "slowest rejection ms": round(max(a.seconds for a in rejected) * 1e3) if rejected else None,
    }
    assert not others, others[:5]
    assert answered and rejected
    for answer in answered:
        assert np.abs(answer.result.as_numpy("logits") - expected).max() <= 1e-4
    # Refused at once, not after waiting: a rejection costs no more than one round trip.
    assert max(a.seconds for a in rejected) < 1.0
    assert hardened_server.stubs_healthy() and client.is_model_ready(PROBE)


def test_closed_and_open_loop_at_twice_saturation_lose_nothing_and_memory_stays_flat(
    hardened_server, tls_files, tiny_checkpoints
):
    async def run():
        load = LoadClient(f"localhost:{hardened_server.options.grpc_port}", MODEL, str(tls_files[0]))
        try:
            workload = Workload.from_texts(tiny_checkpoints["single_label_classification"], 100)
            await measure_expected(load, workload)
            saturation = await closed_loop(load, workload, 16, 4.0, name="saturation c=16")
            rate = 2 * saturation.answered_per_s
            # Warm-up: the same two loads, so that buffers sized by the load are already allocated.
            await closed_loop(load, workload, 32, 4.0, name="warm-up")
            await open_loop(load, workload, rate, 4.0, name="warm-up")
            baseline = rss_mib(hardened_server.process.pid)
            closed = await closed_loop(load, workload, 32, 8.0, name="closed c=32")
            opened = await open_loop(load, workload, rate, 8.0, name=f"open {rate:.0f}/s")
            growth = (rss_mib(hardened_server.process.pid) / baseline - 1) * 100
            return saturation, closed, opened, growth
        finally:
            await load.close()

    saturation, closed, opened, growth = asyncio.run(run())
    for figures in (saturation, closed, opened):
        FIGURES[f"load {figures.name}"] = {
            "sent": figures.sent,
            "answered": figures.answered,
            "rejected": figures.rejected,
            "wrong": figures.wrong,
            "errors": figures.errors,
            "p50 ms": round(figures.p50_ms or 0),
            "p99 ms": round(figures.p99_ms or 0),
        }
    FIGURES["load memory"] = {"RSS growth after warm-up %": round(growth, 2)}
    for figures in (closed, opened):
        assert figures.wrong == 0 and figures.errors == 0, figures.line()
        assert figures.answered > 0 and figures.p99_ms < 5000, figures.line()
    assert growth < 5.0
    assert hardened_server.stubs_healthy() and hardened_server.is_ready()
