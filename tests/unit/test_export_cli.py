"""build/export.py derives its options and the parameters it writes from the models' knobs, and
refuses at export what a model would refuse at load."""

from __future__ import annotations

import pytest
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as mc

from distilbert_serving.export import (
    ServingConfig,
    TextModelConfig,
    build_parser,
    check_config,
    config_from,
    model_config,
    text_model_config,
    write_model,
)
from distilbert_serving.knobs import ConfigError, knobs_of
from distilbert_serving.text_model.settings import TextLimits, TokenizeOptions, read_text_settings
from distilbert_serving.token_model.precision import AUTO, CHOICES
from distilbert_serving.token_model.settings import ServingKnobs, read_settings

FACTS = {
    "problem_type": "single_label_classification",
    "max_sequence_length": 512,
    "vocab_size": 30522,
    "num_labels": 2,
    "labels": ["negative", "positive"],
}
MODEL_KNOBS = [*knobs_of(ServingKnobs), *knobs_of(TokenizeOptions), *knobs_of(TextLimits)]


def option(flag: str):
    return build_parser()._option_string_actions[flag]


@pytest.mark.parametrize("knob", MODEL_KNOBS, ids=lambda k: k.name)
def test_cli_default_choices_and_help_come_from_the_settings_module(knob):
    action = option(knob.option)
    assert action.default == knob.default
    assert tuple(action.choices or ()) == knob.choices
    assert action.help == knob.doc


def test_precision_option_offers_exactly_the_precisions_the_engine_has():
    assert option("--precision").choices == CHOICES and option("--precision").default == AUTO


def test_no_options_give_the_default_configs():
    args = build_parser().parse_args(["--checkpoint", "x"])
    assert config_from(args, ServingConfig) == ServingConfig()
    assert config_from(args, TextModelConfig) == TextModelConfig()


def test_options_keep_their_names():
    flags = set(build_parser()._option_string_actions)
    assert {"--instances", "--kind", "--max-queue-size", "--queue-timeout-us", "--text-instances"} <= flags
    assert {"--text-model-name", "--no-text-model", "--model-name", "--max-batch-size"} <= flags


def test_options_reach_the_model_through_the_parameters_export_writes():
    argv = ["--checkpoint", "x", "--precision", "BF16", "--cpu-threads", "2", "--forward-mode", "padded"]
    argv += ["--no-truncation", "--truncation-side", "left", "--instances", "3"]
    args = build_parser().parse_args([*argv, "--max-text-bytes", "2048", "--text-max-request-bytes", "4096"])
    serving, text = config_from(args, ServingConfig), config_from(args, TextModelConfig)
    assert serving.instance_count == 3

    config = json_format.MessageToDict(model_config(FACTS, serving), preserving_proto_field_name=True)
    settings = read_settings(config)
    assert (settings.precision, settings.cpu_threads, settings.forward_mode) == ("bf16", 2, "padded")
    text_config = text_model_config(FACTS, serving, text)
    text_settings = read_text_settings(json_format.MessageToDict(text_config, preserving_proto_field_name=True))
    assert text_settings.defaults == TokenizeOptions(truncation=False, truncation_side="left")
    assert text_settings.limits == TextLimits(max_text_bytes=2048, max_request_bytes=4096)


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["--precision", "fp16", "--kind", "cpu"], "precision fp16 needs a GPU instance"),
        (["--precision", "int3"], "precision must be one of auto, fp32, bf16, fp16"),
        (["--cpu-threads", "-1"], "cpu_threads must be at least 0"),
        (["--truncation-side", "middle"], "truncation_side must be one of right, left"),
        (["--instances", "1"], "on one instance stalls Triton's dynamic batcher"),
        (["--text-instances", "1"], "--text-instances 2 or more"),
    ],
)
def test_export_refuses_what_the_model_would_refuse_at_load_before_writing(tmp_path, capsys, argv, phrase):
    from distilbert_serving.export import main

    with pytest.raises(SystemExit) as exited:
        main(["--checkpoint", str(tmp_path / "absent"), "--repository", str(tmp_path / "repo"), *argv])
    assert exited.value.code == 2 and phrase in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()


def test_write_model_refuses_a_config_the_model_would_refuse(tmp_path):
    with pytest.raises(ConfigError, match="fp16 needs a GPU instance"):
        write_model(tmp_path / "absent", tmp_path, ServingConfig(precision="fp16", instance_kind="cpu"))


@pytest.mark.parametrize("kind", ["gpu", "auto"])
def test_fp16_is_exported_for_instances_that_may_run_on_a_gpu(kind):
    args = build_parser().parse_args(["--checkpoint", "x", "--precision", "fp16", "--kind", kind])
    check_config(config_from(args, ServingConfig))  # auto: checked again at load, where Triton has placed it


def test_default_queue_is_bounded_and_honours_request_timeouts():
    policy = model_config(FACTS, ServingConfig()).dynamic_batching.default_queue_policy
    assert policy.max_queue_size > 0 and policy.timeout_action == mc.ModelQueuePolicy.REJECT
    # Triton applies a request's own timeout only when it is shorter than a non-zero default.
    assert policy.allow_timeout_override and policy.default_timeout_microseconds > 0


@pytest.mark.parametrize(
    "serving",
    [
        ServingConfig(instance_count=1, max_queue_size=0, queue_timeout_us=0),
        ServingConfig(instance_count=1, dynamic_batching=False),
    ],
)
def test_one_instance_is_exported_without_a_queue_policy_when_asked_for(serving):
    check_config(serving)
    assert not model_config(FACTS, serving).dynamic_batching.HasField("default_queue_policy")
