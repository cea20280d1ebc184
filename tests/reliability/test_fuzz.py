"""Fuzzed bad input: 1,200 requests, well-formed ones mixed with 21 kinds of malformed ones, sent concurrently.

Every malformed request must get INVALID_ARGUMENT with a message naming what is wrong, every
well-formed one the in-process answer; afterwards the server is live, ready and has all its stubs.
"""

from __future__ import annotations

import random
import time

import numpy as np
from traffic import FIGURES, FULL_BATCH, MODEL, TEXT_MODEL, Case, judge, send_all, strings, tensor

from distilbert_serving.corpus import english_texts
from helpers import reference_logits, token_ids

TOTAL = 1200
WINDOW = 48  # requests in flight at once: well under the queue of 128, so no well-formed one is refused
MAX_LENGTH, VOCAB, MAX_BATCH = 512, 30522, FULL_BATCH


def ids(rows) -> np.ndarray:
    return np.array(rows, dtype=np.int64)


def malformed_kinds(rng: random.Random) -> dict:
    """kind → (model, inputs, parameters, phrase); inputs built once per kind and shared by its requests."""
    short = ids([[101, 2000, 102]])
    huge = np.full((1, 2_000_000), 1000, dtype=np.int64)  # 16 MB of ids
    long_text = " ".join(["word"] * 700).encode()
    return {
        "wrong_dtype_int32": (MODEL, [tensor("input_ids", short.astype(np.int32), "INT32")], None, "expects 'INT64'"),
        "wrong_dtype_fp32": (MODEL, [tensor("input_ids", short.astype(np.float32), "FP32")], None, "expects 'INT64'"),
        "wrong_rank": (MODEL, [tensor("input_ids", np.full((1, 2, 3), 1000, dtype=np.int64))], None, "input_ids"),
        "negative_id": (
            MODEL,
            [tensor("input_ids", ids([[101, -rng.randint(1, 9), 102]]))],
            None,
            "outside the vocabulary",
        ),
        "out_of_vocab_id": (
            MODEL,
            [tensor("input_ids", ids([[101, VOCAB + rng.randint(0, 9), 102]]))],
            None,
            f"outside the vocabulary [0, {VOCAB})",
        ),
        "mask_shape_mismatch": (
            MODEL,
            [tensor("input_ids", short), tensor("attention_mask", ids([[1, 1]]))],
            None,
            "attention_mask shape [1, 2] differs from input_ids shape [1, 3]",
        ),
        "mask_value_not_binary": (
            MODEL,
            [tensor("input_ids", short), tensor("attention_mask", ids([[1, 2, 1]]))],
            None,
            "must be 0 or 1",
        ),
        "mask_all_zero": (
            MODEL,
            [tensor("input_ids", short), tensor("attention_mask", ids([[0, 0, 0]]))],
            None,
            "all zeros",
        ),
        "zero_length": (MODEL, [tensor("input_ids", np.zeros((1, 0), dtype=np.int64))], None, "at least 1 token"),
        "over_max_length": (
            MODEL,
            [tensor("input_ids", np.full((1, MAX_LENGTH + 1), 1000, dtype=np.int64))],
            None,
            f"exceeds the model's maximum of {MAX_LENGTH}",
        ),
        "batch_over_max_batch_size": (
            MODEL,
            [tensor("input_ids", np.full((MAX_BATCH + 1, 4), 1000, dtype=np.int64))],
            None,
            f"batch-size must be <= {MAX_BATCH}",
        ),
        "huge_payload_16MB": (MODEL, [tensor("input_ids", huge)], None, f"exceeds the model's maximum of {MAX_LENGTH}"),
        "missing_input_ids": (MODEL, [tensor("attention_mask", ids([[1, 1]]))], None, "input_ids"),
        "unknown_input": (
            MODEL,
            [tensor("input_ids", ids([[101, 102]])), tensor("token_type_ids", ids([[0, 0]]))],
            None,
            "token_type_ids",
        ),
        "text_empty": (TEXT_MODEL, [strings("text", [b""])], None, "is empty or only whitespace"),
        "text_whitespace": (TEXT_MODEL, [strings("text", [b" \t\n"])], None, "is empty or only whitespace"),
        "text_not_utf8": (TEXT_MODEL, [strings("text", [b"caf\xe9 \xff\xfe"])], None, "is not valid UTF-8"),
        "text_over_max_length": (
            TEXT_MODEL,
            [strings("text", [long_text])],
            {"truncation": False},
            f"over the model's maximum of {MAX_LENGTH}",
        ),
        "text_missing": (TEXT_MODEL, [strings("text_pair", [b"only a pair"])], None, "text"),
        "text_pair_rows_mismatch": (
            TEXT_MODEL,
            [strings("text", [b"one", b"two"]), strings("text_pair", [b"only one"])],
            None,
            "batch size does not match other inputs",  # Triton refuses it before the model
        ),
        "text_bad_option": (
            TEXT_MODEL,
            [strings("text", [b"a fine text"])],
            {"truncation_side": "middle"},
            "truncation_side must be one of",
        ),
    }


def well_formed_token_case(rng: random.Random, rows: list[list[int]], expected: dict) -> Case:
    """1–4 real texts; several rows are right-padded with an attention mask."""
    chosen = rng.sample(range(len(rows)), rng.randint(1, 4))
    if len(chosen) == 1 and rng.random() < 0.5:
        return Case("token_ok", MODEL, [tensor("input_ids", ids([rows[chosen[0]]]))], expected[chosen[0]][None])
    width = max(len(rows[i]) for i in chosen)
    padded = ids([rows[i] + [0] * (width - len(rows[i])) for i in chosen])
    mask = ids([[1] * len(rows[i]) + [0] * (width - len(rows[i])) for i in chosen])
    inputs = [tensor("input_ids", padded), tensor("attention_mask", mask)]
    return Case("token_ok_padded", MODEL, inputs, np.stack([expected[i] for i in chosen]))


def well_formed_text_case(rng: random.Random, texts: list[str], expected: dict) -> Case:
    chosen = rng.sample(range(len(texts)), rng.randint(1, 3))
    inputs = [strings("text", [texts[i].encode() for i in chosen])]
    return Case("text_ok", TEXT_MODEL, inputs, np.stack([expected[i] for i in chosen]))


def test_fuzzed_requests_get_clear_errors_or_correct_answers_and_the_server_survives(
    hardened_server, client, tiny_checkpoints
):
    rng = random.Random(7)
    checkpoint = tiny_checkpoints["single_label_classification"]
    texts = english_texts(120)
    rows = token_ids(checkpoint, texts)
    reference = reference_logits(checkpoint, rows)
    expected = {i: reference[i] for i in range(len(rows))}

    kinds = malformed_kinds(rng)
    cases: list[Case] = []
    for kind, (model, inputs, parameters, phrase) in kinds.items():
        # Every kind at least 15 times (the 16 MB one 4 times: it is about size, not count).
        for _ in range(4 if kind.startswith("huge") else 15):
            cases.append(Case(kind, model, inputs, phrase=phrase, parameters=parameters))
    while len(cases) < TOTAL:
        if rng.random() < 0.75:
            cases.append(well_formed_token_case(rng, rows, expected))
        else:
            cases.append(well_formed_text_case(rng, texts, expected))
    rng.shuffle(cases)

    started = time.perf_counter()
    answers = send_all(client, cases, window=WINDOW)
    seconds = time.perf_counter() - started
    problems = [p for case, answer in zip(cases, answers, strict=True) if (p := judge(case, answer))]

    malformed = [c for c in cases if c.malformed]
    stubs_healthy = hardened_server.stubs_healthy()
    ready = client.is_server_ready() and client.is_model_ready(MODEL) and client.is_model_ready(TEXT_MODEL)
    FIGURES["fuzz"] = {
        "requests": len(cases),
        "malformed kinds": len(kinds),
        "malformed": len(malformed),
        "malformed with a clear error": f"{sum(1 for c, a in zip(cases, answers, strict=True) if c.malformed and not judge(c, a))}/{len(malformed)}",
        "well-formed answered correctly": f"{sum(1 for c, a in zip(cases, answers, strict=True) if not c.malformed and not judge(c, a))}/{len(cases) - len(malformed)}",
        "server alive": hardened_server.process.poll() is None,
        "stubs healthy": stubs_healthy,
        "ready afterwards": ready,
        "seconds": round(seconds, 1),
    }
    assert not problems, f"{len(problems)} wrong answers, e.g.:\n" + "\n".join(problems[:15])
    assert len(kinds) >= 12 and len(cases) >= 1000
    assert hardened_server.process.poll() is None and stubs_healthy and ready
