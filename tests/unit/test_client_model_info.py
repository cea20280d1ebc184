"""The client reads what it must agree on from the model config and checks the tokenizer."""

from __future__ import annotations

import json

import pytest

from distilbert_client import IncompatibleModelError, RetryPolicy
from distilbert_client._model_info import ModelInfo, check_tokenizer
from distilbert_client._retry import Deadline
from distilbert_client._tokenize import Encoder
from distilbert_serving.export import ServingConfig, write_model

SINGLE = "single_label_classification"


@pytest.fixture(scope="module")
def served_config(tiny_checkpoints, tmp_path_factory) -> dict:
    """The config ``build/export.py`` writes, as the server returns it (``as_json``)."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    repository = tmp_path_factory.mktemp("repository")
    write_model(tiny_checkpoints[SINGLE], repository, ServingConfig(model_name="m", precision="fp32"))
    config = text_format.Parse((repository / "m" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    return {"config": json_format.MessageToDict(config, preserving_proto_field_name=True)}


@pytest.fixture(scope="module")
def hf_tokenizer(tiny_checkpoints):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_checkpoints[SINGLE])


def test_model_info_reads_names_limits_and_labels_when_given_the_exported_config(served_config):
    info = ModelInfo.from_config(served_config)

    assert info.name == "m"
    assert info.input_names == ("input_ids", "attention_mask") and info.has_attention_mask
    assert info.outputs == ("logits", "probabilities") and info.scores_output == "probabilities"
    assert (info.problem_type, info.labels) == (SINGLE, ("negative", "neutral", "positive"))
    assert (info.max_batch_size, info.max_sequence_length, info.vocab_size) == (16, 512, 30522)


def test_model_info_falls_back_to_transformers_label_names_when_config_publishes_none(served_config):
    config = json.loads(json.dumps(served_config))
    for key in ("labels", "problem_type"):
        del config["config"]["parameters"][key]

    info = ModelInfo.from_config(config)

    assert info.labels == ("LABEL_0", "LABEL_1", "LABEL_2") and info.problem_type == SINGLE


def test_model_info_rejects_a_model_without_input_ids(served_config):
    config = json.loads(json.dumps(served_config))
    config["config"]["input"][0]["name"] = "tokens"

    with pytest.raises(IncompatibleModelError, match="no 'input_ids' input"):
        ModelInfo.from_config(config)


def test_check_tokenizer_returns_the_truncation_length_when_tokenizer_matches(served_config, hf_tokenizer):
    assert check_tokenizer(ModelInfo.from_config(served_config), hf_tokenizer) == 512


def test_check_tokenizer_says_which_sizes_differ_when_vocabulary_does_not_match(served_config, hf_tokenizer):
    config = json.loads(json.dumps(served_config))
    config["config"]["parameters"]["vocab_size"]["string_value"] = "50265"

    with pytest.raises(IncompatibleModelError, match="vocabulary of 30522 tokens but model 'm' was trained with 50265"):
        check_tokenizer(ModelInfo.from_config(config), hf_tokenizer)


def test_check_tokenizer_fails_when_tokenizer_allows_longer_sequences_than_the_model(served_config, hf_tokenizer):
    config = json.loads(json.dumps(served_config))
    config["config"]["parameters"]["max_sequence_length"]["string_value"] = "128"

    with pytest.raises(IncompatibleModelError, match="sequences of 512 tokens but model 'm' takes at most 128"):
        check_tokenizer(ModelInfo.from_config(config), hf_tokenizer)


def test_encoder_truncates_on_the_requested_side_without_changing_the_tokenizer(served_config, hf_tokenizer):
    encoder = Encoder(hf_tokenizer, ModelInfo.from_config(served_config))
    text = " ".join(str(n) for n in range(1000))

    right = encoder.encode([text], truncation="right")["input_ids"][0]
    left = encoder.encode([text], truncation="left")["input_ids"][0]
    whole = encoder.encode([text], truncation=False)["input_ids"][0]

    assert len(right) == len(left) == 512 and len(whole) > 1000
    assert right[:2] == whole[:2] and left[-2:] == whole[-2:] and right != left
    assert hf_tokenizer.truncation_side == "right"


def test_retry_policy_backs_off_exponentially_up_to_its_cap():
    policy = RetryPolicy(initial_backoff_s=0.1, multiplier=2.0, max_backoff_s=0.3, jitter=0.0)

    assert [policy.backoff_s(n) for n in (1, 2, 3, 4)] == pytest.approx([0.1, 0.2, 0.3, 0.3])
    jittered = RetryPolicy(initial_backoff_s=1.0, jitter=0.5)
    assert all(0.5 <= jittered.backoff_s(1) <= 1.0 for _ in range(100))


def test_deadline_has_no_limit_when_timeout_is_none():
    assert Deadline(None).remaining_s() is None and Deadline(None).allows_wait(1e9)
    assert 0 < Deadline(5.0).remaining_s() <= 5.0
