"""``distilbert-classify`` end to end against a real server, and its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distilbert_client import cli
from distilbert_serving.corpus import english_texts
from distilbert_serving.launch import free_port
from helpers import MODELS, reference_logits, tokenizer

SINGLE = "single_label_classification"
CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"


def run_cli(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI in its own process, as an operator runs it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CLIENT_DIR), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "distilbert_client", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def common(server, tiny_checkpoints) -> list[str]:
    return ["--url", server.grpc_url, "--tokenizer", str(tiny_checkpoints[SINGLE])]


def test_cli_classifies_a_file_of_1200_lines_in_order_with_a_progress_bar(common, tiny_checkpoints, tmp_path):
    texts = english_texts(1200, seed=11)
    lines = [texts[i] if i % 100 != 50 else "" for i in range(len(texts))]  # blank lines are skipped
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(lines) + "\n")
    output = tmp_path / "results.jsonl"

    done = run_cli(*common, "--file", str(source), "--output", str(output))

    assert done.returncode == 0, done.stderr
    assert "1188/1188" in done.stderr, "the progress bar reached the end"
    records = [json.loads(line) for line in output.read_text().splitlines()]
    expected_lines = [number for number, text in enumerate(lines, start=1) if text]
    assert [r["line"] for r in records] == expected_lines
    assert [r["text"] for r in records] == [lines[n - 1] for n in expected_lines]
    checkpoint = tiny_checkpoints[SINGLE]
    sample = records[::25]
    expected = reference_logits(
        checkpoint, tokenizer(checkpoint)([r["text"] for r in sample], truncation=True)["input_ids"]
    )
    assert np.abs(np.array([r["logits"] for r in sample]) - expected).max() <= 1e-4
    assert {r["label"] for r in records} <= {"negative", "neutral", "positive"}
    assert all(r["label"] == max(r["scores"], key=r["scores"].get) for r in records)


def test_cli_reads_arguments_and_stdin_and_writes_a_table(common):
    from_args = run_cli(*common, "--format", "table", "--top-k", "2", "I love this movie", "I hate it")
    from_stdin = run_cli(*common, stdin="I love this movie\nI hate it\n")

    assert from_args.returncode == 0, from_args.stderr
    rows = from_args.stdout.splitlines()
    assert rows[0].split() == ["text", "prediction", "scores"] and rows[1].startswith("---")
    rows = rows[2:]
    assert len(rows) == 2 and rows[0].startswith("I love this movie") and rows[1].startswith("I hate it")
    assert all(row.count("=") == 2 for row in rows), "two labels with their scores"
    assert from_stdin.returncode == 0, from_stdin.stderr
    records = [json.loads(line) for line in from_stdin.stdout.splitlines()]
    assert [(r["line"], r["text"]) for r in records] == [(1, "I love this movie"), (2, "I hate it")]


def test_cli_reads_text_pairs_from_jsonl_and_labels_above_threshold_for_multi_label(server, tiny_checkpoints, tmp_path):
    source = tmp_path / "pairs.jsonl"
    source.write_text("\n".join(json.dumps({"id": i, "body": f"first {i}", "other": f"second {i}"}) for i in range(5)))

    done = run_cli(
        *("--url", server.grpc_url, "--tokenizer", str(tiny_checkpoints["multi_label_classification"])),
        *("--model", MODELS["multi_label_classification"], "--file", str(source), "--no-progress"),
        *("--text-field", "body", "--pair-field", "other", "--threshold", "0.42"),
    )

    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["text"], r["text_pair"]) for r in records] == [(f"first {i}", f"second {i}") for i in range(5)]
    assert all(
        r["labels"] == [k for k, v in sorted(r["scores"].items(), key=lambda kv: -kv[1]) if v >= 0.42] for r in records
    )


def test_cli_exits_3_when_server_is_unreachable(tiny_checkpoints):
    done = run_cli(
        "--url", f"127.0.0.1:{free_port()}", "--tokenizer", str(tiny_checkpoints[SINGLE]), "--retries", "1", "hi"
    )

    assert done.returncode == cli.EXIT_UNAVAILABLE == 3
    assert "ServerUnavailableError" in done.stderr and done.stdout == ""


def test_cli_exits_2_when_a_text_is_too_long_without_truncation(common, capsys):
    long_text = " ".join(english_texts(300, seed=3))

    code = cli.main([*common, "--truncation", "none", long_text])

    assert code == cli.EXIT_BAD_INPUT == 2
    assert "exceeds the model's maximum of 512" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ('{"text": "fine"}\nnot json\n', "line 2: not JSON"),
        ('{"body": "no text field"}\n', "no string field 'text'"),
        (None, "cannot read"),
    ],
    ids=["malformed_jsonl", "missing_text_field", "missing_file"],
)
def test_cli_exits_2_when_the_input_file_is_bad(common, tmp_path, capsys, content, phrase):
    source = tmp_path / "input.jsonl"
    if content is not None:
        source.write_text(content)

    code = cli.main([*common, "--file", str(source), "--no-progress"])

    assert code == cli.EXIT_BAD_INPUT
    assert phrase in capsys.readouterr().err


def test_cli_exits_4_when_model_is_missing(common, capsys):
    assert cli.main([*common, "--model", "no_such_model", "hi"]) == cli.EXIT_MODEL_NOT_READY == 4
    assert "no_such_model" in capsys.readouterr().err


def test_cli_exits_5_when_deadline_is_too_short(common, capsys):
    long_text = " ".join(english_texts(300, seed=3))

    assert cli.main([*common, "--timeout", "0.01", *[long_text] * 64]) == cli.EXIT_DEADLINE == 5
    assert "DeadlineExceededError" in capsys.readouterr().err


def test_cli_exits_2_when_tokenizer_does_not_match_the_model(server, tmp_path, tiny_checkpoints, capsys):
    from transformers import AutoTokenizer

    mismatched = AutoTokenizer.from_pretrained(tiny_checkpoints[SINGLE], model_max_length=1024)
    mismatched.save_pretrained(tmp_path / "tokenizer")

    code = cli.main(["--url", server.grpc_url, "--tokenizer", str(tmp_path / "tokenizer"), "hi"])

    assert code == cli.EXIT_BAD_INPUT
    assert "allows sequences of 1024 tokens" in capsys.readouterr().err
