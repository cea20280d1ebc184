"""Each model's committed config.pbtxt is what build/export.py writes, and matches what its model.py reads."""

from dataclasses import fields
from pathlib import Path

import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc

from distilbert_serving.export import ServingConfig, TextModelConfig, model_config, text_model_config
from distilbert_serving.text_model.settings import TextLimits, TextSettings, TokenizeOptions, read_text_settings
from distilbert_serving.token_model.settings import ServingSettings, read_settings

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
TOKEN, TEXT = "distilbert_classifier", "distilbert_text"
MODELS = (TOKEN, TEXT)
DEFAULT_FACTS = {
    "problem_type": "single_label_classification",
    "max_sequence_length": 512,
    "vocab_size": 30522,
    "num_labels": 3,
    "labels": ["negative", "neutral", "positive"],
    # contract.tokenizer_fingerprint of the bert-base-uncased WordPiece tokenizer that build/checkpoints.py writes
    "tokenizer_sha256": "67b5de988bf4e6164ed95e5c8aaa04c956cd7726ffda54f78ab4b01aa62055c5",
}
EXPORTED = {
    TOKEN: lambda: model_config(DEFAULT_FACTS, ServingConfig()),
    TEXT: lambda: text_model_config(DEFAULT_FACTS, ServingConfig(), TextModelConfig()),
}
READ = {TOKEN: read_settings, TEXT: read_text_settings}
# name → (data type, dims, optional, allow_ragged_batch)
INPUTS = {
    TOKEN: {"input_ids": (mc.TYPE_INT64, [-1], False, True), "attention_mask": (mc.TYPE_INT64, [-1], True, True)},
    TEXT: {"text": (mc.TYPE_STRING, [1], False, False), "text_pair": (mc.TYPE_STRING, [1], True, False)},
}
# name → (data type, dims, label file)
SCORES = {"logits": (mc.TYPE_FP32, [3], "labels.txt"), "probabilities": (mc.TYPE_FP32, [3], "labels.txt")}
OUTPUTS = {TOKEN: SCORES, TEXT: {**SCORES, "label": (mc.TYPE_STRING, [1], "")}}
# (instance kind, count, warmups): the text model warms its tokenizer itself (Triton refuses BLS before ready).
PLACEMENT = {  # kind, instances, warm-ups, max_batch_size
    TOKEN: (mc.ModelInstanceGroup.KIND_AUTO, 2, {"short_text", "long_batch"}, 16),
    TEXT: (mc.ModelInstanceGroup.KIND_CPU, 2, set(), 64),
}


def committed(model: str) -> mc.ModelConfig:
    return text_format.Parse((REPOSITORY / model / "config.pbtxt").read_text(), mc.ModelConfig())


def as_json(config: mc.ModelConfig) -> dict:
    """The model config as Triton hands it to ``initialize`` (``args["model_config"]``)."""
    return json_format.MessageToDict(config, preserving_proto_field_name=True)


@pytest.mark.parametrize("model", MODELS)
def test_committed_config_is_what_export_writes_for_the_default_checkpoint(model):
    assert committed(model) == EXPORTED[model]()


@pytest.mark.parametrize("model", MODELS)
def test_inputs_are_the_ones_model_py_reads(model):
    inputs = {i.name: (i.data_type, list(i.dims), i.optional, i.allow_ragged_batch) for i in committed(model).input}
    assert inputs == INPUTS[model]


@pytest.mark.parametrize("model", MODELS)
def test_outputs_carry_the_labels_file_for_triton_classification(model):
    outputs = {o.name: (o.data_type, list(o.dims), o.label_filename) for o in committed(model).output}
    assert outputs == OUTPUTS[model]


@pytest.mark.parametrize("model", MODELS)
def test_batching_instances_and_warmup_are_configured(model):
    config = committed(model)
    kind, count, warmups, max_batch_size = PLACEMENT[model]
    assert config.max_batch_size == max_batch_size and config.HasField("dynamic_batching")
    assert (config.instance_group[0].kind, config.instance_group[0].count) == (kind, count)
    assert {w.name for w in config.model_warmup} == warmups


@pytest.mark.parametrize("model", MODELS)
def test_model_reads_the_published_parameters(model):
    settings = READ[model](as_json(committed(model)))
    assert settings.labels == ("negative", "neutral", "positive") and settings.max_sequence_length == 512


@pytest.mark.parametrize(("model", "settings_class"), [(TOKEN, ServingSettings), (TEXT, TextSettings)])
def test_every_parameter_export_writes_is_one_the_model_reads(model, settings_class):
    knobs = [*fields(TokenizeOptions), *fields(TextLimits)]
    read = {f.name for f in fields(settings_class)} | {f.name for f in knobs}
    assert set(committed(model).parameters) <= read


def test_token_model_reads_its_knobs_and_facts():
    settings = read_settings(as_json(committed(TOKEN)))
    assert (settings.precision, settings.forward_mode, settings.checkpoint) == ("auto", "packed", "checkpoint")
    assert settings.vocab_size == 30522 and settings.num_labels == 3


def test_text_model_reads_where_its_work_goes_and_its_request_defaults():
    settings = read_text_settings(as_json(committed(TEXT)))
    assert settings.token_model == TOKEN and settings.tokenizer == f"{TOKEN}/1/checkpoint"
    assert settings.defaults == TokenizeOptions(truncation=True, truncation_side="right")
    assert settings.limits == TextLimits(max_text_bytes=128 << 10, max_request_bytes=8 << 20)
