"""The CLI's argument checks and exit codes that need no server."""

from __future__ import annotations

import inspect

import pytest

from distilbert_client import Classifier, cli


def test_cli_exits_2_when_no_tokenizer_is_given(capsys, monkeypatch):
    monkeypatch.delenv("DISTILBERT_TOKENIZER", raising=False)

    assert cli.main(["hello"]) == cli.EXIT_BAD_INPUT
    assert "--tokenizer is required" in capsys.readouterr().err


def test_cli_exits_2_when_texts_and_file_are_both_given(capsys, tmp_path):
    assert cli.main(["--tokenizer", "t", "--file", str(tmp_path / "f.txt"), "hello"]) == cli.EXIT_BAD_INPUT
    assert "not both" in capsys.readouterr().err


def test_cli_exits_2_when_tokenizer_cannot_be_loaded(capsys, tmp_path):
    assert cli.main(["--tokenizer", str(tmp_path / "missing"), "--url", "127.0.0.1:1", "hello"]) == cli.EXIT_BAD_INPUT
    assert "cannot load a tokenizer" in capsys.readouterr().err


def test_cli_exit_codes_are_distinct_per_kind_of_failure():
    assert len(set(cli.EXIT_CODES.values())) == len(cli.EXIT_CODES)
    assert cli.EXIT_CODES["bad input"] != cli.EXIT_CODES["server unavailable"]


def test_cli_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["--help"])

    assert caught.value.code == 0
    assert "3 server unavailable" in capsys.readouterr().out


def test_cli_defaults_are_the_librarys_when_no_flag_is_given():
    client = inspect.signature(Classifier).parameters
    args = cli.build_parser().parse_args([])

    assert args.model == client["model"].default and args.timeout == client["timeout_s"].default
    assert args.concurrency == client["max_concurrency"].default and args.retries == client["retry"].default.attempts
    assert args.load_balancing == client["load_balancing"].default
    assert args.threshold == inspect.signature(Classifier.classify).parameters["threshold"].default
