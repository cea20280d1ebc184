"""Turn a DistilBERT classification checkpoint into a Triton model-repository model.

    python build/export.py --checkpoint checkpoints/full-single            # local folder
    python build/export.py --checkpoint distilbert-base-uncased-finetuned-sst-2-english  # hub id (needs network)

Writes, under ``<repository>/<model-name>/``:
    config.pbtxt              backend ``distilbert``; inputs/outputs, dynamic batching, instances, warmup,
                              and the checkpoint facts clients read (problem type, lengths, labels)
    labels.txt                one label per line, from ``id2label`` (Triton classification)
    <version>/checkpoint/     config.json, *.safetensors, tokenizer files (``--version``, default 1)

A new checkpoint of the same model goes in as the next version beside the old one
(``--version 2``), for a running server to load while the old one serves (docs/OPERATIONS.md);
it must publish what the model publishes (labels, problem type, limits, tokenizer), else it is refused.

and, beside it, the raw-text model ``<repository>/distilbert_text/`` (``--no-text-model`` skips it):
    config.pbtxt              backend ``distilbert_text``; BYTES ``text`` / ``text_pair`` in; ``logits``,
                              ``probabilities``, ``label`` out; it tokenizes with the token model's
                              checkpoint and calls that model (BLS)
    labels.txt                the labels for Triton classification

Configuration and checkpoint only: the code is this installed package, which the server runs
through its backends (``distilbert_serving.backends``).

Each option comes from the one definition of the knob it sets: the models' own knobs from their
settings modules (``token_model/settings.py``, ``text_model/settings.py``), Triton's settings
from ``ServingConfig`` and ``TextModelConfig`` here. A value or combination a model would refuse at
load (``--precision fp16 --kind cpu``) is refused here, before anything is written.

Safetensors weights only: a checkpoint with only pickled weights is refused.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from .backends import TEXT_BACKEND, TOKEN_BACKEND
from .contract import (
    ATTENTION_MASK,
    INPUT_IDS,
    LABEL,
    TEXT,
    TEXT_PAIR,
    TOKEN_OUTPUTS,
    resolve_problem_type,
    tokenizer_fingerprint,
)
from .knobs import ConfigError, Knob, check_knobs, knob, knobs_of
from .text_model.settings import TextLimits, TokenizeOptions
from .token_model.settings import ServingKnobs, ServingSettings, check_settings

DEFAULT_MODEL_NAME = "distilbert_classifier"
DEFAULT_TEXT_MODEL_NAME = "distilbert_text"
LABELS_FILE = "labels.txt"
CHECKPOINT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
KINDS = {
    "auto": mc.ModelInstanceGroup.KIND_AUTO,
    "cpu": mc.ModelInstanceGroup.KIND_CPU,
    "gpu": mc.ModelInstanceGroup.KIND_GPU,
}
# Folder inside the version folder that receives the checkpoint: the token model's default.
CHECKPOINT_FOLDER = ServingSettings().checkpoint


@dataclass(frozen=True)
class ServingConfig(ServingKnobs):
    """The token model as export writes it: Triton's settings for it, defined here, and the model's
    own knobs (precision, forward_mode, ...) inherited from ``token_model.settings.ServingKnobs``,
    their one definition. The defaults are what ``make serve`` uses (see README)."""

    model_name: str = knob(DEFAULT_MODEL_NAME, "name of the token model in the repository")
    # 16: on a CPU a batch of 16 short texts already keeps the GEMMs efficient (the packed forward
    # plans by tokens, not rows), and under overload it bounds what a request waits behind: the
    # queue plus one batch per instance (docs/RELIABILITY.md, overload). A GPU wants bigger batches:
    # export KIND_GPU models with --max-batch-size 64 or more (and a queue to match).
    max_batch_size: int = knob(16, "rows (texts) per execute of the token model", minimum=1)
    # None: at low load a request does not wait for company (p50 at concurrency 1), and at high
    # load requests queue behind the running forward anyway, so batches fill regardless
    # (benchmarks/benchmark.py queue-delay; the raw-text model keeps a delay, see TextModelConfig).
    max_queue_delay_us: int = knob(0, "the dynamic batcher's max_queue_delay_microseconds", minimum=0)
    # Two: a bounded queue needs a second instance on Triton 2.51 (see max_queue_size); on a GPU both
    # share the device (one forward runs while the other's batch is prepared); on a CPU each gets half
    # the cores (cpu_threads 0).
    instance_count: int = knob(2, "instances of the token model", minimum=1, flag="--instances")
    instance_kind: str = knob(
        "auto",
        "auto: GPU where Triton sees one, else CPU (the same repository loads on both)",
        choices=tuple(KINDS),
        flag="--kind",
    )
    # Off only for the benchmark's naive baseline.
    dynamic_batching: bool = knob(
        True, "batch requests dynamically (off: one request per execute, and no queue policy)"
    )
    # Overload (docs/RELIABILITY.md): at most this many requests wait in the dynamic batcher's queue;
    # the next one is refused at once with UNAVAILABLE "Exceeds maximum queue size" instead of
    # waiting without bound. 64: one full batch waits while the instances run theirs, so 64 closed-loop
    # callers are never refused; scale it with throughput (≈ requests/s × acceptable wait). Any queue
    # policy turns off Triton's payload prefetching, and then one instance alone stalls at times (a
    # missed wake-up): two or more instances are required (check_config).
    max_queue_size: int = knob(64, "requests that may wait in the queue; 0: unbounded", minimum=0)
    # A request that waited this long in the queue is refused (UNAVAILABLE "Request timeout expired")
    # rather than served late. Non-zero also makes Triton honour a request's own, shorter ``timeout``
    # (the client library sends its deadline): with 0 Triton ignores request timeouts.
    queue_timeout_us: int = knob(
        10_000_000, "queue time after which a request is refused (requests may ask for less); 0: none", minimum=0
    )
    # Versions: export writes version N beside N-1, and a running server with an admin key loads it while
    # N-1 serves (docs/OPERATIONS.md, rolling out). Every version of a model publishes the same facts
    # (labels, problem type, limits, tokenizer): export refuses one that disagrees, and so does the model's load.
    version: int = knob(1, "the version folder to write; the versions already there stay", minimum=1)
    # Two: the new version and the one before it, for callers pinned to it and a rollback without a load.
    versions_served: int = knob(
        2, "versions loaded at once, newest first (version_policy latest); requests without a version get the newest",
        minimum=1,
    )  # fmt: skip


@dataclass(frozen=True)
class TextModelConfig(TokenizeOptions, TextLimits):
    """The raw-text model as export writes it: Triton's settings for it, defined here, and the
    model's own knobs (truncation, truncation_side; max_text_bytes, max_request_bytes) inherited from
    ``text_model.settings.TokenizeOptions`` and ``TextLimits``. The defaults are what ``make serve`` uses."""

    model_name: str = knob(DEFAULT_TEXT_MODEL_NAME, "name of the raw-text model", flag="--text-model-name")
    max_batch_size: int = knob(
        64, "rows (texts) per execute of the raw-text model", minimum=1, flag="--text-max-batch-size"
    )
    # 500 µs, unlike the token model's 0: a batch of text requests shares one tokenizer call and one
    # BLS call, and 0 served fewer texts per second at 16 and 64 callers (README, raw-text model).
    max_queue_delay_us: int = knob(
        500, "the raw-text model's max_queue_delay_microseconds", minimum=0, flag="--text-max-queue-delay-us"
    )
    # Two CPU instances: while one awaits the token model's answer, the other tokenizes the
    # next batch, so the token model's queue never runs dry for want of tokens.
    instance_count: int = knob(2, "CPU instances of the raw-text model", minimum=1, flag="--text-instances")
    # Its queue is bounded like the token model's (two instances, so no stall); a full one refuses
    # at once with UNAVAILABLE, and so does a full token model's queue, passed through BLS.
    max_queue_size: int = knob(
        128, "text requests that may wait in the raw-text model's queue; 0: unbounded", minimum=0,
        flag="--text-max-queue-size",
    )  # fmt: skip
    queue_timeout_us: int = knob(
        10_000_000, "queue time after which a text request is refused; 0: none", minimum=0,
        flag="--text-queue-timeout-us",
    )  # fmt: skip


def check_config(serving: ServingConfig) -> None:
    """``ConfigError`` for what the token model would refuse at load, or Triton would silently ignore."""
    check_settings(serving, serving.instance_kind)  # every knob's value, and the combinations
    check_queue_policy(serving, "")


def check_queue_policy(config, prefix: str) -> None:
    """A queue policy needs two instances or more on Triton 2.51 (and in the 25.10 container)."""
    if not (config.max_queue_size or config.queue_timeout_us) or not getattr(config, "dynamic_batching", True):
        return  # no queue policy (without dynamic batching there is no queue to bound)
    if config.instance_count < 2:
        raise ConfigError(
            f"a queue policy (--{prefix}max-queue-size, --{prefix}queue-timeout-us) on one instance stalls Triton's "
            "dynamic batcher ~500 ms at a time (it turns off payload prefetching; docs/RELIABILITY.md): use "
            f"--{prefix}instances 2 or more, or set both to 0 (an unbounded queue)"
        )


def queue_policy(batching: mc.ModelDynamicBatching, max_queue_size: int, timeout_us: int) -> None:
    """Bound ``batching``'s queue: refuse (UNAVAILABLE) past ``max_queue_size`` waiting or ``timeout_us`` waited."""
    if not (max_queue_size or timeout_us):
        return
    policy = batching.default_queue_policy
    policy.timeout_action = mc.ModelQueuePolicy.REJECT
    policy.max_queue_size = max_queue_size
    policy.default_timeout_microseconds = timeout_us
    # A request's own timeout counts when shorter than the default (and only when one is set).
    policy.allow_timeout_override = True


def resolve_checkpoint(checkpoint: str) -> Path:
    """A local folder as is; anything else is taken as a hub id and downloaded."""
    path = Path(checkpoint)
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(checkpoint, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))


def checkpoint_facts(folder: Path) -> dict:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    if config.model_type != "distilbert":
        raise SystemExit(f"{folder}: model_type is {config.model_type!r}; only DistilBERT is served")
    if not list(folder.glob("*.safetensors")):
        raise SystemExit(f"{folder}: no *.safetensors weights (pickled .bin weights are never loaded)")
    labels = [config.id2label[i] for i in range(config.num_labels)]
    return {
        "problem_type": resolve_problem_type(config.problem_type, config.num_labels),
        "max_sequence_length": int(config.max_position_embeddings),
        "vocab_size": int(config.vocab_size),
        "num_labels": int(config.num_labels),
        "labels": labels,
        "tokenizer_sha256": tokenizer_fingerprint(folder),
    }


# What every version of one model must agree on: the facts its config publishes.
SHARED_FACTS = ("problem_type", "max_sequence_length", "vocab_size", "num_labels", "labels", "tokenizer_sha256")


def check_versions_agree(model_dir: Path, facts: dict, version: int) -> None:
    """``ConfigError`` unless ``facts`` (of the checkpoint going in as ``version``) are those the model publishes.

    Only when other versions are there: a model's config is one for all its versions.
    """
    others = sorted(
        int(d.name) for d in model_dir.glob("*") if d.is_dir() and d.name.isdigit() and d.name != str(version)
    )
    if not others or not (model_dir / "config.pbtxt").is_file():
        return
    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())
    published = {key: value.string_value for key, value in config.parameters.items()}
    ours = {name: json.dumps(value) if name == "labels" else str(value) for name, value in facts.items()}
    wrong = [
        f"{name}: versions {others} serve {published[name]}, this checkpoint has {ours[name]}"
        for name in SHARED_FACTS
        if name in published and ours.get(name) != published[name]
    ]
    if wrong:
        raise ConfigError(
            f"version {version} of {model_dir.name} would disagree with the versions beside it ("
            + "; ".join(wrong)
            + "): export it as another model (--model-name)"
        )


def model_config(facts: dict, serving: ServingConfig) -> mc.ModelConfig:
    config = mc.ModelConfig(name=serving.model_name, backend=TOKEN_BACKEND, max_batch_size=serving.max_batch_size)
    for name, optional in ((INPUT_IDS, False), (ATTENTION_MASK, True)):
        # allow_ragged_batch: requests of different lengths share one execute; model.py pads them.
        config.input.add(name=name, data_type=mc.TYPE_INT64, dims=[-1], allow_ragged_batch=True, optional=optional)
    for name in TOKEN_OUTPUTS:
        config.output.add(name=name, data_type=mc.TYPE_FP32, dims=[facts["num_labels"]], label_filename=LABELS_FILE)
    if serving.dynamic_batching:
        config.dynamic_batching.max_queue_delay_microseconds = serving.max_queue_delay_us
        queue_policy(config.dynamic_batching, serving.max_queue_size, serving.queue_timeout_us)
    config.instance_group.add(count=serving.instance_count, kind=KINDS[serving.instance_kind])
    config.version_policy.latest.num_versions = serving.versions_served
    # Warm the shapes that matter: one short text, and a full batch of long ones.
    for name, batch, length in (("short_text", 1, 16), ("long_batch", 8, 128)):
        warmup = config.model_warmup.add(name=name, batch_size=batch)
        warmup.inputs[INPUT_IDS].CopyFrom(mc.ModelWarmup.Input(data_type=mc.TYPE_INT64, dims=[length], zero_data=True))
    published = {name: str(facts[name]) for name in ("problem_type", "max_sequence_length", "vocab_size", "num_labels")}
    if facts.get("tokenizer_sha256"):
        published["tokenizer_sha256"] = facts["tokenizer_sha256"]
    parameters = {"checkpoint": CHECKPOINT_FOLDER, **published, "labels": json.dumps(facts["labels"])}
    for key, value in {**parameters, **knob_parameters(serving, ServingKnobs)}.items():
        config.parameters[key].string_value = value
    return config


def knob_parameters(config, knobs_class) -> dict[str, str]:
    """The knobs of ``knobs_class`` (a model's settings) in ``config``, as the parameters the model reads."""
    return {k.name: k.render(getattr(config, k.name)) for k in knobs_of(knobs_class)}


def write_model(checkpoint: Path, repository: Path, serving: ServingConfig) -> Path:
    check_config(serving)
    facts = checkpoint_facts(checkpoint)
    model_dir = repository / serving.model_name
    check_versions_agree(model_dir, facts, serving.version)
    target = model_dir / str(serving.version) / CHECKPOINT_FOLDER
    if target.resolve() != checkpoint.resolve():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for file in [*checkpoint.glob("*.safetensors"), *(checkpoint / name for name in CHECKPOINT_FILES)]:
            if file.exists():
                shutil.copy2(file, target / file.name)
    (model_dir / LABELS_FILE).write_text("".join(f"{label}\n" for label in facts["labels"]))
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(model_config(facts, serving)))
    return model_dir


def text_model_config(facts: dict, serving: ServingConfig, text: TextModelConfig) -> mc.ModelConfig:
    config = mc.ModelConfig(name=text.model_name, backend=TEXT_BACKEND, max_batch_size=text.max_batch_size)
    for name, optional in ((TEXT, False), (TEXT_PAIR, True)):
        config.input.add(name=name, data_type=mc.TYPE_STRING, dims=[1], optional=optional)
    for name in TOKEN_OUTPUTS:
        config.output.add(name=name, data_type=mc.TYPE_FP32, dims=[facts["num_labels"]], label_filename=LABELS_FILE)
    config.output.add(name=LABEL, data_type=mc.TYPE_STRING, dims=[1])
    config.dynamic_batching.max_queue_delay_microseconds = text.max_queue_delay_us
    queue_policy(config.dynamic_batching, text.max_queue_size, text.queue_timeout_us)
    # Tokenization is CPU work wherever the token model runs.
    config.instance_group.add(count=text.instance_count, kind=mc.ModelInstanceGroup.KIND_CPU)
    # No model_warmup: Triton refuses inference (BLS included) until the server is ready, so a
    # warmup through the token model would fail the load. model.py warms its tokenizer itself.
    # The token model's max_batch_size is not copied: the text model reads it from that model's config.
    parameters = {
        "token_model": serving.model_name,
        # Relative to the model repository: the token model's own tokenizer, one copy for both.
        # Any version's: they all tokenize alike (check_versions_agree, and the token model's load).
        "tokenizer": f"{serving.model_name}/{serving.version}/{CHECKPOINT_FOLDER}",
        "max_sequence_length": str(facts["max_sequence_length"]),
        "labels": json.dumps(facts["labels"]),
    }
    knobs = {**knob_parameters(text, TokenizeOptions), **knob_parameters(text, TextLimits)}
    for key, value in {**parameters, **knobs}.items():
        config.parameters[key].string_value = value
    return config


def write_text_model(
    checkpoint: Path, repository: Path, serving: ServingConfig, text: TextModelConfig | None = None
) -> Path:
    """The raw-text model beside the token model ``serving.model_name`` (written by ``write_model``)."""
    text = text or TextModelConfig()
    check_knobs(text)
    check_queue_policy(text, "text-")
    facts = checkpoint_facts(checkpoint)
    model_dir = repository / text.model_name
    # The version folder Triton requires; the model's files are its token model's (parameters.tokenizer).
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    (model_dir / LABELS_FILE).write_text("".join(f"{label}\n" for label in facts["labels"]))
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(text_model_config(facts, serving, text)))
    return model_dir


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and each option's default."""


def add_knob_options(parser: argparse.ArgumentParser, config_class, title: str) -> None:
    """One option per knob of ``config_class``: flag, type, default, choices and help from its definition."""
    group = parser.add_argument_group(title)
    for k in knobs_of(config_class):
        dest, metavar = f"{config_class.__name__}.{k.name}", k.name.upper()
        if k.type is bool:
            group.add_argument(
                k.option, dest=dest, action=argparse.BooleanOptionalAction, default=k.default, help=k.doc
            )
        else:
            group.add_argument(
                k.option,
                dest=dest,
                metavar=metavar if not k.choices else None,
                type=_option_type(k),
                choices=k.choices or None,
                default=k.default,
                help=k.doc,
            )


def config_from(args: argparse.Namespace, config_class):
    """``config_class`` built from the options ``add_knob_options`` added for it."""
    return config_class(**{k.name: getattr(args, f"{config_class.__name__}.{k.name}") for k in knobs_of(config_class)})


def _option_type(k: Knob):
    def parse(text: str):
        try:
            return k.parse(text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = k.type.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="local checkpoint folder or hub id")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--no-text-model", action="store_true", help="do not write the raw-text model beside it")
    add_knob_options(parser, ServingConfig, "token model (knobs from token_model/settings.py, Triton's here)")
    add_knob_options(parser, TextModelConfig, "raw-text model (knobs from text_model/settings.py, Triton's here)")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    serving, text = config_from(args, ServingConfig), config_from(args, TextModelConfig)
    try:  # refuse what would only fail at load, before downloading anything
        check_config(serving)
        check_knobs(text)
        check_queue_policy(text, "text-")
    except ConfigError as error:
        parser.error(str(error))
    checkpoint = resolve_checkpoint(args.checkpoint)
    try:
        print(write_model(checkpoint, args.repository, serving))
    except ConfigError as error:
        parser.error(str(error))
    if not args.no_text_model:
        print(write_text_model(checkpoint, args.repository, serving, text))


if __name__ == "__main__":
    main()
