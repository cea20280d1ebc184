"""Load a DistilBERT classification checkpoint and run batched forward passes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..contract import resolve_problem_type, tokenizer_fingerprint
from ..knobs import ConfigError
from .batching import plan_forwards, token_budget_groups
from .device import detect, prepare_device
from .packed import PackedClassifier
from .precision import PRECISIONS, resolve
from .settings import ServingSettings
from .validation import Limits, Sequence

DTYPES = {name: getattr(torch, precision.dtype) for name, precision in PRECISIONS.items()}


@dataclass(frozen=True)
class ForwardStats:
    """One forward pass: sequences, real tokens, tokens through the dense layers (padding
    included), and query-key positions computed in attention (padding included)."""

    rows: int
    real_tokens: int
    padded_tokens: int
    attention_tokens: int


class CheckpointMismatch(ConfigError):
    """The model config publishes facts that the loaded checkpoint contradicts: a config error, as in the text model."""


class ClassifierEngine:
    def __init__(self, model, device: torch.device, settings: ServingSettings, *, gemm: str = "auto"):
        self.model = model
        self.device = device
        self.settings = settings
        self.precision = PRECISIONS[settings.precision]
        config = model.config
        self.problem_type = resolve_problem_type(config.problem_type, config.num_labels)
        self.num_labels = int(config.num_labels)
        self.labels = tuple(config.id2label[i] for i in range(self.num_labels))
        self.limits = Limits(vocab_size=int(config.vocab_size), max_length=int(config.max_position_embeddings))
        self.pad_id = int(config.pad_token_id or 0)
        # gemm: "auto" times the GEMM paths at load (gemm.py); self.packed.gemm is the choice.
        # A precision may force its own GEMM path (int8: loaded in fp32, its linear weights quantized).
        gemm = self.precision.gemm or gemm
        attention = "varlen" if settings.forward_mode == "varlen" else "chunks"
        self.packed = PackedClassifier(model, settings.attention_overhead_tokens, gemm=gemm, attention=attention)
        self.check_published_facts()

    @classmethod
    def load(
        cls, checkpoint: Path, device: torch.device, settings: ServingSettings, *, gemm: str = "auto", tf32: bool = True
    ) -> ClassifierEngine:
        """The engine for ``checkpoint`` on ``device`` in ``settings.precision``; ``tf32``: see ``device.prepare_device``."""
        from transformers import AutoConfig, DistilBertForSequenceClassification

        # auto becomes this device's precision (precision.py); an explicit one is checked against the device.
        settings = replace(settings, precision=resolve(settings.precision, detect(device)).name)
        prepare_device(device, settings.precision, tf32=tf32)
        config = AutoConfig.from_pretrained(checkpoint, trust_remote_code=False)
        if config.model_type != "distilbert":
            raise ValueError(f"{checkpoint} holds a {config.model_type!r} model; this model serves DistilBERT only")
        if not any(Path(checkpoint).glob("*.safetensors")):
            raise ValueError(f"{checkpoint} has no .safetensors weights; pickled weights are never loaded")
        # Every version of a model tokenizes alike: its callers and the text model tokenize once for all of them.
        if settings.tokenizer_sha256 and tokenizer_fingerprint(checkpoint) != settings.tokenizer_sha256:
            raise CheckpointMismatch(
                f"{checkpoint}: its tokenizer differs from the one config.pbtxt publishes (tokenizer_sha256); "
                "a checkpoint with another tokenizer is another model: export it under another --model-name"
            )
        model = DistilBertForSequenceClassification.from_pretrained(
            checkpoint, use_safetensors=True, trust_remote_code=False, attn_implementation="sdpa"
        )
        model = model.to(device=device, dtype=DTYPES[settings.precision]).eval()
        return cls(model, device, settings, gemm=gemm)

    def feed_forward_macs(self, tokens: int) -> int:
        """Multiply-adds of one layer's feed-forward GEMM over ``tokens``: how much a forward can split."""
        return tokens * int(self.model.config.dim) * int(self.model.config.hidden_dim)

    def check_published_facts(self) -> None:
        s = self.settings
        published = {
            "problem_type": (s.problem_type, self.problem_type),
            "max_sequence_length": (s.max_sequence_length, self.limits.max_length),
            "vocab_size": (s.vocab_size, self.limits.vocab_size),
            "num_labels": (s.num_labels, self.num_labels),
            "labels": (s.labels, self.labels),
        }
        wrong = [
            f"{k}: config.pbtxt says {a!r}, checkpoint has {b!r}"
            for k, (a, b) in published.items()
            if a is not None and a != b
        ]
        if wrong:
            raise CheckpointMismatch(
                "config.pbtxt does not describe this checkpoint (re-run build/export.py): " + "; ".join(wrong)
            )

    def classify(
        self, sequences: list[Sequence], between_layers: Callable[[], None] | None = None
    ) -> tuple[np.ndarray, list[ForwardStats]]:
        """FP32 logits ``[len(sequences), num_labels]`` in input order, and per-forward stats.

        ``between_layers``: called before each layer of a packed forward (``cores.SharedCores.rebalance``).
        """
        logits = np.empty((len(sequences), self.num_labels), dtype=np.float32)
        stats = []
        lengths = [s.length for s in sequences]
        if self.settings.forward_mode != "padded":
            for group in token_budget_groups(lengths, self.settings.max_forward_tokens):
                rows = [sequences[i] for i in group]
                out, packed = self.packed.logits([s.ids for s in rows], [s.mask for s in rows], between_layers)
                logits[group] = out.float().cpu().numpy()
                stats.append(ForwardStats(len(rows), packed.real_tokens, packed.dense_tokens, packed.attention_tokens))
            return logits, stats
        for chunk in plan_forwards(lengths, self.settings.forward_overhead_tokens, self.settings.max_forward_tokens):
            rows = [sequences[i] for i in chunk]
            logits[chunk] = self.forward_padded(rows)
            padded = len(rows) * max(s.length for s in rows)
            stats.append(ForwardStats(len(rows), sum(s.length for s in rows), padded, padded))
        return logits, stats

    @torch.inference_mode()
    def forward_padded(self, rows: list[Sequence]) -> np.ndarray:
        """The transformers model itself on a padded batch (``forward_mode: padded``)."""
        longest = max(s.length for s in rows)
        ids = np.full((len(rows), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for r, sequence in enumerate(rows):
            ids[r, : sequence.length] = sequence.ids
            mask[r, : sequence.length] = 1 if sequence.mask is None else sequence.mask
        output = self.model(
            input_ids=torch.from_numpy(ids).to(self.device), attention_mask=torch.from_numpy(mask).to(self.device)
        )
        return output.logits.float().cpu().numpy()
