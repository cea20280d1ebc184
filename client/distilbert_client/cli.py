"""``distilbert-classify``: classify texts with a served DistilBERT classifier.

    distilbert-classify --tokenizer CHECKPOINT "I love this movie" "I hate it"
    echo "I love this movie" | distilbert-classify --tokenizer CHECKPOINT
    distilbert-classify --tokenizer CHECKPOINT --file reviews.txt --output results.jsonl
    distilbert-classify --tokenizer CHECKPOINT --file reviews.jsonl --text-field body --format table

Texts come from the arguments, else from ``--file`` (one text per line, or JSON Lines with a text field:
``.jsonl``/``.ndjson`` or ``--input-format jsonl``), else from stdin. Blank lines are skipped; results are
written in input order, each with its input ``line`` number when read from a file or stdin.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import itertools
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from . import _errors as errors
from ._clients import Classifier
from ._core import LOAD_BALANCING
from ._retry import RetryPolicy

# Exit codes, by what the operator should do next.
EXIT_CODES = {
    "ok": 0,
    "bad input": 2,  # fix the command line or the input (argparse's own usage errors are 2 too)
    "server unavailable": 3,  # the server is down or unreachable: check the address, start it
    "model not ready": 4,  # the server answers but does not serve the model
    "deadline exceeded": 5,  # the server answered too slowly: raise --timeout or lower the load
    "server error": 6,  # the server failed on a valid request: read its log
}
EXIT_OK, EXIT_BAD_INPUT, EXIT_UNAVAILABLE, EXIT_MODEL_NOT_READY, EXIT_DEADLINE, EXIT_SERVER_ERROR = EXIT_CODES.values()
_EXIT_BY_ERROR = {  # any other ClassifierError is a server error
    ValueError: EXIT_BAD_INPUT,  # InvalidInputError, IncompatibleModelError
    errors.ServerUnavailableError: EXIT_UNAVAILABLE,
    errors.ModelNotReadyError: EXIT_MODEL_NOT_READY,
    errors.DeadlineExceededError: EXIT_DEADLINE,
}
# Texts classified per classify() call: enough for several concurrent full requests,
# small enough that the progress bar moves and memory stays flat on any file size.
_CHUNK = 512
# The library's defaults (parameter → default), which the flags share rather than restate.
_CLIENT = {name: p.default for name, p in inspect.signature(Classifier).parameters.items()}
_CLASSIFY = {name: p.default for name, p in inspect.signature(Classifier.classify).parameters.items()}
# The command line: flag → argparse's keywords (the defaults of --url and --tokenizer come from the environment).
_FLAGS = {
    "--url": dict(help="gRPC host:port, or a target such as dns:///name:port (env DISTILBERT_URL)"),
    "--load-balancing": dict(
        choices=LOAD_BALANCING,
        default=_CLIENT["load_balancing"],
        help="round_robin: spread requests over every address the url resolves to",
    ),
    "--model": dict(default=_CLIENT["model"], help="model name on the server"),
    "--tokenizer": dict(help="the served checkpoint's tokenizer: folder or hub id (env DISTILBERT_TOKENIZER)"),
    "--file": dict(type=Path, help="input file: one text per line, or JSON Lines"),
    "--input-format": dict(choices=("auto", "text", "jsonl"), default="auto"),
    "--text-field": dict(default="text", help="JSONL field holding the text (default: text)"),
    "--pair-field": dict(help="JSONL field holding the second text of a pair"),
    "--output": dict(type=Path, help="write results here instead of stdout"),
    "--format": dict(choices=("jsonl", "table"), default="jsonl", help="output format"),
    "--top-k": dict(type=int, help="labels listed per text in the table, best first"),
    "--threshold": dict(
        type=float, default=_CLASSIFY["threshold"], help="multi-label: score from which a label is set"
    ),
    "--truncation": dict(choices=("right", "left", "none"), default="right"),
    "--timeout": dict(type=float, default=_CLIENT["timeout_s"], help="deadline per batch of texts, seconds"),
    "--concurrency": dict(type=int, default=_CLIENT["max_concurrency"], help="requests in flight at once"),
    "--retries": dict(
        type=int,
        default=_CLIENT["retry"].attempts,
        help="attempts per request while the server or the model is unavailable",
    ),
    "--wait": dict(type=float, help="wait up to this many seconds for the server to be ready"),
    "--no-progress": dict(action="store_true", help="no progress bar for files"),
}


class BadInput(Exception):
    """An input file or line the CLI cannot read."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``distilbert-classify``, from ``_FLAGS``."""
    parser = argparse.ArgumentParser(
        prog="distilbert-classify",
        description=__doc__,
        epilog="exit codes: " + ", ".join(f"{code} {name}" for name, code in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify (else --file, else stdin)")
    for flag, options in _FLAGS.items():
        parser.add_argument(flag, **options)
    parser.set_defaults(url=os.environ.get("DISTILBERT_URL", "localhost:8001"))
    parser.set_defaults(tokenizer=os.environ.get("DISTILBERT_TOKENIZER"))
    return parser


def _read_items(args, stream):
    """(text, pair, line number) of each non-blank line."""
    for number, raw in enumerate(stream, start=1):
        if not (line := raw.rstrip("\r\n")).strip():
            continue
        if not args.jsonl:
            yield line, None, number
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise BadInput(f"line {number}: not JSON ({error.msg}); use --input-format text for plain text") from None
        if not isinstance(record, dict) or not isinstance(record.get(args.text_field), str):
            raise BadInput(f"line {number}: no string field {args.text_field!r} (set --text-field)")
        pair = None if args.pair_field is None else record.get(args.pair_field)
        if args.pair_field is not None and not isinstance(pair, str):
            raise BadInput(f"line {number}: no string field {args.pair_field!r}")
        yield record[args.text_field], pair, number


def _format(item, result, args) -> str:
    """One output line: a JSON record, or a table row."""
    text, pair, line = item
    if args.format == "jsonl":
        record = {"line": line, "text": text, "text_pair": pair}
        record = {key: value for key, value in record.items() if value is not None} | result.to_dict()
        if args.top_k:
            record["top"] = [{"label": s.label, "score": s.score} for s in result.top[: args.top_k]]
        return json.dumps(record, ensure_ascii=False)
    if result.problem_type == "regression":
        prediction = f"{result.value:.4f}"
    elif result.problem_type == "multi_label_classification":
        prediction = ", ".join(result.labels) or "-"
    else:
        prediction = f"{result.label} {result.score:.4f}"
    scores = "  ".join(f"{s.label}={s.score:.4f}" for s in result.top[: args.top_k])
    text = text if len(text) <= 48 else text[:47] + "…"
    return f"{text:<48}  {prediction:<24}  {scores}"


def run(args) -> int:
    """Classify the texts ``args`` give and write their results; ``BadInput`` if the command or the input is bad."""
    suffix = None if args.file is None else args.file.suffix
    args.jsonl = args.input_format == "jsonl" or (args.input_format == "auto" and suffix in (".jsonl", ".ndjson"))
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
    if args.pair_field is not None and (args.texts or not args.jsonl):
        raise BadInput("--pair-field reads JSON Lines input: use a .jsonl file or --input-format jsonl")

    with contextlib.ExitStack() as stack:
        stack.callback(sys.stdout.flush)
        total, items = None, iter([(text, None, None) for text in args.texts])
        if args.file is not None:
            try:
                items = _read_items(args, stack.enter_context(open(args.file, encoding="utf-8")))
                with open(args.file, "rb") as counted:
                    total = sum(1 for line in counted if line.strip())
            except OSError as error:
                raise BadInput(f"cannot read {args.file}: {error.strerror}") from None
        elif not args.texts:
            items = _read_items(args, sys.stdin)
        classifier = Classifier(
            args.url,
            args.tokenizer,
            model=args.model,
            timeout_s=args.timeout,
            retry=RetryPolicy(attempts=args.retries),
            max_concurrency=args.concurrency,
            ready_timeout_s=args.wait,
            load_balancing=args.load_balancing,
        )
        stack.enter_context(classifier)
        # The output is opened once the server has answered: a failed connection leaves an existing file as it was.
        out = sys.stdout
        if args.output is not None:
            try:
                out = stack.enter_context(open(args.output, "w", encoding="utf-8"))
            except OSError as error:
                raise BadInput(f"cannot write {args.output}: {error.strerror}") from None
        if args.format == "table":
            out.write(f"{'text':<48}  {'prediction':<24}  scores\n{'-' * 48}  {'-' * 24}  {'-' * 24}\n")
        no_progress = args.file is None or args.no_progress
        progress = stack.enter_context(
            tqdm(total=total, unit="text", desc="classifying", file=sys.stderr, disable=no_progress)
        )
        truncation = {"right": "right", "left": "left", "none": False}[args.truncation]
        while batch := list(itertools.islice(items, _CHUNK)):
            texts, pairs, _ = zip(*batch, strict=True)
            pairs = list(pairs) if args.pair_field else None
            results = classifier.classify(list(texts), text_pair=pairs, threshold=args.threshold, truncation=truncation)
            out.writelines(_format(item, result, args) + "\n" for item, result in zip(batch, results, strict=True))
            progress.update(len(batch))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run ``distilbert-classify`` with ``argv`` (default: the process's arguments); return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BadInput as error:
        message = str(error)
    except UnicodeDecodeError as error:
        message = f"the input is not UTF-8 text ({error.reason} at byte {error.start})"
    except errors.ClassifierError as error:
        print(f"distilbert-classify: {type(error).__name__}: {error.message}", file=sys.stderr)
        return next((code for kind, code in _EXIT_BY_ERROR.items() if isinstance(error, kind)), EXIT_SERVER_ERROR)
    except KeyboardInterrupt:
        return 130
    print(f"distilbert-classify: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
