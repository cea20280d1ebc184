"""DistilBERT classification forward over packed tokens: no compute spent on padding.

A padded batch ``[rows, longest, dim]`` makes every linear layer — the bulk of the work
at these lengths — process padding. Here the real tokens of all sequences are packed
into one ``[tokens, dim]`` matrix (the "remove padding" idea of FasterTransformer's BERT):

* embeddings, the fused Q/K/V projection, the attention output projection, both
  layer norms and the feed-forward network run on the packed real tokens only;
* only attention needs sequences side by side: for that, sequences are gathered into
  length-sorted chunks (``batching.plan_forwards``), padded, masked, and scattered back.
  Attention is a few percent of the FLOPs at these lengths, so its padding is cheap;
* the classifier reads only the first token ([CLS]) of the last layer, so the last
  layer computes keys and values for every token but queries, the output projection
  and the feed-forward network for the [CLS] rows alone.

The arithmetic is the same as ``DistilBertForSequenceClassification`` in eval mode (fp32
logits agree within 1e-5 in tests); the weights are the loaded model's own tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .batching import plan_forwards, round_up_geometric


@dataclass(frozen=True)
class _Layer:
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor
    out: torch.nn.Linear
    attention_norm: torch.nn.LayerNorm
    lin1: torch.nn.Linear
    lin2: torch.nn.Linear
    activation: object
    output_norm: torch.nn.LayerNorm


@dataclass(frozen=True)
class PackedStats:
    real_tokens: int
    dense_tokens: int  # rows through the dense layers: real tokens rounded up (round_up_geometric)
    attention_tokens: int  # query × key rows computed in attention chunks, padding included


class PackedClassifier:
    def __init__(self, model, attention_overhead_tokens: int = 64):
        base = model.distilbert
        self.word_embeddings = base.embeddings.word_embeddings.weight
        self.position_embeddings = base.embeddings.position_embeddings.weight
        self.embedding_norm = base.embeddings.LayerNorm
        self.heads = model.config.n_heads
        self.dim = model.config.dim
        self.attention_overhead_tokens = attention_overhead_tokens
        self.layers = [
            _Layer(
                # One GEMM for Q, K and V instead of three over the same input.
                qkv_weight=torch.cat(
                    [block.attention.q_lin.weight, block.attention.k_lin.weight, block.attention.v_lin.weight]
                ),
                qkv_bias=torch.cat(
                    [block.attention.q_lin.bias, block.attention.k_lin.bias, block.attention.v_lin.bias]
                ),
                out=block.attention.out_lin,
                attention_norm=block.sa_layer_norm,
                lin1=block.ffn.lin1,
                lin2=block.ffn.lin2,
                activation=block.ffn.activation,
                output_norm=block.output_layer_norm,
            )
            for block in base.transformer.layer
        ]
        self.pre_classifier = model.pre_classifier
        self.classifier = model.classifier

    @torch.inference_mode()
    def logits(self, ids: list[np.ndarray], masks: list[np.ndarray | None]) -> tuple[torch.Tensor, PackedStats]:
        """Logits ``[len(ids), num_labels]`` for sequences of any lengths, in input order.

        ``masks[i]`` is None when every token of sequence i is attended; otherwise its 0
        entries are excluded as attention keys, exactly as an ``attention_mask`` is.
        """
        device = self.word_embeddings.device
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        starts = np.zeros_like(lengths)
        np.cumsum(lengths[:-1], out=starts[1:])
        total = int(lengths.sum())
        # Padded onto a geometric grid (batching.round_up_geometric): bounded heap growth.
        rows = round_up_geometric(total)
        positions = np.zeros(rows, dtype=np.int64)
        positions[:total] = np.arange(total) - np.repeat(starts, lengths)
        token_ids = np.zeros(rows, dtype=np.int64)  # rows past `total` are padding: computed, never read
        token_ids[:total] = np.concatenate(ids)

        token_ids = torch.from_numpy(token_ids).to(device)
        hidden = F.embedding(token_ids, self.word_embeddings) + F.embedding(
            torch.from_numpy(positions).to(device), self.position_embeddings
        )
        hidden = self.embedding_norm(hidden)

        chunks = [self._attention_chunk(c, lengths, starts, masks, rows, device) for c in self._chunks(lengths)]
        first_tokens = torch.from_numpy(starts).to(device)
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            hidden = self._layer(layer, hidden, chunks, first_tokens if index == last else None, len(ids))
        logits = self.classifier(torch.relu(self.pre_classifier(hidden)))
        attention_tokens = sum(c.rows * c.length for c in chunks)
        return logits, PackedStats(real_tokens=total, dense_tokens=rows, attention_tokens=attention_tokens)

    def _chunks(self, lengths: np.ndarray) -> list[np.ndarray]:
        # Attention cost grows with rows × length², but it is small beside the dense layers:
        # a generous per-chunk overhead keeps the number of chunks (Python round trips) low.
        return plan_forwards(lengths, overhead_tokens=self.attention_overhead_tokens, max_tokens=1 << 16)

    def _attention_chunk(self, chunk, lengths, starts, masks, zero_row, device) -> _Chunk:
        # Rounded up for the same reason as the packed rows: fewer distinct tensor sizes.
        length = round_up_geometric(int(lengths[chunk].max()), steps_per_octave=4)
        offsets = np.arange(length)
        inside = offsets[None, :] < lengths[chunk][:, None]
        # Positions past a sequence's end point at `zero_row`: an all-zero row appended to Q/K/V.
        gather = np.where(inside, starts[chunk][:, None] + offsets[None, :], zero_row)
        keys = inside.copy()
        for r, sequence in enumerate(chunk):
            if masks[sequence] is not None:
                keys[r, : lengths[sequence]] = masks[sequence].astype(bool)
        return _Chunk(
            sequences=torch.from_numpy(chunk).to(device),
            gather=torch.from_numpy(gather).to(device),
            inside=torch.from_numpy(inside).to(device),
            scatter=torch.from_numpy(gather[inside]).to(device),
            key_mask=torch.from_numpy(keys)[:, None, None, :].to(device),
            rows=len(chunk),
            length=length,
        )

    def _layer(self, layer: _Layer, hidden, chunks, first_tokens, sequences: int) -> torch.Tensor:
        """One transformer block; with ``first_tokens`` given, it returns only those rows."""
        qkv = F.linear(hidden, layer.qkv_weight, layer.qkv_bias)
        qkv = torch.cat([qkv, qkv.new_zeros(1, qkv.shape[1])])
        head_dim = self.dim // self.heads
        only_first = first_tokens is not None
        # Zeros, not empty: the padding rows past the real tokens must hold finite values.
        attended = hidden.new_zeros((sequences if only_first else hidden.shape[0], self.dim))
        for chunk in chunks:
            q, k, v = qkv[chunk.gather].view(chunk.rows, chunk.length, 3, self.heads, head_dim).unbind(2)
            if only_first:
                q = q[:, :1]
            context = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=chunk.key_mask
            )
            context = context.transpose(1, 2).reshape(chunk.rows, -1, self.dim)
            if only_first:
                attended[chunk.sequences] = context[:, 0]
            else:
                attended[chunk.scatter] = context[chunk.inside]
        residual = hidden[first_tokens] if only_first else hidden
        attended = layer.attention_norm(layer.out(attended) + residual)
        return layer.output_norm(layer.lin2(layer.activation(layer.lin1(attended))) + attended)


@dataclass(frozen=True)
class _Chunk:
    """Where one attention chunk's sequences sit in the packed token matrix."""

    sequences: torch.Tensor  # [rows] sequence indices
    gather: torch.Tensor  # [rows, length] packed row per position (padding → the zero row)
    inside: torch.Tensor  # [rows, length] position < sequence length
    scatter: torch.Tensor  # [real tokens] packed rows of the inside positions, row-major
    key_mask: torch.Tensor  # [rows, 1, 1, length] attended keys
    rows: int
    length: int
