"""The JSON request speaks the whole API: options, presets, segments, JSON, one schema."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tersify import BadRequestError, Compressor, TokenFilter
from tersify.options import OPTIONS, PRESETS, filters, resolve
from tersify.request import CompressRequest, answer, compress, request_schema
from tersify.service import create_app

from fakes import FakeScorer
from texts import gate_request, sample_text


def test_preset_then_explicit_options() -> None:
    settings = resolve({"mode": "longllmlingua", "dynamic_context_compression_ratio": 0.1})
    for name, value in PRESETS["longllmlingua"].items():
        if name != "dynamic_context_compression_ratio":
            assert settings[name] == value
    assert settings["dynamic_context_compression_ratio"] == 0.1
    chosen = filters(settings)
    assert chosen.context is not None and chosen.context.rank_method == "longllmlingua"
    assert chosen.token.condition_on_question and chosen.token.contrastive
    token = filters(resolve({"mode": "token"}))
    assert token.context is None and token.token == TokenFilter()


def test_the_plain_request_answers_as_before(
    fake_compressor: Compressor, seed_request: dict
) -> None:
    parsed = CompressRequest.from_mapping(seed_request)
    via_request = compress(parsed, fake_compressor)
    direct = fake_compressor.compress(
        seed_request["context"], question=seed_request["question"], ratio=seed_request["ratio"]
    )
    assert answer(via_request) == answer(direct)
    assert set(answer(via_request)["data"]) == {
        "compressed_prompt", "origin_tokens", "compressed_tokens", "ratio", "rate", "mode", "saving"
    }
    assert answer(via_request)["data"]["mode"] == "token"  # one context: nothing to rank


def test_segments_and_json_over_the_wire(fake_compressor: Compressor) -> None:
    tagged = (
        "<llmlingua, compress=False>Keep this line exactly.</llmlingua>"
        + sample_text("english", 2000, 3)
    )
    client = TestClient(create_app(fake_compressor))
    done = client.post("/compress", json={"segments": tagged, "rate": 0.4})
    assert done.status_code == 200, done.text
    data = done.json()["data"]
    assert data["compressed_prompt"].startswith("Keep this line exactly.")
    assert data["compressed_tokens"] == fake_compressor.count(data["compressed_prompt"])
    value = {"title": "Bridge report", "body": sample_text("english", 1500, 4), "n": 3}
    done = client.post("/compress", json={"json": value, "keep_keys": ["title"], "rate": 0.5})
    assert done.status_code == 200, done.text
    out = json.loads(done.json()["data"]["compressed_prompt"])
    assert out["title"] == "Bridge report" and out["n"] == 3
    assert len(out["body"]) < len(value["body"])


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"rank_method": "cohere"}, "rank_method"),
        ({"reorder_context": "shuffle"}, "reorder_context"),
        ({"dynamic_context_compression_ratio": 2}, "dynamic_context_compression_ratio"),
        ({"keep_first_sentence": -1}, "keep_first_sentence"),
        ({"keep_first_sentence": 1}, "use_sentence_level_filter"),
        ({"force_tokens": "a"}, "force_tokens"),
        ({"force_context_ids": [True]}, "force_context_ids"),
        ({"condition_compare": "yes"}, "condition_compare"),
        ({"context_budget": "__import__('os')"}, "context_budget"),
        ({"mode": "fastest"}, "mode"),
        ({"use_token_level_filter": False}, "use_token_level_filter"),
        ({"explain": "yes"}, "explain"),
        ({"iterative_size": 100}, "iterative_size"),
        ({"context_budget": "+" + "9" * 400}, "context_budget"),
        ({"context_budget": "+\u0661\u0662"}, "context_budget"),
        ({"token_budget_ratio": "x"}, "token_budget_ratio"),
        ({"use_sentence_level_filter": True, "token_budget_ratio": 1e308}, "token_budget_ratio"),
        ({"force_context_ids": [[[[1]]]] * 1000}, "force_context_ids"),
    ],
)
def test_invalid_options_are_400s_naming_the_field(
    fake_compressor: Compressor, extra: dict, field: str
) -> None:
    client = TestClient(create_app(fake_compressor))
    done = client.post("/compress", json=gate_request(**extra))
    assert done.status_code == 400, done.text
    error = done.json()["error"]
    assert field in error["message"] and error["type"].endswith("Error")
    with pytest.raises(BadRequestError, match=field):
        CompressRequest.from_mapping(gate_request(**extra))


def test_schema_documents_every_field_and_option() -> None:
    schema = request_schema()
    for option in OPTIONS:
        spec = schema["properties"][option.name]
        assert "default" in spec and spec["description"]
    assert schema["additionalProperties"] is False
    assert {"required": ["segments"]} in schema["oneOf"]


def test_explain_adds_an_explanation_only_when_asked(fake_compressor: Compressor) -> None:
    client = TestClient(create_app(fake_compressor))
    plain = client.post("/compress", json=gate_request()).json()["data"]
    explained = client.post("/compress", json=gate_request(explain=True)).json()["data"]
    assert "explanation" not in plain
    assert explained["compressed_prompt"] == plain["compressed_prompt"]
    contexts = explained["explanation"]["contexts"]
    assert len(contexts) == 5 and all(sum(c["kept"]) == c["length"] for c in contexts)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_are_not_json(literal: bytes) -> None:
    with pytest.raises(BadRequestError, match="finite"):
        CompressRequest.from_json(b'{"json": {"a": ' + literal + b', "b": "text"}}')
    with pytest.raises(BadRequestError, match="not valid JSON"):
        Compressor(FakeScorer()).compress_json({"a": float("nan"), "b": "some text " * 50})


def test_messages_never_echo_a_huge_value(fake_compressor: Compressor) -> None:
    client = TestClient(create_app(fake_compressor))
    done = client.post("/compress", json=gate_request(force_context_ids=[[[[1]]]] * 1000))
    assert done.status_code == 400 and len(done.json()["error"]["message"]) < 300
