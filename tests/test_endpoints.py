"""Endpoints come from the server's configuration: names in the app, URLs and keys on the server only."""

import pytest

from medsearch.endpoints import endpoint as allowed_endpoint
from medsearch.endpoints import load_endpoints, scrub
from medsearch.generators import OpenAIChatGenerator, generate, make_generator
from medsearch.records import MedSearchError
from tests.chat_server import PIECES, _Chat


@pytest.fixture
def configured(tmp_path, monkeypatch):
    """Write an endpoints file and point MEDSEARCH_ENDPOINTS at it."""
    path = tmp_path / "endpoints.toml"

    def write(text: str):
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv("MEDSEARCH_ENDPOINTS", str(path))
        return path

    monkeypatch.delenv("MEDSEARCH_LLM", raising=False)
    return write


def test_a_configured_chat_endpoint_gets_its_own_key_and_no_other(endpoint, configured, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "global-secret")
    monkeypatch.setenv("MEDSEARCH_LLM_API_KEY", "llm-secret")
    configured(f'[chat.nokey]\nbase_url = "{endpoint}"\nmodel = "plain"\n'
               f'[chat.keyed]\nbase_url = "{endpoint}/"\nmodel = "plain"\napi_key = "file-secret"\n')
    for name, auth in (("nokey", None), ("keyed", "Bearer file-secret")):
        generator = make_generator(f"endpoint:{name}", stream=False)
        assert generator.name == f"{name} (plain)"  # shown and logged: no URL, no key
        assert generate(generator, [{"role": "user", "content": "hi"}]) == "".join(PIECES)
        assert (_Chat.requests[-1]["path"], _Chat.requests[-1]["auth"]) == ("/v1/chat/completions", auth)


def test_keys_are_scrubbed_from_errors(endpoint):
    generator = OpenAIChatGenerator(endpoint, "leaky", api_key="sk-live-123")
    with pytest.raises(MedSearchError) as error:
        generate(generator, [{"role": "user", "content": "hi"}])
    assert "HTTP 401" in str(error.value) and "sk-live-123" not in str(error.value)
    assert _Chat.requests[-1]["auth"] == "Bearer sk-live-123"  # the server did get (and echo) it
    assert scrub("token Bearer abc.def leaked, abc.def again", "abc.def") == "token Bearer *** leaked, *** again"


def test_medsearch_llm_is_the_default_endpoint(configured, monkeypatch, endpoint):
    configured(f'[local.qwen]\nmodel = "Qwen/Qwen2.5-0.5B-Instruct"\n[embeddings.tei]\nbase_url = "{endpoint}"\nmodel = "e"\n')
    monkeypatch.setenv("MEDSEARCH_LLM", f"openai:qwen2.5:7b@{endpoint}")
    monkeypatch.setenv("MEDSEARCH_LLM_API_KEY", "llm-secret")
    chat = load_endpoints(("chat", "local"))
    assert list(chat) == ["qwen", "default"] and chat["default"].model == "qwen2.5:7b"
    assert chat["default"].key() == "llm-secret" and "llm-secret" not in repr(chat["default"])
    assert make_generator("endpoint:qwen").name == "qwen (Qwen/Qwen2.5-0.5B-Instruct)"  # loads lazily
    assert list(load_endpoints(("embeddings",))) == ["tei"]


@pytest.mark.parametrize("text,message", [
    ('[chat.x]\nmodel = "m"\n', "needs base_url"),
    ('[chat.x]\nbase_url = "file:///etc/passwd"\nmodel = "m"\n', "needs base_url"),
    ('[chat.x]\nbase_url = "http://h/v1"\n', "needs model"),
    ('[shell.x]\nmodel = "m"\n', "unknown section"),
    ('[chat.x\n', "cannot be read"),
])
def test_a_bad_endpoints_file_is_a_clear_error(configured, text, message):
    configured(text)
    with pytest.raises(MedSearchError, match=message):
        load_endpoints()


def test_unknown_or_wrong_kind_of_endpoint_is_refused(configured, endpoint):
    configured(f'[embeddings.tei]\nbase_url = "{endpoint}"\nmodel = "e"\n')
    with pytest.raises(MedSearchError, match="No chat/local endpoint named 'tei'"):
        make_generator("endpoint:tei")
    with pytest.raises(MedSearchError, match="No embeddings endpoint named 'nope'"):
        allowed_endpoint("endpoint:nope", ("embeddings",))
