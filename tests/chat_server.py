"""A real OpenAI-compatible chat server for tests (a pytest plugin: the `endpoint` fixture).

The requested model name picks the behaviour: a normal stream of PIECES, "plain" (one JSON reply),
"badkey" (401), "leaky" (401 whose message echoes the Authorization header), "missing" (404), "redirect" (307), "mute" / "stall" / "paced" (waits for `release`),
"silent", "broken", "overloaded" (error event) and "phantom" (cites a passage that does not exist).
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

PIECES = ["Metformin ", "is the first-line drug ", "for type 2 diabetes [1].", " Salt raises blood pressure [2]."]


def _event(content=None, **delta):
    """One server-sent event carrying a chat completion chunk."""
    delta = {**delta, **({"content": content} if content else {})}
    return f"data: {json.dumps({'object': 'chat.completion.chunk', 'choices': [{'index': 0, 'delta': delta}]})}\n\n"


class _Chat(BaseHTTPRequestHandler):
    """An OpenAI chat endpoint whose behaviour is chosen by the requested model name."""

    requests: list[dict] = []
    release = threading.Event()

    def do_POST(self):  # noqa: N802 - http.server naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Chat.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        model = body["model"]
        if model in ("badkey", "leaky", "missing", "redirect"):
            return self.fail(model)
        if model == "plain":
            return self.send("application/json", json.dumps(
                {"choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(PIECES)}}]}))
        if model == "mute" and not self.release.wait(10):
            return
        self.send("text/event-stream")
        self.write(_event(role="assistant"))
        if model == "silent":
            return
        if model == "broken":
            return self.write(_event(PIECES[0]) + "data: {oops\n\n")
        if model == "phantom":
            return self.write(_event("As passage [7] says, yes [1].") + "data: [DONE]\n\n")
        if model == "overloaded":
            return self.write('data: {"error": {"message": "model overloaded"}}\n\n')
        self.write(": keep-alive\n\n" + _event(PIECES[0]))
        if model in ("stall", "paced") and not self.release.wait(10 if model == "stall" else 5):
            return
        for piece in PIECES[1:]:
            self.write(_event(piece))
        self.write('data: {"choices": [], "usage": {"total_tokens": 9}}\n\ndata: [DONE]\n\n')

    def fail(self, model):
        status, headers, body = {
            "badkey": (401, {}, {"error": {"message": "invalid api key", "type": "invalid_request_error"}}),
            "leaky": (401, {}, {"error": {"message": f"key {self.headers.get('Authorization')} is not valid"}}),
            "missing": (404, {}, {"error": "model 'missing' not found"}),
            "redirect": (307, {"Location": "http://127.0.0.1:1/elsewhere"}, {}),
        }[model]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def send(self, content_type, text=""):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.end_headers()
        self.write(text)

    def write(self, text):
        self.wfile.write(text.encode())
        self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    _Chat.requests.clear()
    _Chat.release = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    _Chat.release.set()
    server.shutdown()
    server.server_close()
