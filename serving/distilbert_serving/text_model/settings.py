"""The text model's ``config.pbtxt`` ``parameters``, and the facts it takes from the token model.

The knobs are ``TokenizeOptions`` (``truncation``, ``truncation_side``), the defaults a request
may override with request parameters of the same names, and ``TextLimits`` (``max_text_bytes``,
``max_request_bytes``), which no request can change. Each is defined once here, and
``build/export.py`` derives its command-line options and the parameters it writes from them.

The rest is written by export, not tuned. ``token_model`` and ``tokenizer`` say where the
work goes: the token model that this model calls (BLS) and the folder, relative to the model
repository, that holds the tokenizer of that model's checkpoint. ``max_sequence_length`` and
``labels`` are published for clients; at load they are checked against that checkpoint
(``check_checkpoint_facts``). The token model's ``max_batch_size`` is not copied here but read
from its own ``config.pbtxt`` at load (``read_max_batch_size``).

A value the model cannot serve with raises ``ConfigError`` at load.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..knobs import ConfigError, knob, parameter_values, read_knobs

WRITTEN = ("token_model", "tokenizer", "max_sequence_length", "labels")


@dataclass(frozen=True)
class TokenizeOptions:
    """How one request's texts are cut to the model's maximum length: the text model's knobs."""

    truncation: bool = knob(
        True, "cut over-long rows to max_sequence_length tokens (longest_first for pairs); false: refuse them"
    )
    truncation_side: str = knob("right", "the end of an over-long text that truncation cuts", choices=("right", "left"))


@dataclass(frozen=True)
class TextLimits:
    """The most bytes of text one request may carry: the text model's knobs that no request can change.

    Checked before a text is decoded or tokenized. Truncation reads only the start (or end) of most long
    texts, but two kinds are read further: a text without any separator (Thai, say) to its end, and the
    two texts of a pair that are both long until the shorter one ends (bounded.py), ~140 ms per MiB.
    128 KiB per text keeps those within ~70 ms of a 512-token text's work and is still ~55 times what
    512 tokens of English take (~2.3 KB).
    """

    max_text_bytes: int = knob(
        128 << 10, "bytes (UTF-8) one text or text_pair may have; longer ones are refused", minimum=1
    )
    max_request_bytes: int = knob(
        8 << 20,
        "bytes of all texts and text_pairs of one request together; more are refused",
        minimum=1,
        flag="--text-max-request-bytes",
    )


@dataclass(frozen=True)
class TextSettings:
    """What the model reads at load: where its work goes, the published facts, the request defaults."""

    token_model: str
    tokenizer: str
    max_sequence_length: int
    labels: tuple[str, ...]
    # Defaults of the requests' options.
    defaults: TokenizeOptions = TokenizeOptions()
    limits: TextLimits = TextLimits()


def read_text_settings(model_config: dict) -> TextSettings:
    """The ``parameters`` of a model config (as Triton passes it to ``initialize``), or ``ConfigError``."""
    values = parameter_values(model_config)
    missing = [name for name in WRITTEN if name not in values]
    if missing:
        raise ConfigError(f"config.pbtxt lacks parameter(s) {', '.join(missing)}; re-run build/export.py")
    try:
        max_length, labels = int(values["max_sequence_length"]), tuple(json.loads(values["labels"]))
    except (TypeError, ValueError):
        raise ConfigError(
            "parameters max_sequence_length (an integer) and labels (a JSON list) are malformed"
        ) from None
    return TextSettings(
        token_model=values["token_model"],
        tokenizer=values["tokenizer"],
        max_sequence_length=max_length,
        labels=labels,
        defaults=TokenizeOptions(**read_knobs(TokenizeOptions, values)),
        limits=TextLimits(**read_knobs(TextLimits, values)),
    )


def check_checkpoint_facts(settings: TextSettings, folder: Path) -> None:
    """The published labels and maximum length are those of the checkpoint in ``folder``, or ``ConfigError``."""
    config_file = Path(folder) / "config.json"
    if not config_file.exists():
        return
    config = json.loads(config_file.read_text())
    labels = tuple(config["id2label"][str(i)] for i in range(len(config["id2label"])))
    found = {"labels": labels, "max_sequence_length": int(config["max_position_embeddings"])}
    published = {"labels": settings.labels, "max_sequence_length": settings.max_sequence_length}
    if found != published:
        raise ConfigError(f"config.pbtxt publishes {published} but {config_file} has {found}; re-run build/export.py")


# Text-format tokens: whitespace, a comment, a quoted string, a delimiter, or a word.
_TOKEN = re.compile(r"""\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[{}<>\[\]:,;]|[^\s{}<>\[\]:,;#"']+""")


def top_level_field(text: str, name: str) -> str | None:
    """The value of the top-level scalar field ``name`` in a ``config.pbtxt``, or None.

    Triton's Python backend gives a model no API to read another model's config, and the server
    container need not have protobuf's model-config definitions: this reads one plain field of
    the text format, skipping nested messages, quoted strings and comments.
    """
    tokens = [t for t in _TOKEN.findall(text) if not t.isspace() and not t.startswith("#")]
    depth = 0
    for index, token in enumerate(tokens):
        if token in ("{", "<"):
            depth += 1
        elif token in ("}", ">"):
            depth -= 1
        elif depth == 0 and token == name and tokens[index + 1 : index + 2] == [":"]:
            return tokens[index + 2] if index + 2 < len(tokens) else None
    return None


def read_max_batch_size(config_pbtxt: Path) -> int:
    """The token model's ``max_batch_size``, the most rows one BLS request may carry, or ``ConfigError``."""
    if not Path(config_pbtxt).is_file():
        raise ConfigError(f"{config_pbtxt} not found: the token model this model calls needs its config.pbtxt")
    value = top_level_field(Path(config_pbtxt).read_text(), "max_batch_size") or "0"  # Triton's default
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(
            f"{config_pbtxt}: max_batch_size is {value}; the token model must batch (max_batch_size of at least 1)"
        )
    return int(value)
