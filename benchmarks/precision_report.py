"""Accuracy of reduced precision against fp32, on real pretrained weights and a trained head.

    python benchmarks/precision_report.py            # writes checkpoints/minilm-topics and prints the report

Random weights say little about precision: their logits sit close together, so tiny rounding flips
the argmax. This report converts the real all-MiniLM-L6-v2 encoder into DistilBERT classes and trains
the classification head, in fp32 on frozen encoder features, on a real labelled task: which area of
the Python standard library a docstring comes from (``distilbert_serving.corpus.labelled_texts``).
Then the served engine runs every text in fp32 and in each reduced precision, batched and alone, and
the report gives max |Δlogit|, argmax agreement, held-out accuracy, and the fp32 margins (top-1 −
top-2 logit) of any disagreements.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ceiling import engine_logits, load_engine
from distilbert_serving.checkpoints import build_model, build_tokenizer, train_head
from distilbert_serving.corpus import labelled_texts

PROJECT = Path(__file__).resolve().parent.parent
OUT = PROJECT / "checkpoints" / "minilm-topics"


def precision_logits(precision: str, ids: list[list[int]], alone: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The served engine's logits for all texts in one call (batched as a busy server batches them) and, with
    ``alone``, for each text alone: a precision whose rounding depends on the batch gives a text other
    answers under load."""
    engine = load_engine(OUT, precision)
    batched = engine_logits(engine, ids)
    return batched, np.concatenate([engine_logits(engine, [row]) for row in ids]) if alone else None


def report(precisions: list[str]) -> str:
    texts, labels, topics = labelled_texts(seed=0)
    labels = np.array(labels)
    tokenizer = build_tokenizer(max_length=512)
    ids = tokenizer(texts, truncation=True)["input_ids"]
    split = int(0.7 * len(texts))
    train, test = np.arange(split), np.arange(split, len(texts))

    model = build_model("minilm", "single_label_classification", len(tokenizer), labels=topics)
    train_head(model, ids, labels, train)
    model.save_pretrained(OUT, safe_serialization=True)
    tokenizer.save_pretrained(OUT)

    reference, _ = precision_logits("fp32", ids)
    margins = np.diff(np.sort(reference, axis=1)[:, -2:]).ravel()  # top-1 − top-2 logit
    lines = [
        f"Checkpoint: {OUT.relative_to(PROJECT)} (all-MiniLM-L6-v2 encoder, dim 384, 6 layers; head trained in fp32 "
        f"on {len(train)} texts, {len(topics)} topics: {', '.join(topics)}). {len(texts)} texts, all compared.",
        f"fp32 accuracy on {len(test)} held-out texts: {(reference[test].argmax(1) == labels[test]).mean():.3f}; "
        f"fp32 top-1 margin: median {np.median(margins):.2f}, 1st percentile {np.percentile(margins, 1):.3f}.",
        "",
        "| precision | max abs Δlogit | mean abs Δlogit | argmax agreement | held-out accuracy | fp32 margins of flips "
        "| alone vs batched: max abs Δlogit, argmax agreement |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for precision in precisions:
        logits, alone = precision_logits(precision, ids, alone=True)
        batch_delta, batch_agree = np.abs(alone - logits).max(), (alone.argmax(1) == logits.argmax(1)).mean()
        delta, agree = np.abs(logits - reference), logits.argmax(1) == reference.argmax(1)
        flips = ", ".join(f"{m:.3f}" for m in sorted(margins[~agree])) or "none"
        lines.append(
            f"| {precision} | {delta.max():.2e} | {delta.mean():.2e} | {agree.sum()}/{len(agree)} ({100 * agree.mean():.2f} %) "
            f"| {(logits[test].argmax(1) == labels[test]).mean():.3f} | {flips} | {batch_delta:.2e}, {100 * batch_agree:.2f} % |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", nargs="+", default=["bf16", "int8"], help="bf16, int8 on CPU; fp16 needs a GPU")
    print(report(parser.parse_args(argv).precisions))


if __name__ == "__main__":
    main()
