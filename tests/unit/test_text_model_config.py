"""The committed raw-text config.pbtxt is what build/export.py writes, and what model.py reads."""

from pathlib import Path

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc

from export import ServingConfig, TextModelConfig, text_model_config
from text_serving.settings import read_text_settings

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
DEFAULT_FACTS = {
    "problem_type": "single_label_classification",
    "max_sequence_length": 512,
    "vocab_size": 30522,
    "num_labels": 3,
    "labels": ["negative", "neutral", "positive"],
}


def committed() -> mc.ModelConfig:
    return text_format.Parse((REPOSITORY / "distilbert_text" / "config.pbtxt").read_text(), mc.ModelConfig())


def test_committed_text_config_is_what_export_writes_for_the_default_checkpoint():
    assert committed() == text_model_config(DEFAULT_FACTS, ServingConfig(), TextModelConfig())


def test_text_inputs_are_one_string_per_row_and_the_pair_is_optional():
    inputs = {i.name: i for i in committed().input}
    assert {n: (i.data_type, list(i.dims), i.optional) for n, i in inputs.items()} == {
        "text": (mc.TYPE_STRING, [1], False),
        "text_pair": (mc.TYPE_STRING, [1], True),
    }


def test_text_outputs_match_the_token_model_plus_the_label_name():
    outputs = {o.name: (o.data_type, list(o.dims), o.label_filename) for o in committed().output}
    assert outputs == {
        "logits": (mc.TYPE_FP32, [3], "labels.txt"),
        "probabilities": (mc.TYPE_FP32, [3], "labels.txt"),
        "label": (mc.TYPE_STRING, [1], ""),
    }


def test_text_model_batches_on_cpu_instances_and_reads_its_parameters():
    config = committed()
    assert config.max_batch_size == 64 and config.HasField("dynamic_batching")
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU and config.instance_group[0].count == 2
    settings = read_text_settings(json_format.MessageToDict(config, preserving_proto_field_name=True))
    assert settings.classifier_model == "distilbert_classifier"
    assert settings.tokenizer == "distilbert_classifier/1/checkpoint"
    assert (settings.truncation, settings.truncation_side) == (True, "right")
    assert settings.labels == ("negative", "neutral", "positive") and settings.max_sequence_length == 512
