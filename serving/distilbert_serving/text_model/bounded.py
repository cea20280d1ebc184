"""Read only as much of a text as can reach the model, and get the tokens of reading all of it.

Truncation keeps a text's first tokens (its last with ``truncation_side=left``), so tokenizing a
20 MB text whole, seconds of work, only to keep 510 of its tokens is waste. Instead each text is
cut to a *piece* at its kept end, at a place where cutting cannot change the tokens: the piece's
tokens are then exactly the first (or last) tokens of the whole text. A piece starts at
``CHARS_PER_TOKEN`` characters per token needed and grows ``GROWTH`` times while it holds fewer
tokens than needed, so the work per text is bounded by what the model can use, not by its length.

Why such a cut cannot change the tokens. This holds for BERT's pipeline, the one DistilBERT
checkpoints use (``Cutter.of`` checks it; a tokenizer with another pipeline is read whole):

1. added tokens (``[CLS]``, ``[SEP]``, ...) are matched in the raw text first;
2. ``BertNormalizer`` maps each character on its own: control characters dropped, whitespace to a
   space, CJK ideographs padded with spaces, accents stripped, lowercased (accent stripping reorders
   runs of combining marks, and a run never spans a separator below);
3. ``BertPreTokenizer`` splits words at whitespace and isolates each punctuation character;
4. ``WordPiece`` turns each word into tokens on its own.

A *separator*, ASCII whitespace or ASCII punctuation (or a CJK ideograph, when the normalizer pads
them), that no added token contains, ends a word whatever comes before or after it. So the tokens
of the text before a separator are the first tokens of the whole text, and the tokens after it the
last ones.

A word without separators can be long (a 20 MB run of letters is one word), but WordPiece reads a
word over ``max_input_chars_per_word`` characters (100) as one ``[UNK]``, whatever its length. A run
of ASCII letters and digits longer than ``2 × keep`` keeps only its first and last ``keep``
characters (``keep`` over 100 and no shorter than any added token): the same word, still too long,
still one ``[UNK]``. Runs of other characters are read to their end, which the byte limits bound.

Pairs (``longest_first``) need both texts' counts only up to ``room + 1`` tokens, ``room`` being
what fits beside the special tokens, with one exception: when both texts have more, the one with
more tokens in all keeps one token more (``room`` odd). ``longer`` reads both until the shorter
one ends to tell.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass

# The first piece holds this many characters per token needed (English averages ~4.5 with spaces),
# so one tokenizer call usually suffices; a piece holding too few tokens grows this many times.
CHARS_PER_TOKEN = 8
GROWTH = 4
# Counting all of a text's tokens (``longer``) goes this many characters at a time, to bound memory.
COUNT_CHUNK = 1 << 16
ASCII_WHITESPACE = " \t\n\r"
# The main CJK ideograph blocks, all inside what BertNormalizer pads with spaces (``is_chinese_char``).
CJK_IDEOGRAPHS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"


@dataclass(frozen=True)
class Cutter:
    """Where a text can be cut without changing its tokens, for one tokenizer (see the module docstring)."""

    separator: re.Pattern
    # A run of ASCII letters and digits long enough to be shortened, and what is kept at each end.
    long_run: re.Pattern
    keep: int

    @classmethod
    def of(cls, tokenizer) -> Cutter | None:
        """The cutter for a fast tokenizer with BERT's pipeline, or None: its texts are tokenized whole."""
        pipeline = json.loads(tokenizer.backend_tokenizer.to_str())
        normalizer, pre_tokenizer, model = (pipeline.get(k) or {} for k in ("normalizer", "pre_tokenizer", "model"))
        added = pipeline.get("added_tokens") or []
        if (
            normalizer.get("type", "BertNormalizer") != "BertNormalizer"
            or pre_tokenizer.get("type") != "BertPreTokenizer"
            or model.get("type") != "WordPiece"
            or any(token["single_word"] or token["lstrip"] or token["rstrip"] for token in added)
        ):
            return None
        in_added = set("".join(token["content"] for token in added))
        separators = "".join(c for c in ASCII_WHITESPACE + string.punctuation if c not in in_added)
        cjk = normalizer.get("handle_chinese_chars") and not any(re.search(f"[{CJK_IDEOGRAPHS}]", c) for c in in_added)
        # Every added token must hold a character that is not an ASCII letter or digit, so that none can
        # match inside a run of them, in the part of a long run that is cut out.
        if any(re.fullmatch("[A-Za-z0-9]+", token["content"]) for token in added):
            return None
        keep = max([model["max_input_chars_per_word"] + 1, *(len(token["content"]) for token in added)])
        return cls(
            separator=re.compile(f"[{re.escape(separators)}{CJK_IDEOGRAPHS if cjk else ''}]"),
            # Only whole runs: the lookbehind stops a failed match from being retried inside the run.
            long_run=re.compile(f"(?<![A-Za-z0-9])[A-Za-z0-9]{{{2 * keep + 1},}}"),
            keep=keep,
        )

    def piece(self, text: str, chars: int, side: str) -> tuple[str, bool]:
        """The text's ``side`` end, at least ``chars`` characters of it (cut at a separator), shortened; and
        whether it holds all of the text."""
        if len(text) <= chars:
            cut = None
        elif side == "right":
            cut = self.cut_after(text, chars)
        else:
            cut = self.cut_before(text, len(text) - chars)
        if cut is None:
            return self.shorten(text), True
        return self.shorten(text[:cut] if side == "right" else text[cut:]), False

    def shorten(self, text: str) -> str:
        """``text`` with each long run of ASCII letters and digits cut to its ends: the same tokens."""
        return self.long_run.sub(lambda run: run[0][: self.keep] + run[0][-self.keep :], text)

    def cut_after(self, text: str, start: int) -> int | None:
        """Where the first separator at or after ``start`` is (the piece ends before it), or None."""
        found = self.separator.search(text, start)
        return None if found is None else found.start()

    def cut_before(self, text: str, end: int) -> int | None:
        """Just after the last separator before ``end`` (where the piece starts), or None."""
        span = 256
        while end > 0:
            start = max(end - span, 0)
            last = None
            for last in self.separator.finditer(text, start, end):  # noqa: B007 (the last one is wanted)
                pass
            if last is not None:
                return last.end()
            end, span = start, span * 2
        return None


def ends(backend, cutter: Cutter | None, texts: list[str], need: int, side: str) -> list[tuple[object, bool]]:
    """For each text, the ``Encoding`` (no special tokens) of a piece at its ``side`` end holding at least
    ``need`` tokens, or of the whole text; and whether it is the whole text.

    ``backend`` is the fast tokenizer's ``backend_tokenizer``, with truncation and padding off.
    """
    found: list = [None] * len(texts)
    chars = [need * CHARS_PER_TOKEN] * len(texts)
    pending = list(range(len(texts)))
    while pending:
        pieces = [cutter.piece(texts[i], chars[i], side) if cutter else (texts[i], True) for i in pending]
        encodings = backend.encode_batch_fast([piece for piece, _ in pieces], add_special_tokens=False)
        still = []
        for i, (piece, whole), encoding in zip(pending, pieces, encodings, strict=True):
            if whole or len(encoding.ids) >= need:
                found[i] = (encoding, whole)
            else:
                chars[i] = GROWTH * max(chars[i], len(piece))
                still.append(i)
        pending = still
    return found


def longer(backend, cutter: Cutter | None, a: str, b: str) -> bool:
    """Whether ``a`` has more tokens than ``b``: both counted in chunks only until the shorter one ends."""
    counts, chunks = [0, 0], [_chunks(cutter, a), _chunks(cutter, b)]
    ended = [False, False]
    while True:
        # Read on in a text while it could still be the shorter one (or the other has not ended).
        reading = [i for i in (0, 1) if not ended[i] and (not ended[1 - i] or counts[i] <= counts[1 - i])]
        if not reading:
            return counts[0] > counts[1]
        pieces = [next(chunks[i], None) for i in reading]
        texts = [piece for piece in pieces if piece is not None]
        encodings = iter(backend.encode_batch_fast(texts, add_special_tokens=False) if texts else [])
        for i, piece in zip(reading, pieces, strict=True):
            if piece is None:
                ended[i] = True
            else:
                counts[i] += len(next(encodings).ids)


def _chunks(cutter: Cutter | None, text: str):
    """``text`` in pieces of about ``COUNT_CHUNK`` characters, cut where cutting keeps its tokens, shortened."""
    if cutter is None:
        yield text
        return
    start = 0
    while start < len(text):
        cut = cutter.cut_after(text, start + COUNT_CHUNK) if len(text) > start + COUNT_CHUNK else None
        end = len(text) if cut is None else cut
        yield cutter.shorten(text[start:end])
        start = end
