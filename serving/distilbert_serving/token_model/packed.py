"""DistilBERT classification forward over packed tokens: no compute spent on padding.

A padded batch ``[rows, longest, dim]`` makes every linear layer — the bulk of the work
at these lengths — process padding. Here the real tokens of all sequences are packed
into one ``[tokens, dim]`` matrix (the "remove padding" idea of FasterTransformer's BERT):

* embeddings, the fused Q/K/V projection, the attention output projection, both
  layer norms and the feed-forward network run on the packed real tokens only, through
  the GEMM path chosen for this CPU and precision at load (``gemm.py``);
* only attention needs sequences side by side: sequences are cut into length-sorted
  chunks (``batching.plan_forwards``) and packed in chunk order, so each chunk's tokens
  are one contiguous block of rows. A chunk whose sequences all have the same length is
  a plain view of that block (no copy, no mask); any other chunk is gathered into a
  padded ``[sequences, length]`` block and masked. Attention is a few percent of the
  FLOPs at these lengths, so its padding is cheap;
* the classifier reads only the first token ([CLS]) of the last layer, so the last
  layer computes keys and values for every token but queries, the output projection
  and the feed-forward network for the [CLS] rows alone.

With ``attention="varlen"`` attention is instead one call per layer over every sequence of
the forward: the packed Q, K and V as nested jagged tensors (offsets, no padding, no gather),
which ``scaled_dot_product_attention`` runs on CUDA with its variable-length flash (bf16, fp16)
or memory-efficient (fp32) kernels. Tokens a mask excludes are left out of the packing (their
position ids kept): they are never keys, and only [CLS] is read at the end. A forward whose
[CLS] itself is masked takes the chunks. The plan is linear in the batch.

Built to run on a GPU without stalling it: every index array of one forward is built
on the host, in one buffer, and reaches the device in one (pinned, non-blocking) copy;
inside the forward there is no boolean-mask indexing or any other operation that waits
for the device, so the host queues all of a forward's kernels ahead of the GPU.

The arithmetic is the same as ``DistilBertForSequenceClassification`` in eval mode (fp32
logits agree within 1e-5 in tests, on every GEMM path); the weights are the loaded
model's own tensors (the oneDNN path holds a reordered copy of each linear weight).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from .batching import plan_forwards, round_up_geometric
from .gemm import INT8, Linear, choose_path


@dataclass(frozen=True)
class _Layer:
    qkv: Linear  # Q, K and V in one GEMM instead of three over the same input
    out: Linear
    attention_norm: torch.nn.LayerNorm
    lin1: Linear
    lin2: Linear
    output_norm: torch.nn.LayerNorm


@dataclass(frozen=True)
class PackedStats:
    real_tokens: int
    dense_tokens: int  # rows through the dense layers: real tokens rounded up (round_up_geometric)
    attention_tokens: int  # query × key rows computed in attention chunks, padding included


class PackedClassifier:
    """The packed forward over a loaded ``DistilBertForSequenceClassification``.

    ``gemm`` is ``"auto"`` (time the candidates at load, ``gemm.choose_path``) or a GEMM
    path to force (``gemm.PATHS``); the path in use is ``self.gemm``, and what the timing
    measured, in milliseconds per candidate, ``self.gemm_timings_ms``.
    """

    def __init__(self, model, attention_overhead_tokens: int = 64, gemm: str = "auto", attention: str = "chunks"):
        base = model.distilbert
        self.attention = attention  # "chunks" or "varlen" (module docstring)
        self.word_embeddings = base.embeddings.word_embeddings.weight
        self.position_embeddings = base.embeddings.position_embeddings.weight
        self.embedding_norm = base.embeddings.LayerNorm
        self.device = self.word_embeddings.device
        self.heads = model.config.n_heads
        self.dim = model.config.dim
        self.attention_overhead_tokens = attention_overhead_tokens
        # Sizes on a geometric grid bound glibc heap growth on the CPU (batching.round_up_geometric);
        # a GPU's caching allocator needs no help, and exact lengths let more chunks skip masks.
        self.round_sizes = self.device.type == "cpu"
        blocks = list(base.transformer.layer)
        self.activation = model.config.activation
        self.activation_module = blocks[0].ffn.activation  # for an activation oneDNN cannot fuse
        first_ffn = blocks[0].ffn
        self.gemm_requested = gemm
        self.gemm, self.gemm_timings_ms = choose_path(
            gemm,
            self.device,
            self.word_embeddings.dtype,
            (first_ffn.lin1.weight, first_ffn.lin1.bias),
            (first_ffn.lin2.weight, first_ffn.lin2.bias),
            self.activation,
            fallback=self.activation_module,
        )

        def linear(module: torch.nn.Linear) -> Linear:
            return Linear(module.weight, module.bias, self.gemm)

        self.layers = [
            _Layer(
                qkv=Linear(
                    torch.cat([b.attention.q_lin.weight, b.attention.k_lin.weight, b.attention.v_lin.weight]),
                    torch.cat([b.attention.q_lin.bias, b.attention.k_lin.bias, b.attention.v_lin.bias]),
                    self.gemm,
                ),
                out=linear(b.attention.out_lin),
                attention_norm=b.sa_layer_norm,
                lin1=linear(b.ffn.lin1),
                lin2=linear(b.ffn.lin2),
                output_norm=b.output_layer_norm,
            )
            for b in blocks
        ]
        # The head stays in full precision under int8: two small layers, right before the logits.
        head = "aten" if self.gemm == INT8 else self.gemm
        self.pre_classifier = Linear(model.pre_classifier.weight, model.pre_classifier.bias, head)
        self.classifier = Linear(model.classifier.weight, model.classifier.bias, head)

    @property
    def gemm_choice(self) -> str:
        """The GEMM path and why, for the load log line."""
        if self.gemm == INT8:
            return "GEMM int8 (the encoder's linear layers; the classifier head in fp32)"
        if self.gemm_requested != "auto":
            return f"GEMM {self.gemm} (forced)"
        if not self.gemm_timings_ms:
            return f"GEMM {self.gemm} (the only path for {self.word_embeddings.dtype} on {self.device})"
        timed = ", ".join(f"{path} {ms:.2f}" for path, ms in self.gemm_timings_ms.items())
        return f"GEMM {self.gemm} (fastest at load; ms per feed-forward block of 256 tokens: {timed})"

    @torch.inference_mode()
    def logits(
        self, ids: list[np.ndarray], masks: list[np.ndarray | None], between_layers: Callable[[], None] | None = None
    ) -> tuple[torch.Tensor, PackedStats]:
        """Logits ``[len(ids), num_labels]`` for sequences of any lengths, in input order.

        ``masks[i]`` is None when every token of sequence i is attended; otherwise its 0
        entries are excluded as attention keys, exactly as an ``attention_mask`` is.
        ``between_layers`` is called before each layer (``cores.SharedCores.rebalance``).
        """
        if self.attention == "varlen" and all(mask is None or mask[0] for mask in masks):
            return self._varlen_logits(ids, masks, between_layers)
        plan = _plan(ids, masks, self._chunks(ids), self.round_sizes)
        on_device = self._upload(plan.host)
        token_ids, positions, first_tokens, inverse = (on_device[s] for s in plan.slices)
        chunks = [c.on(on_device, self.word_embeddings.dtype) for c in plan.chunks]

        hidden = F.embedding(token_ids, self.word_embeddings) + F.embedding(positions, self.position_embeddings)
        hidden = self.embedding_norm(hidden)
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            if between_layers is not None:
                between_layers()
            hidden = self._layer(layer, hidden, chunks, plan, first_tokens if index == last else None)
        logits = self.classifier(self.pre_classifier(hidden, "relu"))
        stats = PackedStats(
            real_tokens=plan.tokens,
            dense_tokens=plan.rows,
            attention_tokens=sum(c.sequences * c.length for c in plan.chunks),
        )
        return logits.index_select(0, inverse), stats

    def _chunks(self, ids: list[np.ndarray]) -> list[np.ndarray]:
        # Attention cost grows with rows × length², but it is small beside the dense layers:
        # a generous per-chunk overhead keeps the number of chunks (Python round trips) low.
        lengths = [len(row) for row in ids]
        return plan_forwards(lengths, overhead_tokens=self.attention_overhead_tokens, max_tokens=1 << 16)

    def _upload(self, host: np.ndarray) -> torch.Tensor:
        """The forward's index buffer on the device: one copy, which the host does not wait for."""
        tensor = torch.from_numpy(host)
        if self.device.type == "cpu":
            return tensor
        # Page-locked memory lets the copy run asynchronously; torch's caching host allocator
        # reuses these blocks and keeps one from reuse until the copy that reads it is done.
        pinned = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        pinned.copy_(tensor)
        return pinned.to(self.device, non_blocking=True)

    def _layer(self, layer: _Layer, hidden, chunks, plan, first_tokens) -> torch.Tensor:
        """One transformer block; with ``first_tokens`` given, it returns only those rows."""
        qkv = layer.qkv(hidden)
        head_dim = self.dim // self.heads
        only_first = first_tokens is not None
        attended = hidden.new_empty((plan.sequences if only_first else plan.rows, self.dim))
        if not only_first and plan.rows > plan.tokens:
            attended[plan.tokens :].zero_()  # padding rows: computed, never read, but finite
        for chunk in chunks:
            if chunk.gather is None:  # equal lengths: the chunk's rows, as they are
                block = qkv[chunk.first_row : chunk.first_row + chunk.tokens]
            else:
                block = qkv.index_select(0, chunk.gather)
            # [sequences, heads, length, head_dim] each, in as few calls as possible: on a small model a
            # forward's time is mostly the number of calls.
            q, k, v = block.view(chunk.sequences, chunk.length, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
            if only_first:
                q = q[:, :, :1]
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=chunk.key_mask).transpose(1, 2)
            if only_first:
                attended[chunk.first_sequence : chunk.first_sequence + chunk.sequences] = context[:, 0].flatten(1)
            elif chunk.keep is None:
                attended[chunk.first_row : chunk.first_row + chunk.tokens] = context.reshape(-1, self.dim)
            else:
                rows = attended[chunk.first_row : chunk.first_row + chunk.tokens]
                torch.index_select(context.reshape(-1, self.dim), 0, chunk.keep, out=rows)
        residual = hidden.index_select(0, first_tokens) if only_first else hidden
        return self._rest_of_layer(layer, attended, residual)

    def _rest_of_layer(self, layer: _Layer, attended, residual) -> torch.Tensor:
        """Attention's output projection and norm, then the feed-forward network."""
        attended = layer.attention_norm(layer.out(attended, residual=residual))
        inner = layer.lin1(attended, self.activation, fallback=self.activation_module)
        return layer.output_norm(layer.lin2(inner, residual=attended))

    def _varlen_logits(self, ids, masks, between_layers) -> tuple[torch.Tensor, PackedStats]:
        """``logits`` with one variable-length attention call per layer (module docstring)."""
        plan = _varlen_plan(ids, masks)
        on_device = self._upload(plan.host)
        token_ids, positions, offsets, firsts = (on_device[s] for s in plan.slices)
        single = torch.arange(len(ids) + 1, device=self.device)  # the last layer's queries: [CLS] alone
        hidden = F.embedding(token_ids, self.word_embeddings) + F.embedding(positions, self.position_embeddings)
        hidden = self.embedding_norm(hidden)
        head_dim, last = self.dim // self.heads, len(self.layers) - 1

        def jagged(values, bounds, longest):
            # [sequences, heads, jagged length, head_dim]; the lengths come from the host: no device read.
            nested = torch.nested.nested_tensor_from_jagged(
                values, bounds, min_seqlen=1 if longest == 1 else plan.shortest, max_seqlen=longest
            )
            return nested.transpose(1, 2)

        for index, layer in enumerate(self.layers):
            if between_layers is not None:
                between_layers()
            # Each of Q, K, V contiguous [tokens, heads, head_dim]: what the jagged attention kernels read.
            q, k, v = layer.qkv(hidden).view(-1, 3, self.heads, head_dim).transpose(0, 1).contiguous()
            queries = (q.index_select(0, firsts), single, 1) if index == last else (q, offsets, plan.longest)
            context = F.scaled_dot_product_attention(
                jagged(*queries), jagged(k, offsets, plan.longest), jagged(v, offsets, plan.longest)
            )
            attended = context.transpose(1, 2).values().flatten(1)
            residual = hidden.index_select(0, firsts) if index == last else hidden
            hidden = self._rest_of_layer(layer, attended, residual)
        logits = self.classifier(self.pre_classifier(hidden, "relu"))
        stats = PackedStats(real_tokens=plan.tokens, dense_tokens=plan.tokens, attention_tokens=plan.tokens)
        return logits, stats


@dataclass(frozen=True)
class _VarlenPlan:
    host: np.ndarray  # int64: token ids, position ids, offsets, first tokens, back to back
    slices: tuple[slice, slice, slice, slice]
    tokens: int  # attended tokens: what a mask excludes is not packed
    shortest: int
    longest: int


def _varlen_plan(ids: list[np.ndarray], masks: list[np.ndarray | None]) -> _VarlenPlan:
    """The packing of a varlen forward, in input order: linear in the batch, one host buffer."""
    kept = [row if mask is None else row[mask.astype(bool)] for row, mask in zip(ids, masks, strict=True)]
    lengths = np.fromiter((len(row) for row in kept), dtype=np.int64, count=len(kept))
    offsets = np.zeros(len(kept) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = int(offsets[-1])
    positions = np.arange(tokens) - np.repeat(offsets[:-1], lengths)
    for i, mask in enumerate(masks):  # a masked-out token's neighbours keep their own positions
        if mask is not None:
            positions[offsets[i] : offsets[i + 1]] = np.flatnonzero(mask)
    parts = [np.concatenate(kept).astype(np.int64, copy=False), positions, offsets, offsets[:-1]]
    bounds = np.cumsum([0, *(part.size for part in parts)])
    slices = tuple(slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    host = np.concatenate(parts)
    return _VarlenPlan(host, slices, tokens, int(lengths.min()), int(lengths.max()))


@dataclass(frozen=True)
class _Chunk:
    """One attention chunk: sequences ``[first_sequence, +sequences)`` of the packing order,
    whose tokens are the packed rows ``[first_row, +tokens)``."""

    first_sequence: int
    sequences: int
    first_row: int
    tokens: int
    length: int  # padded length of the chunk's attention block
    gather: slice | torch.Tensor | None = None  # [sequences × length] packed row per position; None: no padding
    keep: slice | torch.Tensor | None = None  # [tokens] flat positions of the real tokens in the block
    key_mask: slice | torch.Tensor | None = None  # [sequences, 1, 1, length] attended keys (0: not); None: all

    def on(self, buffer: torch.Tensor, dtype: torch.dtype) -> _Chunk:
        """This chunk with its index slices turned into views of the forward's device buffer, and its key
        mask into an additive one in ``dtype``."""

        def view(part):
            return None if part is None else buffer[part]

        mask = None
        if self.key_mask is not None:
            # Additive (0 or −inf), made once per forward: attention turns a boolean mask into this at every layer.
            keys = buffer[self.key_mask].view(self.sequences, 1, 1, self.length)
            mask = torch.zeros(keys.shape, dtype=dtype, device=keys.device).masked_fill_(keys == 0, float("-inf"))
        return replace(self, gather=view(self.gather), keep=view(self.keep), key_mask=mask)


@dataclass(frozen=True)
class _Plan:
    """Everything one forward needs to know, computed on the host before any device work."""

    host: np.ndarray  # int64: every index array of the forward, back to back
    slices: tuple[slice, slice, slice, slice]  # token ids, positions, first tokens, inverse order
    chunks: list[_Chunk]  # with slices of ``host`` in place of tensors
    sequences: int
    tokens: int  # real tokens
    rows: int  # packed rows, padding included


def _plan(ids: list[np.ndarray], masks: list[np.ndarray | None], chunks: list[np.ndarray], round_sizes: bool) -> _Plan:
    # This runs before every forward, whose own fixed cost is a few hundred microseconds on a small model:
    # few numpy calls per chunk, and the per-sequence work in plain Python.
    parts: list[np.ndarray] = []
    size = 0

    def add(array: np.ndarray) -> slice:  # int64 (or bool), 1-D
        nonlocal size
        parts.append(array)
        size += array.size
        return slice(size - array.size, size)

    order = np.concatenate(chunks)  # sequences in packing order: chunk after chunk
    in_order = [ids[i] for i in order.tolist()]
    lengths = np.array([len(row) for row in in_order], dtype=np.int64)
    starts = np.zeros_like(lengths)
    np.cumsum(lengths[:-1], out=starts[1:])
    tokens = int(lengths.sum())
    rows = round_up_geometric(tokens) if round_sizes else tokens
    token_ids = np.zeros(rows, dtype=np.int64)  # rows past `tokens` are padding: computed, never read
    np.concatenate(in_order, out=token_ids[:tokens], casting="unsafe")
    positions = np.zeros(rows, dtype=np.int64)
    positions[:tokens] = np.arange(tokens) - np.repeat(starts, lengths)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    slices = (add(token_ids), add(positions), add(starts), add(inverse))

    with_holes = any(mask is not None for mask in masks)
    planned, first = [], 0
    for chunk in chunks:
        count = len(chunk)
        chunk_lengths, chunk_starts = lengths[first : first + count], starts[first : first + count]
        longest, shortest = int(chunk_lengths.max()), int(chunk_lengths.min())
        entry = dict(
            first_sequence=first, sequences=count, first_row=int(chunk_starts[0]), tokens=int(chunk_lengths.sum())
        )
        # Does a mask of this chunk have 0s in it? (A mask of 1s changes nothing.)
        holes = with_holes and any(masks[i] is not None and not masks[i].all() for i in chunk.tolist())
        uniform = shortest == longest
        # Rounded up for the same reason as the packed rows: fewer distinct tensor sizes.
        length = longest if uniform or not round_sizes else round_up_geometric(longest, steps_per_octave=4)
        if not uniform or holes:
            offsets = np.arange(length)
            inside = offsets[None, :] < chunk_lengths[:, None]
            if not uniform:
                # Positions past a sequence's end read its first token: finite values, masked as keys,
                # and their query results are never kept.
                entry["gather"] = add(
                    np.where(inside, chunk_starts[:, None] + offsets[None, :], chunk_starts[:, None]).ravel()
                )
                entry["keep"] = add(np.flatnonzero(inside))
            keys = inside
            if holes:
                for r, i in enumerate(chunk.tolist()):
                    if masks[i] is not None:
                        keys[r, : len(masks[i])] = masks[i].astype(bool)
            entry["key_mask"] = add(keys.ravel().astype(np.int64))
        planned.append(_Chunk(length=length, **entry))
        first += count
    host = np.concatenate(parts)
    return _Plan(host, slices, planned, sequences=len(order), tokens=tokens, rows=rows)
