"""Text → token ids with the served checkpoint's own tokenizer (fast, batched, no torch)."""

from __future__ import annotations

import os
import threading
from typing import Literal

from ._errors import IncompatibleModelError, InvalidInputError
from ._model_info import ModelInfo, check_tokenizer

# True: the tokenizer's own side (right unless it was saved otherwise); False: never truncate
# (a text longer than the model's maximum is then rejected by the server).
Truncation = bool | Literal["right", "left"]


def load_tokenizer(source):
    """A tokenizer object as given, or ``AutoTokenizer.from_pretrained`` of a folder or hub id."""
    if not isinstance(source, (str, os.PathLike)):
        return source
    path = os.fspath(source)
    # An explicit path (absolute or ./relative) that is missing is a typo, not a hub id to look up.
    if (os.path.isabs(path) or path.startswith(".")) and not os.path.isdir(path):
        raise IncompatibleModelError(f"cannot load a tokenizer from {path!r}: no such folder")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as error:  # transformers and the hub raise many kinds; all mean "not a tokenizer"
        raise IncompatibleModelError(f"cannot load a tokenizer from {path!r}: {error}") from error


class Encoder:
    """Tokenizes batches for one served model, producing only the inputs it declares, unpadded; thread-safe."""

    def __init__(self, tokenizer, info: ModelInfo) -> None:
        self.tokenizer = tokenizer
        self.max_length = check_tokenizer(info, tokenizer)
        self.input_names = info.input_names
        pad = int(getattr(tokenizer, "pad_token_id", None) or 0)
        self.pad_values = dict.fromkeys(info.input_names, 0) | {"input_ids": pad}
        # The truncation side is tokenizer state, so a call that changes it holds the lock.
        self._lock = threading.Lock()

    def encode(self, texts: list[str], text_pair: list[str] | None = None, truncation: Truncation = True) -> dict:
        """Input name → one list of ids per text (unpadded), for the names the server takes."""
        if truncation not in (True, False, "right", "left"):
            raise InvalidInputError(f"truncation must be True, False, 'right' or 'left'; got {truncation!r}")
        # verbose=False: no "longer than the maximum" warning, the server answers that as an error.
        options = dict(truncation=bool(truncation), max_length=self.max_length if truncation else None, verbose=False)
        with self._lock:
            previous = self.tokenizer.truncation_side
            if isinstance(truncation, str):
                self.tokenizer.truncation_side = truncation
            try:
                encoded = self.tokenizer(texts, text_pair, **options)
            finally:
                self.tokenizer.truncation_side = previous
        return {name: encoded[name] for name in self.input_names if name in encoded}
