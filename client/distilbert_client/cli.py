"""``distilbert-classify``: classify texts with a served DistilBERT classifier.

    distilbert-classify --tokenizer CHECKPOINT "I love this movie" "I hate it"
    echo "I love this movie" | distilbert-classify --tokenizer CHECKPOINT
    distilbert-classify --tokenizer CHECKPOINT --file reviews.txt --output results.jsonl
    distilbert-classify --tokenizer CHECKPOINT --file reviews.jsonl --text-field body --format table

Texts come from the arguments, else from ``--file`` (one text per line, or JSON Lines with
a text field: ``.jsonl``/``.ndjson`` or ``--input-format jsonl``), else from stdin. Blank
lines are skipped; results are written in input order, each with its input ``line``
number when read from a file or stdin.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ._core import LOAD_BALANCING
from ._errors import (
    ClassifierError,
    DeadlineExceededError,
    IncompatibleModelError,
    InvalidInputError,
    ModelNotReadyError,
    ServerUnavailableError,
)
from ._retry import RetryPolicy
from ._sync import Classifier

__all__ = ["EXIT_CODES", "main"]

# Exit codes, by what the operator should do next.
EXIT_OK = 0
EXIT_BAD_INPUT = 2  # fix the command line or the input (argparse's own usage errors are 2 too)
EXIT_UNAVAILABLE = 3  # the server is down or unreachable: check the address, start it
EXIT_MODEL_NOT_READY = 4  # the server answers but does not serve the model
EXIT_DEADLINE = 5  # the server answered too slowly: raise --timeout or lower the load
EXIT_SERVER_ERROR = 6  # the server failed on a valid request: read its log

EXIT_CODES = {
    "ok": EXIT_OK,
    "bad input": EXIT_BAD_INPUT,
    "server unavailable": EXIT_UNAVAILABLE,
    "model not ready": EXIT_MODEL_NOT_READY,
    "deadline exceeded": EXIT_DEADLINE,
    "server error": EXIT_SERVER_ERROR,
}

# Texts classified per classify() call: enough for several concurrent full requests,
# small enough that the progress bar moves and memory stays flat on any file size.
_CHUNK = 512


class BadInput(Exception):
    """An input file or line the CLI cannot read."""


@dataclass(frozen=True)
class Item:
    text: str
    pair: str | None
    line: int | None


def _exit_code(error: ClassifierError) -> int:
    if isinstance(error, (InvalidInputError, IncompatibleModelError)):
        return EXIT_BAD_INPUT
    if isinstance(error, ServerUnavailableError):
        return EXIT_UNAVAILABLE
    if isinstance(error, ModelNotReadyError):
        return EXIT_MODEL_NOT_READY
    if isinstance(error, DeadlineExceededError):
        return EXIT_DEADLINE
    return EXIT_SERVER_ERROR


def build_parser() -> argparse.ArgumentParser:
    codes = ", ".join(f"{code} {name}" for name, code in EXIT_CODES.items())
    parser = argparse.ArgumentParser(
        prog="distilbert-classify",
        description=__doc__,
        epilog=f"exit codes: {codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify (else --file, else stdin)")
    parser.add_argument(
        "--url",
        default=os.environ.get("DISTILBERT_URL", "localhost:8001"),
        help="gRPC host:port, or a target such as dns:///name:port (env DISTILBERT_URL)",
    )
    parser.add_argument(
        "--load-balancing",
        choices=LOAD_BALANCING,
        default="pick_first",
        help="round_robin: spread requests over every address the url resolves to",
    )
    parser.add_argument("--model", default="distilbert_classifier", help="model name on the server")
    parser.add_argument(
        "--tokenizer",
        default=os.environ.get("DISTILBERT_TOKENIZER"),
        help="the served checkpoint's tokenizer: folder or hub id (env DISTILBERT_TOKENIZER)",
    )
    parser.add_argument("--file", type=Path, help="input file: one text per line, or JSON Lines")
    parser.add_argument("--input-format", choices=("auto", "text", "jsonl"), default="auto")
    parser.add_argument("--text-field", default="text", help="JSONL field holding the text (default: text)")
    parser.add_argument("--pair-field", help="JSONL field holding the second text of a pair")
    parser.add_argument("--output", type=Path, help="write results here instead of stdout")
    parser.add_argument("--format", choices=("jsonl", "table"), default="jsonl", help="output format")
    parser.add_argument("--top-k", type=int, help="labels listed per text in the table, best first")
    parser.add_argument("--threshold", type=float, default=0.5, help="multi-label: score from which a label is set")
    parser.add_argument("--truncation", choices=("right", "left", "none"), default="right")
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline per batch of texts, seconds")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    parser.add_argument(
        "--retries", type=int, default=3, help="attempts per request while the server or the model is unavailable"
    )
    parser.add_argument("--wait", type=float, help="wait up to this many seconds for the server to be ready")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar for files")
    return parser


def _is_jsonl(args) -> bool:
    return args.input_format == "jsonl" or (
        args.input_format == "auto" and args.file is not None and args.file.suffix in (".jsonl", ".ndjson")
    )


def _read_items(args, stream: TextIO) -> Iterator[Item]:
    jsonl = _is_jsonl(args)
    for number, raw in enumerate(stream, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if not jsonl:
            yield Item(line, None, number)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise BadInput(f"line {number}: not JSON ({error.msg}); use --input-format text for plain text") from None
        if not isinstance(record, dict) or not isinstance(record.get(args.text_field), str):
            raise BadInput(f"line {number}: no string field {args.text_field!r} (set --text-field)")
        pair = None
        if args.pair_field is not None:
            pair = record.get(args.pair_field)
            if not isinstance(pair, str):
                raise BadInput(f"line {number}: no string field {args.pair_field!r}")
        yield Item(record[args.text_field], pair, number)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _table_row(item: Item, result, top_k: int | None) -> str:
    text = item.text if len(item.text) <= 48 else item.text[:47] + "…"
    if result.problem_type == "regression":
        prediction = f"{result.value:.4f}"
    elif result.problem_type == "multi_label_classification":
        prediction = ", ".join(result.labels) or "-"
    else:
        prediction = f"{result.label} {result.score:.4f}"
    ranked = result.top[:top_k] if top_k else result.top
    scores = "  ".join(f"{s.label}={s.score:.4f}" for s in ranked)
    return f"{text:<48}  {prediction:<24}  {scores}"


def _table_header() -> str:
    return f"{'text':<48}  {'prediction':<24}  scores\n{'-' * 48}  {'-' * 24}  {'-' * 24}"


def _write(out: TextIO, fmt: str, items: list[Item], results: list, top_k: int | None) -> None:
    for item, result in zip(items, results, strict=True):
        if fmt == "table":
            out.write(_table_row(item, result, top_k) + "\n")
            continue
        record: dict = {}
        if item.line is not None:
            record["line"] = item.line
        record["text"] = item.text
        if item.pair is not None:
            record["text_pair"] = item.pair
        record.update(result.to_dict())
        if top_k:
            record["top"] = [{"label": s.label, "score": s.score} for s in result.top[:top_k]]
        out.write(json.dumps(record, ensure_ascii=False) + "\n")


def run(args) -> int:
    if args.tokenizer is None:
        raise BadInput("--tokenizer is required (or set DISTILBERT_TOKENIZER): the served checkpoint's folder or id")
    if args.texts and args.file is not None:
        raise BadInput("give texts as arguments or --file, not both")
    if args.top_k is not None and args.top_k < 1:
        raise BadInput("--top-k must be at least 1")
    if args.concurrency < 1 or args.retries < 1:
        raise BadInput("--concurrency and --retries must be at least 1")
    if args.timeout <= 0:
        raise BadInput("--timeout must be positive")
    if args.pair_field is not None and (args.texts or not _is_jsonl(args)):
        raise BadInput("--pair-field reads JSON Lines input: use a .jsonl file or --input-format jsonl")

    source: TextIO | None = None
    total = None
    if args.file is not None:
        try:
            source = open(args.file, encoding="utf-8")  # noqa: SIM115 - closed in finally below
            total = _count_lines(args.file)
        except OSError as error:
            raise BadInput(f"cannot read {args.file}: {error.strerror}") from None
    elif not args.texts:
        source = sys.stdin
    items = iter([Item(text, None, None) for text in args.texts]) if source is None else _read_items(args, source)

    truncation = {"right": "right", "left": "left", "none": False}[args.truncation]
    out = sys.stdout
    try:
        with Classifier(
            args.url,
            args.tokenizer,
            model=args.model,
            timeout_s=args.timeout,
            retry=RetryPolicy(attempts=args.retries),
            max_concurrency=args.concurrency,
            ready_timeout_s=args.wait,
            load_balancing=args.load_balancing,
        ) as classifier:
            if args.output is not None:
                try:
                    out = open(args.output, "w", encoding="utf-8")  # noqa: SIM115 - closed in finally below
                except OSError as error:
                    raise BadInput(f"cannot write {args.output}: {error.strerror}") from None
            if args.format == "table":
                out.write(_table_header() + "\n")
            progress = None
            if args.file is not None and not args.no_progress:
                from tqdm import tqdm

                progress = tqdm(total=total, unit="text", desc="classifying", file=sys.stderr)
            try:
                while batch := list(itertools.islice(items, _CHUNK)):
                    pairs = [item.pair for item in batch] if args.pair_field else None
                    results = classifier.classify(
                        [item.text for item in batch],
                        text_pair=pairs,
                        threshold=args.threshold,
                        truncation=truncation,
                    )
                    _write(out, args.format, batch, results, args.top_k)
                    if progress is not None:
                        progress.update(len(batch))
            finally:
                if progress is not None:
                    progress.close()
    finally:
        if source is not None and source is not sys.stdin:
            source.close()
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BadInput as error:
        print(f"distilbert-classify: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UnicodeDecodeError as error:
        print(
            f"distilbert-classify: the input is not UTF-8 text ({error.reason} at byte {error.start})", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    except ClassifierError as error:
        kind = type(error).__name__
        print(f"distilbert-classify: {kind}: {error.message}", file=sys.stderr)
        return _exit_code(error)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
