"""Overload, short version: every well-formed request is answered correctly or refused fast and clearly.

The long version (minutes, full-size model, 2 × saturation) is ``benchmarks/load_test.py``; see RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
from traffic import (
    DEADLINE_PROBE,
    DEADLINE_PROBE_BATCH,
    FIGURES,
    FULL_BATCH,
    MODEL,
    PROBE,
    PROBE_QUEUE,
    TEXT_PROBE,
    Case,
    metric_values,
    send_all,
    strings,
    tensor,
)

from distilbert_serving.load_test import LoadClient, Workload, closed_loop, measure_expected, open_loop, rss_mib

QUEUE_FULL = "Exceeds maximum queue size"
QUEUE_TIMEOUT = "Request timeout expired"


def test_a_burst_over_the_queue_is_answered_or_refused_at_once_with_unavailable(client, hardened_server):
    heavy = np.full((FULL_BATCH, 512), 1000, dtype=np.int64)  # a full batch of maximum length: one execute each
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


def test_text_requests_refused_together_by_a_full_token_queue_each_get_their_error(client, hardened_server):
    """A refused BLS chunk fails every text request with a row in it: each gets an error of its own.

    One error object sent in several responses corrupted the Python backend's shared memory (2.51):
    the stubs and then tritonserver crashed at nearly every overload burst (RELIABILITY.md §3). Here
    heavy token requests keep the probe's queue full while small text requests, merged by the text
    model into shared BLS chunks, go to it through ``overload_text_probe``.
    """
    texts = [b"the film was a delight from start to finish", b"a dull, overlong mess"]
    expected = client.infer(TEXT_PROBE, [strings("text", texts)]).as_numpy("logits")
    heavy = [Case("heavy", PROBE, [tensor("input_ids", np.full((FULL_BATCH, 512), 1000, dtype=np.int64))])]
    flooding = threading.Event()
    flooding.set()

    def flood():
        while flooding.is_set():
            send_all(client, heavy * 2 * PROBE_QUEUE, window=2 * PROBE_QUEUE)

    flooder = threading.Thread(target=flood)
    flooder.start()
    answers, end = [], time.monotonic() + 60
    try:  # rounds until enough text requests met the full queue and some got through between floods
        while time.monotonic() < end and (
            sum(a.status == "UNAVAILABLE" for a in answers) < 50 or all(a.error is not None for a in answers)
        ):
            answers += send_all(client, [Case("texts", TEXT_PROBE, [strings("text", texts)], expected)] * 200, 96)
    finally:
        flooding.clear()
        flooder.join()

    answered = [a for a in answers if a.error is None]
    refused = [a for a in answers if a.status == "UNAVAILABLE" and QUEUE_FULL in a.message]
    others = [f"{a.status} {a.message}" for a in answers if a.error is not None and a not in refused]
    FIGURES["text requests over a full token queue"] = {
        "sent": len(answers),
        "answered": len(answered),
        "refused (UNAVAILABLE queue full)": len(refused),
        "other errors": len(others),
    }
    assert not others, others[:5]
    assert answered and refused
    for answer in answered:
        assert np.abs(answer.result.as_numpy("logits") - expected).max() <= 1e-4
    assert hardened_server.process.poll() is None and hardened_server.stubs_healthy()
    assert client.is_model_ready(TEXT_PROBE) and client.is_model_ready(PROBE)


def test_requests_past_their_deadline_are_dropped_before_their_forward_pass(client, hardened_server):
    """Callers with a 0.5 s deadline, more than the model can serve in it: what expired was not computed."""
    # Requests of 64 rows, each a whole execute (~0.1–0.3 s), sent as the client library sends them:
    # with the deadline stamp the model also drops a request whose deadline would pass in its forward.
    heavy = np.full((DEADLINE_PROBE_BATCH, 512), 1000, dtype=np.int64)
    expected = client.infer(DEADLINE_PROBE, [tensor("input_ids", heavy)]).as_numpy("logits")
    metrics = hardened_server.metrics_url

    def never_computed() -> float:
        # Cancelled in Triton's queue (gRPC cancels a call past its deadline), or dropped by model.py.
        queue = metric_values(metrics, "nv_inference_request_failure", model=DEADLINE_PROBE)
        model = metric_values(metrics, "clf_requests_dropped_total", model=DEADLINE_PROBE)
        return queue.get("CANCELED", 0.0) + sum(model.values())

    before = never_computed()
    cases = [Case("heavy", DEADLINE_PROBE, [tensor("input_ids", heavy)], expected)] * 240
    answers = send_all(client, cases, window=64, deadline_s=0.5)
    # The server learns of a call's end (and drops its request) when it next looks at it: wait until
    # nothing of this model is queued or running any more.
    settled = time.monotonic() + 60
    while time.monotonic() < settled and sum(
        metric_values(metrics, "nv_inference_pending_request_count", model=DEADLINE_PROBE).values()
    ):
        time.sleep(0.2)
    time.sleep(1.0)
    after = never_computed()

    answered = [a for a in answers if a.error is None]
    refused = [a for a in answers if a.status == "UNAVAILABLE" and QUEUE_FULL in a.message]
    timed_out = [a for a in answers if a.status == "UNAVAILABLE" and QUEUE_TIMEOUT in a.message]
    late = [a for a in answers if a.status == "DEADLINE_EXCEEDED"]
    # Answered at once by the model: the deadline (its stamp) would pass before the answer came.
    foreseen = [a for a in answers if a.status == "CANCELLED" and "expired before its forward pass" in a.message]
    known = {id(a) for a in (*refused, *timed_out, *late, *foreseen)}
    others = [f"{a.status} {a.message}" for a in answers if a.error is not None and id(a) not in known]
    expired = len(timed_out) + len(late) + len(foreseen)
    # Timed out in the queue: refused by Triton, never computed; past the client's deadline: computed
    # only if it was already in its forward pass when the deadline passed; foreseen: counted as dropped.
    skipped = len(timed_out) + (after - before)
    FIGURES["deadline 0.5 s under overload"] = {
        "sent": len(cases),
        "answered": len(answered),
        "refused (queue full)": len(refused),
        "expired (queue timeout / client deadline / foreseen by the model)": (
            f"{len(timed_out)} / {len(late)} / {len(foreseen)}"
        ),
        "expired never computed": f"{skipped:.0f} ({skipped / max(expired, 1):.0%})",
        "other errors": len(others),
    }
    assert not others, others[:5]
    for answer in answered:
        assert np.abs(answer.result.as_numpy("logits") - expected).max() <= 1e-4
    assert expired > 0, "no request expired: nothing was tested"
    # Without the drop nearly all of them would be computed. The 90 % is a figure to report
    # (printed above, RELIABILITY.md §2); on two shared cores it lands at 88–96 %, so the guard is lower.
    assert skipped >= 0.75 * expired
    assert hardened_server.stubs_healthy() and client.is_model_ready(DEADLINE_PROBE)


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
            "p50 ms": round(figures.latency.p50_ms or 0),
            "p99 ms": round(figures.latency.p99_ms or 0),
        }
    FIGURES["load memory"] = {"RSS growth after warm-up %": round(growth, 2)}
    for figures in (closed, opened):
        assert figures.wrong == 0 and figures.errors == 0, figures.line()
        assert figures.answered > 0 and figures.latency.p99_ms < 5000, figures.line()
    assert growth < 5.0
    assert hardened_server.stubs_healthy() and hardened_server.is_ready()
