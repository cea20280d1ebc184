"""The committed config.pbtxt is what build/export.py writes, and matches what model.py reads."""

from pathlib import Path

import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc

from clf_serving.settings import read_settings
from export import ServingConfig, model_config

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
DEFAULT_FACTS = {
    "problem_type": "single_label_classification",
    "max_sequence_length": 512,
    "vocab_size": 30522,
    "num_labels": 3,
    "labels": ["negative", "neutral", "positive"],
}


def committed() -> mc.ModelConfig:
    return text_format.Parse((REPOSITORY / "distilbert_classifier" / "config.pbtxt").read_text(), mc.ModelConfig())


def test_committed_config_is_what_export_writes_for_the_default_checkpoint():
    assert committed() == model_config(DEFAULT_FACTS, ServingConfig())


def test_token_inputs_are_ragged_int64_and_the_mask_is_optional():
    inputs = {i.name: i for i in committed().input}
    assert set(inputs) == {"input_ids", "attention_mask"}
    for tensor in inputs.values():
        assert tensor.data_type == mc.TYPE_INT64 and list(tensor.dims) == [-1] and tensor.allow_ragged_batch
    assert inputs["attention_mask"].optional and not inputs["input_ids"].optional


def test_outputs_carry_the_labels_file_for_triton_classification():
    config = committed()
    assert {o.name: (o.data_type, list(o.dims), o.label_filename) for o in config.output} == {
        "logits": (mc.TYPE_FP32, [3], "labels.txt"),
        "probabilities": (mc.TYPE_FP32, [3], "labels.txt"),
    }


def test_batching_instances_and_warmup_are_configured():
    config = committed()
    assert config.max_batch_size > 0 and config.HasField("dynamic_batching")
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_AUTO
    assert {w.name for w in config.model_warmup} == {"short_text", "long_batch"}


def test_model_reads_the_published_parameters():
    settings = read_settings(json_format.MessageToDict(committed(), preserving_proto_field_name=True))
    assert settings.precision == "fp32"
    assert settings.labels == ("negative", "neutral", "positive")
    assert settings.max_sequence_length == 512 and settings.vocab_size == 30522


def test_unknown_precision_is_refused_at_load():
    config = model_config(DEFAULT_FACTS, ServingConfig(precision="int3"))
    with pytest.raises(ValueError, match="precision must be one of"):
        read_settings(json_format.MessageToDict(config, preserving_proto_field_name=True))
