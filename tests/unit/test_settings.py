"""Each knob is defined once, in its model's settings module; config errors are ``ConfigError`` at load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distilbert_serving.knobs import ConfigError, Knob, knobs_of
from distilbert_serving.text_model.settings import (
    TextSettings,
    TokenizeOptions,
    check_checkpoint_facts,
    read_max_batch_size,
    read_text_settings,
    top_level_field,
)
from distilbert_serving.text_model.validation import InvalidText
from distilbert_serving.token_model.precision import AUTO, CHOICES, PRECISIONS
from distilbert_serving.token_model.settings import (
    FORWARD_MODES,
    ServingKnobs,
    ServingSettings,
    check_settings,
    cpu_instances,
    read_settings,
)

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"


def parameters(**values: str) -> dict:
    """A model config as Triton passes it to ``initialize``, with only these parameters."""
    return {"parameters": {key: {"string_value": value} for key, value in values.items()}}


def text_parameters(**values: str) -> dict:
    written = {"token_model": "c", "tokenizer": "c/1/checkpoint", "max_sequence_length": "512", "labels": '["a"]'}
    return parameters(**{**written, **values})


def test_token_knobs_are_name_type_default_choices_and_doc_in_one_place():
    knobs = {k.name: k for k in knobs_of(ServingKnobs)}
    assert set(knobs) == {
        "precision",
        "cpu_threads",
        "forward_mode",
        "forward_overhead_tokens",
        "attention_overhead_tokens",
        "max_forward_tokens",
        "drop_cancelled",
    }
    assert knobs["precision"] == Knob("precision", str, AUTO, knobs["precision"].doc, choices=CHOICES, minimum=None)
    assert knobs["forward_mode"].choices == FORWARD_MODES and knobs["cpu_threads"].type is int
    assert all(k.doc for k in knobs.values())


def test_engine_dtypes_cover_exactly_the_precisions():
    from distilbert_serving.token_model.engine import DTYPES

    assert set(DTYPES) == set(PRECISIONS)


def test_settings_without_parameters_take_the_knob_defaults():
    settings = read_settings(parameters())
    assert settings == ServingSettings()
    assert {k.name: getattr(settings, k.name) for k in knobs_of(ServingKnobs)} == {
        k.name: k.default for k in knobs_of(ServingKnobs)
    }


def test_settings_parse_each_knob_as_its_type():
    settings = read_settings(parameters(precision="BF16", cpu_threads="2", labels='["x", "y"]', num_labels="2"))
    assert (settings.precision, settings.cpu_threads, settings.labels, settings.num_labels) == (
        "bf16",
        2,
        ("x", "y"),
        2,
    )


@pytest.mark.parametrize(
    ("precision", "kind"),
    [("fp16", "gpu"), ("fp16", "auto"), ("bf16", "cpu"), ("fp32", "CPU"), ("int8", "cpu"), ("int8", "auto")],
)
def test_check_settings_accepts_what_the_instance_can_run(precision, kind):
    check_settings(ServingKnobs(precision=precision), kind)


@pytest.mark.parametrize("kind", ["cpu", "CPU"])
def test_fp16_on_a_cpu_instance_is_refused(kind):
    with pytest.raises(ConfigError, match="precision fp16 needs a GPU instance"):
        check_settings(ServingKnobs(precision="fp16"), kind)


@pytest.mark.parametrize(
    ("knobs", "phrase"),
    [
        (ServingKnobs(precision="int8"), "precision int8 runs on CPU instances only"),
        (ServingKnobs(precision="int8", forward_mode="padded"), "use forward_mode packed"),
    ],
)
def test_int8_is_refused_on_a_gpu_instance_and_without_the_packed_forward(knobs, phrase):
    with pytest.raises(ConfigError, match=phrase):
        check_settings(knobs, "gpu" if knobs.forward_mode == "packed" else "cpu")


def test_cpu_instances_count_all_but_gpu_groups():
    config = {"instance_group": [{"count": 2, "kind": "KIND_CPU"}, {"count": 3, "kind": "KIND_GPU"}, {}]}
    assert cpu_instances(config) == 3
    assert cpu_instances({}) == 0


def test_text_settings_read_the_request_defaults_from_their_knobs():
    settings = read_text_settings(text_parameters(truncation="false", truncation_side="left"))
    assert settings.defaults == TokenizeOptions(truncation=False, truncation_side="left")
    assert read_text_settings(text_parameters()).defaults == TokenizeOptions()
    assert {k.name: k.default for k in knobs_of(TokenizeOptions)} == {"truncation": True, "truncation_side": "right"}


# Each model's settings read from a config with these parameter values.
READ_SETTINGS = {
    "token": lambda values: read_settings(parameters(**values)),
    "text": lambda values: read_text_settings(text_parameters(**values)),
}


@pytest.mark.parametrize(
    ("model", "values", "phrase"),
    [
        ("token", {"precision": "int3"}, "parameter precision must be one of auto, fp32, bf16, fp16, int8; got 'int3'"),
        ("token", {"forward_mode": "sparse"}, "parameter forward_mode must be one of packed, varlen, padded"),
        ("token", {"cpu_threads": "two"}, "parameter cpu_threads must be an integer; got 'two'"),
        ("token", {"max_forward_tokens": "0"}, "parameter max_forward_tokens must be at least 1; got 0"),
        ("token", {"vocab_size": "big"}, "parameter vocab_size must be an integer"),
        ("token", {"labels": "negative,positive"}, "parameter labels must be a JSON list"),
        ("text", {"truncation": "sometimes"}, "parameter truncation must be a boolean (true/false); got 'sometimes'"),
        ("text", {"truncation_side": "middle"}, "parameter truncation_side must be one of right, left; got 'middle'"),
        ("text", {"max_sequence_length": "long"}, "max_sequence_length (an integer)"),
    ],
)
def test_bad_config_value_is_a_config_error_naming_it_not_a_request_error(model, values, phrase):
    with pytest.raises(ConfigError) as raised:
        READ_SETTINGS[model](values)
    assert not isinstance(raised.value, InvalidText)
    assert phrase in str(raised.value)


def test_text_settings_require_what_export_writes():
    with pytest.raises(ConfigError, match="lacks parameter"):
        read_text_settings(parameters(tokenizer="x"))


def test_text_model_reads_the_token_models_max_batch_size_from_its_config():
    assert read_max_batch_size(REPOSITORY / "distilbert_classifier" / "config.pbtxt") == 16


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('name: "m"\nmax_batch_size: 8\n', "8"),
        ("max_batch_size:16 # rows\n", "16"),
        (
            '# max_batch_size: 1\nparameters { key: "max_batch_size" value { string_value: "2" } }\nmax_batch_size: 4',
            "4",
        ),
        ('input { name: "x" dims: [ -1 ] }\nensemble_scheduling { step { max_batch_size: 9 } }', None),
        ('parameters { key: "labels" value { string_value: "[\\"}\\", \\"max_batch_size: 5\\"]" } }', None),
        ("", None),
    ],
)
def test_top_level_field_skips_nested_messages_strings_and_comments(text, expected):
    assert top_level_field(text, "max_batch_size") == expected


@pytest.mark.parametrize(
    ("content", "phrase"), [("max_batch_size: 0", "is 0"), ('name: "m"', "is 0"), (None, "not found")]
)
def test_a_token_model_that_does_not_batch_or_is_missing_is_a_config_error(tmp_path, content, phrase):
    config = tmp_path / "config.pbtxt"
    if content is not None:
        config.write_text(content)
    with pytest.raises(ConfigError, match=phrase):
        read_max_batch_size(config)


def checkpoint_folder(tmp_path: Path, labels: list[str], max_length: int) -> Path:
    config = {"id2label": {str(i): label for i, label in enumerate(labels)}, "max_position_embeddings": max_length}
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_checkpoint_facts_that_match_pass_and_those_that_differ_are_a_config_error(tmp_path):
    settings = TextSettings("c", "c/1/checkpoint", 512, ("neg", "pos"))
    check_checkpoint_facts(settings, checkpoint_folder(tmp_path, ["neg", "pos"], 512))
    with pytest.raises(ConfigError, match="re-run build/export.py"):
        check_checkpoint_facts(settings, checkpoint_folder(tmp_path, ["neg", "neu", "pos"], 512))
