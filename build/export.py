"""Turn a DistilBERT classification checkpoint into a Triton model-repository model.

    python build/export.py --checkpoint checkpoints/full-single            # local folder
    python build/export.py --checkpoint distilbert-base-uncased-finetuned-sst-2-english  # hub id (needs network)

Writes, under ``<repository>/<model-name>/``:
    config.pbtxt              inputs/outputs, dynamic batching, instances, warmup, and the
                              checkpoint facts clients read (problem type, lengths, labels)
    labels.txt                one label per line, from ``id2label`` (Triton classification)
    1/checkpoint/             config.json, *.safetensors, tokenizer files
    1/model.py, 1/clf_serving copied from this project when the repository is elsewhere

and, beside it, the raw-text model ``<repository>/distilbert_text/`` (``--no-text-model`` skips it):
    config.pbtxt              BYTES ``text`` / ``text_pair`` in; ``logits``, ``probabilities``, ``label`` out;
                              it tokenizes with the token model's checkpoint and calls that model (BLS)
    labels.txt                the labels for Triton classification
    1/model.py, 1/text_serving copied from this project when the repository is elsewhere

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

PROJECT = Path(__file__).resolve().parent.parent
MODEL_SOURCE = PROJECT / "model_repository" / "distilbert_classifier" / "1"
DEFAULT_MODEL_NAME = "distilbert_classifier"
TEXT_MODEL_SOURCE = PROJECT / "model_repository" / "distilbert_text" / "1"
DEFAULT_TEXT_MODEL_NAME = "distilbert_text"
LABELS_FILE = "labels.txt"
CHECKPOINT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
KINDS = {
    "auto": mc.ModelInstanceGroup.KIND_AUTO,
    "cpu": mc.ModelInstanceGroup.KIND_CPU,
    "gpu": mc.ModelInstanceGroup.KIND_GPU,
}


@dataclass(frozen=True)
class ServingConfig:
    """Knobs of the served model; the defaults are what ``make serve`` uses (see README)."""

    model_name: str = DEFAULT_MODEL_NAME
    # Rows (texts) per execute. Enough for a 64-way concurrent load to form one batch.
    max_batch_size: int = 64
    # Short: at low load a request must not wait for company (p50 at concurrency 1), and at
    # high load requests queue behind the running forward anyway, so batches fill regardless.
    max_queue_delay_us: int = 500
    instance_count: int = 1
    instance_kind: str = "auto"
    precision: str = "fp32"
    cpu_threads: int = 0
    forward_mode: str = "packed"
    forward_overhead_tokens: int = 16
    attention_overhead_tokens: int = 64
    max_forward_tokens: int = 8192
    # Off only for the benchmark's naive baseline: one request per execute.
    dynamic_batching: bool = True
    # Overload (see RELIABILITY.md): at most this many requests wait in the dynamic batcher's queue;
    # the next one is refused at once with UNAVAILABLE "Exceeds maximum queue size" instead of
    # waiting without bound. 0: unbounded. Off by default: on Triton 2.51 any queue policy on a
    # model with ONE instance stalls the batcher ~500 ms at a time under concurrent load (measured:
    # p99 520 ms instead of 17 ms, a fifth of the throughput); with two or more instances it does
    # not. The overload-protected profile is `--instances 2 --cpu-threads 1 --max-queue-size 128`.
    max_queue_size: int = 0
    # A request that waited this long in the queue is refused (timeout_action REJECT) rather than
    # served late; a request may ask for a shorter timeout (allow_timeout_override). 0: no timeout.
    queue_timeout_us: int = 0


@dataclass(frozen=True)
class TextModelConfig:
    """Knobs of the raw-text model; the defaults are what ``make serve`` uses (see README)."""

    model_name: str = DEFAULT_TEXT_MODEL_NAME
    max_batch_size: int = 64
    max_queue_delay_us: int = 500
    # Two CPU instances: while one awaits the token model's answer, the other tokenizes the
    # next batch, so the token model's queue never runs dry for want of tokens.
    instance_count: int = 2
    # Defaults a request may override with request parameters of the same names.
    truncation: bool = True
    truncation_side: str = "right"


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
    import sys

    sys.path.insert(0, str(MODEL_SOURCE))
    from clf_serving.scores import resolve_problem_type

    labels = [config.id2label[i] for i in range(config.num_labels)]
    return {
        "problem_type": resolve_problem_type(config.problem_type, config.num_labels),
        "max_sequence_length": int(config.max_position_embeddings),
        "vocab_size": int(config.vocab_size),
        "num_labels": int(config.num_labels),
        "labels": labels,
    }


def model_config(facts: dict, serving: ServingConfig) -> mc.ModelConfig:
    config = mc.ModelConfig(name=serving.model_name, backend="python", max_batch_size=serving.max_batch_size)
    for name, optional in (("input_ids", False), ("attention_mask", True)):
        # allow_ragged_batch: requests of different lengths share one execute; model.py pads them.
        config.input.add(name=name, data_type=mc.TYPE_INT64, dims=[-1], allow_ragged_batch=True, optional=optional)
    for name in ("logits", "probabilities"):
        config.output.add(name=name, data_type=mc.TYPE_FP32, dims=[facts["num_labels"]], label_filename=LABELS_FILE)
    if serving.dynamic_batching:
        config.dynamic_batching.max_queue_delay_microseconds = serving.max_queue_delay_us
        if serving.max_queue_size or serving.queue_timeout_us:
            policy = config.dynamic_batching.default_queue_policy
            policy.timeout_action = mc.ModelQueuePolicy.REJECT
            policy.max_queue_size = serving.max_queue_size
            policy.default_timeout_microseconds = serving.queue_timeout_us
            policy.allow_timeout_override = True
    config.instance_group.add(count=serving.instance_count, kind=KINDS[serving.instance_kind])
    # Warm the shapes that matter: one short text, and a full batch of long ones.
    for name, batch, length in (("short_text", 1, 16), ("long_batch", 8, 128)):
        warmup = config.model_warmup.add(name=name, batch_size=batch)
        warmup.inputs["input_ids"].CopyFrom(
            mc.ModelWarmup.Input(data_type=mc.TYPE_INT64, dims=[length], zero_data=True)
        )
    parameters = {
        "checkpoint": "checkpoint",
        "precision": serving.precision,
        "cpu_threads": str(serving.cpu_threads),
        "forward_mode": serving.forward_mode,
        "forward_overhead_tokens": str(serving.forward_overhead_tokens),
        "attention_overhead_tokens": str(serving.attention_overhead_tokens),
        "max_forward_tokens": str(serving.max_forward_tokens),
        "problem_type": facts["problem_type"],
        "max_sequence_length": str(facts["max_sequence_length"]),
        "vocab_size": str(facts["vocab_size"]),
        "num_labels": str(facts["num_labels"]),
        "labels": json.dumps(facts["labels"]),
    }
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    return config


def write_model(checkpoint: Path, repository: Path, serving: ServingConfig) -> Path:
    facts = checkpoint_facts(checkpoint)
    model_dir = repository / serving.model_name
    version_dir = model_dir / "1"
    if version_dir.resolve() != MODEL_SOURCE.resolve():
        shutil.copytree(
            MODEL_SOURCE, version_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "checkpoint")
        )
    target = version_dir / "checkpoint"
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
    config = mc.ModelConfig(name=text.model_name, backend="python", max_batch_size=text.max_batch_size)
    for name, optional in (("text", False), ("text_pair", True)):
        config.input.add(name=name, data_type=mc.TYPE_STRING, dims=[1], optional=optional)
    for name in ("logits", "probabilities"):
        config.output.add(name=name, data_type=mc.TYPE_FP32, dims=[facts["num_labels"]], label_filename=LABELS_FILE)
    config.output.add(name="label", data_type=mc.TYPE_STRING, dims=[1])
    config.dynamic_batching.max_queue_delay_microseconds = text.max_queue_delay_us
    # Tokenization is CPU work wherever the token model runs.
    config.instance_group.add(count=text.instance_count, kind=mc.ModelInstanceGroup.KIND_CPU)
    # No model_warmup: Triton refuses inference (BLS included) until the server is ready, so a
    # warmup through the token model would fail the load. model.py warms its tokenizer itself.
    parameters = {
        "classifier_model": serving.model_name,
        "classifier_max_batch_size": str(serving.max_batch_size),
        # Relative to the model repository: the token model's own tokenizer, one copy for both.
        "tokenizer": f"{serving.model_name}/1/checkpoint",
        "truncation": "true" if text.truncation else "false",
        "truncation_side": text.truncation_side,
        "max_sequence_length": str(facts["max_sequence_length"]),
        "num_labels": str(facts["num_labels"]),
        "labels": json.dumps(facts["labels"]),
    }
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    return config


def write_text_model(
    checkpoint: Path, repository: Path, serving: ServingConfig, text: TextModelConfig | None = None
) -> Path:
    """The raw-text model beside the token model ``serving.model_name`` (written by ``write_model``)."""
    text = text or TextModelConfig()
    facts = checkpoint_facts(checkpoint)
    model_dir = repository / text.model_name
    version_dir = model_dir / "1"
    if version_dir.resolve() != TEXT_MODEL_SOURCE.resolve():
        shutil.copytree(
            TEXT_MODEL_SOURCE, version_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    (model_dir / LABELS_FILE).write_text("".join(f"{label}\n" for label in facts["labels"]))
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(text_model_config(facts, serving, text)))
    return model_dir


def main(argv: list[str] | None = None) -> None:
    defaults = ServingConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="local checkpoint folder or hub id")
    parser.add_argument("--repository", type=Path, default=PROJECT / "model_repository")
    parser.add_argument("--model-name", default=defaults.model_name)
    parser.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size)
    parser.add_argument("--max-queue-delay-us", type=int, default=defaults.max_queue_delay_us)
    parser.add_argument("--instances", type=int, default=defaults.instance_count)
    parser.add_argument(
        "--kind",
        choices=sorted(KINDS),
        default=defaults.instance_kind,
        help="auto: GPU where Triton sees one, else CPU (the same repository loads on both)",
    )
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=defaults.precision)
    parser.add_argument("--cpu-threads", type=int, default=defaults.cpu_threads, help="0: cores ÷ CPU instances")
    parser.add_argument("--forward-mode", choices=("packed", "padded"), default=defaults.forward_mode)
    parser.add_argument("--forward-overhead-tokens", type=int, default=defaults.forward_overhead_tokens)
    parser.add_argument("--attention-overhead-tokens", type=int, default=defaults.attention_overhead_tokens)
    parser.add_argument("--max-forward-tokens", type=int, default=defaults.max_forward_tokens)
    parser.add_argument("--max-queue-size", type=int, default=defaults.max_queue_size, help="0: unbounded")
    parser.add_argument("--queue-timeout-us", type=int, default=defaults.queue_timeout_us, help="0: no timeout")
    text_defaults = TextModelConfig()
    parser.add_argument("--no-text-model", action="store_true", help="do not write the raw-text model beside it")
    parser.add_argument("--text-model-name", default=text_defaults.model_name)
    parser.add_argument("--text-instances", type=int, default=text_defaults.instance_count)
    args = parser.parse_args(argv)
    serving = ServingConfig(
        model_name=args.model_name,
        max_batch_size=args.max_batch_size,
        max_queue_delay_us=args.max_queue_delay_us,
        instance_count=args.instances,
        instance_kind=args.kind,
        precision=args.precision,
        cpu_threads=args.cpu_threads,
        forward_mode=args.forward_mode,
        forward_overhead_tokens=args.forward_overhead_tokens,
        attention_overhead_tokens=args.attention_overhead_tokens,
        max_forward_tokens=args.max_forward_tokens,
        max_queue_size=args.max_queue_size,
        queue_timeout_us=args.queue_timeout_us,
    )
    checkpoint = resolve_checkpoint(args.checkpoint)
    print(write_model(checkpoint, args.repository, serving))
    if not args.no_text_model:
        text = TextModelConfig(model_name=args.text_model_name, instance_count=args.text_instances)
        print(write_text_model(checkpoint, args.repository, serving, text))


if __name__ == "__main__":
    main()
