"""A caller needs nothing from this project, nor tritonclient: plain ``grpcio`` and Triton's protocol.

A Go, Java or Node service compiles Triton's ``grpc_service.proto`` and ``model_config.proto``
(triton-inference-server/common) and calls ``inference.GRPCInferenceService``. Here the same
protocol definition is taken as data: the serialized ``FileDescriptorProto``s that protoc embedded
in the generated ``*_pb2.py`` files shipped in the tritonclient wheel, read from the files as bytes
(nothing of tritonclient is imported or called). A fresh descriptor pool builds the message classes,
and one ``channel.unary_unary`` per service method is exactly what a generated stub is. (Compiling
the ``.proto`` text with ``grpcio-tools`` was the alternative: every grpcio-tools that pairs with
grpcio 1.85 needs protobuf ≥ 7, which tritonclient's protobuf 4.25 pin rules out.)
"""

from __future__ import annotations

import ast
import importlib.util
import struct
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from distilbert_serving.corpus import english_texts
from helpers import infer_ids, reference_logits, tokenizer

PROTO_FILES = ("model_config_pb2.py", "service_pb2.py")  # dependency order
LABELS = ["negative", "neutral", "positive"]


def serialized_descriptor(generated_module: Path) -> bytes:
    """The FileDescriptorProto bytes protoc wrote into a generated module (found in its AST, not run)."""
    for node in ast.walk(ast.parse(generated_module.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile":
            return node.args[0].value
    raise LookupError(f"{generated_module}: no serialized FileDescriptorProto")


class TritonProtocol:
    """Message classes and a stub for ``inference.GRPCInferenceService``, as protoc would generate."""

    def __init__(self):
        folder = Path(next(iter(importlib.util.find_spec("tritonclient").submodule_search_locations))) / "grpc"
        self.pool = descriptor_pool.DescriptorPool()
        for name in PROTO_FILES:
            self.pool.Add(descriptor_pb2.FileDescriptorProto.FromString(serialized_descriptor(folder / name)))
        self.service = self.pool.FindServiceByName("inference.GRPCInferenceService")

    def message(self, name: str):
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(f"inference.{name}"))

    def stub(self, channel: grpc.Channel):
        methods = {}
        for method in self.service.methods:
            request = message_factory.GetMessageClass(method.input_type)
            response = message_factory.GetMessageClass(method.output_type)
            methods[method.name] = channel.unary_unary(
                f"/{self.service.full_name}/{method.name}",
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )
        return methods


@pytest.fixture(scope="module")
def protocol() -> TritonProtocol:
    return TritonProtocol()


@pytest.fixture(scope="module")
def stub(server, protocol):
    with grpc.insecure_channel(server.grpc_url) as channel:
        yield protocol.stub(channel)


def text_request(protocol, texts: list[str], pairs: list[str] | None = None, class_count: int = 0):
    request = protocol.message("ModelInferRequest")(model_name="distilbert_text")
    for name, values in (("text", texts), ("text_pair", pairs)):
        if values is not None:
            tensor = request.inputs.add(name=name, datatype="BYTES", shape=[len(values), 1])
            tensor.contents.bytes_contents.extend(v.encode("utf-8") for v in values)
    for name in ("logits", "label", "probabilities"):
        output = request.outputs.add(name=name)
        if name == "probabilities" and class_count:
            output.parameters["classification"].int64_param = class_count
    return request


def decode_outputs(response) -> dict[str, np.ndarray]:
    """Triton answers in ``raw_output_contents``: little-endian FP32, or length-prefixed BYTES."""
    decoded = {}
    for tensor, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        if tensor.datatype == "FP32":
            decoded[tensor.name] = np.frombuffer(raw, dtype="<f4").reshape(list(tensor.shape))
        else:
            values, offset = [], 0
            while offset < len(raw):
                (length,) = struct.unpack_from("<I", raw, offset)
                values.append(raw[offset + 4 : offset + 4 + length].decode("utf-8"))
                offset += 4 + length
            decoded[tensor.name] = np.array(values, dtype=object).reshape(list(tensor.shape))
    return decoded


def test_plain_grpc_client_discovers_the_text_model(stub, protocol):
    assert stub["ServerReady"](protocol.message("ServerReadyRequest")()).ready
    metadata = stub["ModelMetadata"](protocol.message("ModelMetadataRequest")(name="distilbert_text"))
    assert {(t.name, t.datatype, tuple(t.shape)) for t in metadata.inputs} == {
        ("text", "BYTES", (-1, 1)),
        ("text_pair", "BYTES", (-1, 1)),
    }
    assert {t.name for t in metadata.outputs} == {"logits", "probabilities", "label"}


def test_plain_grpc_client_gets_the_token_endpoints_answers_for_texts_and_pairs(
    stub, protocol, grpc_client, tiny_checkpoints
):
    checkpoint = tiny_checkpoints["single_label_classification"]
    texts = english_texts(6, seed=10)

    singles = decode_outputs(stub["ModelInfer"](text_request(protocol, texts[:3])))
    paired = decode_outputs(stub["ModelInfer"](text_request(protocol, texts[3:5], texts[:2], class_count=2)))

    ids = tokenizer(checkpoint)(texts[:3], truncation=True, max_length=512)["input_ids"]
    ids += tokenizer(checkpoint)(texts[3:5], texts[:2], truncation=True, max_length=512)["input_ids"]
    expected = reference_logits(checkpoint, ids)
    via_tokens = np.concatenate(
        [infer_ids(grpc_client, "distilbert_classifier", np.array([r])).as_numpy("logits") for r in ids]
    )
    served = np.concatenate([singles["logits"], paired["logits"]])
    assert served.shape == (5, 3)
    assert np.abs(served - expected).max() <= 1e-4 and np.abs(served - via_tokens).max() <= 1e-4
    labels = [*singles["label"][:, 0], *paired["label"][:, 0]]
    assert labels == [LABELS[i] for i in np.argmax(expected, axis=1)]
    # Triton's classification extension: "score:index:label", best first.
    top = [entry.split(":") for entry in paired["probabilities"][0]]
    assert [int(index) for _, index, _ in top] == [int(i) for i in np.argsort(-expected[3])[:2]]
    assert top[0][2] == labels[3]


def test_plain_grpc_client_gets_invalid_argument_for_an_empty_string(stub, protocol):
    with pytest.raises(grpc.RpcError) as raised:
        stub["ModelInfer"](text_request(protocol, ["a fine text", ""]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "text[1] is empty or only whitespace" in raised.value.details()
