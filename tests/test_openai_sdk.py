"""Chat and embeddings endpoints through the OpenAI SDK: exactly the configured key, no redirect followed,
timeouts final, 429 and 5xx retried, and every failure one line without the key."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from medsearch.encoders import OpenAIEmbeddingEncoder
from medsearch.generators import OpenAIChatGenerator, generate
from medsearch.records import MedSearchError

HI = [{"role": "user", "content": "hi"}]


class _Endpoint(BaseHTTPRequestHandler):
    """Chat and embeddings by model name: "ok", "busy" (500 twice, then ok), "down" (500), "limited" (429),
    "redirect" (307 to the server's `elsewhere`), "slow" (nothing until released), "leaky" (401 echoing the
    Authorization header) and "odd" (embeddings that are not a list)."""

    def do_POST(self):  # noqa: N802 - http.server naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        seen = self.server.seen
        seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, **body})
        model = body["model"]
        if model == "slow":
            self.server.release.wait(10)
        if model == "down" or model == "busy" and len(seen) < 3:
            return self.reply(500, {"error": {"message": "GPU fell\nover"}}, {"Retry-After-Ms": "10"})
        if model == "limited":
            return self.reply(429, {"error": {"message": "slow down"}}, {"Retry-After-Ms": "10"})
        if model == "redirect":
            return self.reply(307, {}, {"Location": self.server.elsewhere + self.path})
        if model == "leaky":
            return self.reply(401, {"error": {"message": f"{self.headers['Authorization']} is not valid"}})
        if self.path.endswith("/embeddings"):
            data = "nope" if model == "odd" else [{"index": i, "embedding": [1.0, 1.0]} for i in range(len(body["input"]))]
            return self.reply(200, {"data": data, "model": model})
        return self.reply(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}}]})

    def reply(self, status, body, headers=()):
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in dict(headers).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def _serve():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    server.seen, server.release, server.elsewhere = [], threading.Event(), ""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def servers():
    """`main` (redirecting to `other`) and `other`, each with its URL and the requests it saw."""
    main, other = _serve(), _serve()
    main.elsewhere = f"http://127.0.0.1:{other.server_address[1]}"
    yield SimpleNamespace(url=f"http://127.0.0.1:{main.server_address[1]}/v1", seen=main.seen, other=other.seen)
    for server in (main, other):
        server.release.set()
        server.shutdown()
        server.server_close()


def _fail(kind, url, model, **options):
    """The error of one chat answer or embeddings encoder that fails."""
    with pytest.raises(MedSearchError) as error:
        if kind == "chat":
            generate(OpenAIChatGenerator(url, model, **options), HI)
        else:
            OpenAIEmbeddingEncoder(f"openai:{model}@{url}", **options)
    return str(error.value)


@pytest.mark.parametrize("kind", ["chat", "embeddings"])
def test_a_redirect_is_an_error_and_the_key_never_goes_elsewhere(servers, kind):
    message = _fail(kind, servers.url, "redirect", api_key="sk-mine")
    assert "answered HTTP 307. Redirects are not followed" in message
    assert len(servers.seen) == 1 and servers.seen[0]["headers"]["authorization"] == "Bearer sk-mine"
    assert servers.other == []


@pytest.mark.parametrize("kind,model,said", [
    ("chat", "down", "answered HTTP 500: GPU fell over. Tried 3 times."),
    ("embeddings", "down", "answered HTTP 500: GPU fell over. Tried 3 times."),
    ("embeddings", "limited", "answered HTTP 429: slow down. Tried 3 times."),
])
def test_server_errors_are_retried_then_reported_in_one_line(servers, kind, model, said):
    message = _fail(kind, servers.url, model, api_key="")
    assert said in message and "\n" not in message
    assert len(servers.seen) == 3


def test_a_busy_server_is_asked_again(servers):
    assert OpenAIEmbeddingEncoder(f"openai:busy@{servers.url}", api_key="").dim == 2
    assert len(servers.seen) == 3


@pytest.mark.parametrize("kind", ["chat", "embeddings"])
def test_a_timeout_is_not_retried(servers, kind):
    start = time.monotonic()
    assert "sent nothing for 1 s (timeout)" in _fail(kind, servers.url, "slow", api_key="", timeout=1)
    assert time.monotonic() - start < 2.5 and len(servers.seen) == 1


@pytest.mark.parametrize("key", ["", "sk-mine"])
def test_only_the_configured_key_is_sent(servers, monkeypatch, key):
    """Variables the SDK reads for OpenAI itself add no key, organisation or project."""
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-env")
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "admin-env")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "Authorization: Bearer custom-env")
    assert generate(OpenAIChatGenerator(servers.url, "ok", api_key=key), HI) == "fine"
    assert OpenAIEmbeddingEncoder(f"openai:ok@{servers.url}", api_key=key).dim == 2
    for request in servers.seen:
        assert request["headers"].get("authorization") == (f"Bearer {key}" if key else None)
        assert "openai-organization" not in request["headers"] and "openai-project" not in request["headers"]
        assert "env" not in json.dumps(request["headers"])


def test_embedding_errors_show_the_servers_message_but_never_the_key(servers):
    message = _fail("embeddings", servers.url, "leaky", api_key="sk-secret")
    assert "answered HTTP 401: Bearer *** is not valid. Check its API key." in message and "sk-secret" not in message
    assert len(servers.seen) == 1  # a refused key is not tried again


def test_embeddings_that_are_not_a_list_are_a_clear_error(servers):
    assert "sent a reply that is not an embeddings list" in _fail("embeddings", servers.url, "odd", api_key="")
