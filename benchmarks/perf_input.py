"""Turn texts into ``perf_analyzer --input-data`` JSON: token ids for the token model, strings for the text model.

    python benchmarks/perf_input.py texts.txt --tokenizer checkpoints/full-single --out tokens.json
    python benchmarks/perf_input.py texts.txt --tokenizer checkpoints/full-single --padded --out tokens-padded.json
    python benchmarks/perf_input.py texts.txt --text --out strings.json
    python benchmarks/perf_input.py --corpus 600 --out texts.txt          # 600 real English texts, one a line

``texts.txt`` holds one text per line (blank lines are skipped). Each entry of the JSON is one
``perf_analyzer`` step. With ``-b N`` perf_analyzer sends steps s … s+N−1 as one request, for every
step s, and refuses to start unless those N steps have the same shape. So:

* token ids (default): one entry per text, ``input_ids`` of its own length: for ``-b 1``.
* token ids, ``--padded``: every text padded to the longest one, with an ``attention_mask``: for any
  ``-b``. The model drops right padding before its forward (``token_model/validation.py``), so the
  padding costs bytes on the wire, not compute.
* strings (``--text``): ``text`` of shape ``[1]`` per entry, for ``distilbert_text``, any ``-b``.

Tokenization is the served model's: its own tokenizer folder, truncated to its maximum length, as the
Python client does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def write_token_input_data(ids: list[list[int]], path: Path, padded: bool = False) -> Path:
    """The token model's ``--input-data`` file; ``padded``: all rows right-padded to the longest, with a mask."""
    if not padded:
        entries = [{"input_ids": {"content": row, "shape": [len(row)]}} for row in ids]
    else:
        longest = max(map(len, ids))
        entries = [
            {
                "input_ids": {"content": row + [0] * (longest - len(row)), "shape": [longest]},
                "attention_mask": {"content": [1] * len(row) + [0] * (longest - len(row)), "shape": [longest]},
            }
            for row in ids
        ]
    path.write_text(json.dumps({"data": entries}))
    return path


def write_text_input_data(texts: list[str], path: Path) -> Path:
    path.write_text(json.dumps({"data": [{"text": {"content": [text], "shape": [1]}} for text in texts]}))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("texts", nargs="?", type=Path, help="a UTF-8 file, one text per line")
    source.add_argument("--corpus", type=int, metavar="N", help="the first N of the benchmark's English texts")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--tokenizer", help="the served checkpoint's folder (or hub id): write token ids")
    kind.add_argument("--text", action="store_true", help="write raw strings, for the text model")
    parser.add_argument("--padded", action="store_true", help="token ids padded alike, for perf_analyzer -b N > 1")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.padded and not args.tokenizer:
        parser.error("--padded pads token ids: give --tokenizer too (strings need no padding)")

    if args.corpus is not None:
        from distilbert_serving.corpus import english_texts

        texts = english_texts(args.corpus)
    else:  # blank lines skipped: the text model refuses blank texts
        texts = [line.strip() for line in args.texts.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            parser.error(f"{args.texts} holds no text: write one text per line")
    if args.tokenizer:
        from transformers import AutoTokenizer

        ids = AutoTokenizer.from_pretrained(args.tokenizer)(texts, truncation=True)["input_ids"]
        write_token_input_data(ids, args.out, args.padded)
        what = "token ids, padded alike (any -b)" if args.padded else "token ids (use -b 1, or --padded for -b N)"
    elif args.text:
        write_text_input_data(texts, args.out)
        what = "strings (model distilbert_text, any -b)"
    elif args.corpus is not None:
        args.out.write_text("".join(f"{text}\n" for text in texts), encoding="utf-8")
        what = "texts, one a line"
    else:
        parser.error("say what to write: --tokenizer FOLDER (token ids) or --text (strings)")
    print(f"{args.out}: {len(texts)} {what}", file=sys.stderr)


if __name__ == "__main__":
    main()
