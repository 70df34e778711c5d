"""Model endpoints the server allows, named in server configuration, and safe HTTP to them.

A visitor of the app chooses an endpoint by name. Its URL, model and key come from the server's
endpoints file, never from the browser, so nobody can make the server send its key or a prompt to
an address they typed, or load a model they named. The file is TOML, at `$MEDSEARCH_ENDPOINTS`,
else `<MEDSEARCH_HOME>/endpoints.toml`:

    [chat.ollama]                      # an OpenAI-compatible chat server
    base_url = "http://localhost:11434/v1"
    model = "qwen2.5:7b"
    api_key_env = "OLLAMA_API_KEY"     # the key is read from this variable (or: api_key = "...")

    [embeddings.tei]                   # an OpenAI-compatible /v1/embeddings server
    base_url = "http://localhost:8080/v1"
    model = "bge-m3"

    [local.qwen]                       # a Hugging Face chat model run on this server's CPU
    model = "Qwen/Qwen2.5-0.5B-Instruct"

`$MEDSEARCH_LLM` (`openai:MODEL@URL`, key in `$MEDSEARCH_LLM_API_KEY` or `$OPENAI_API_KEY`, or `hf:ID`) adds a chat or
local endpoint named "default". Specs name endpoints as `endpoint:NAME`. Keys are never logged,
stored or shown: `scrub` takes them out of any text an endpoint sends back.

Chat and embeddings endpoints are spoken to through the OpenAI SDK: `openai_client` (no redirect followed, timeouts
final, a few retries), `sent_headers` (the configured key and nothing else) and `endpoint_errors` (one line per failure).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2

from medsearch.home import medsearch_home
from medsearch.records import MedSearchError

if TYPE_CHECKING:  # imported when first used: `import openai` takes a second
    import openai

KINDS = ("chat", "local", "embeddings")
PREFIX = "endpoint:"


@dataclass(frozen=True)
class Endpoint:
    """One allowed endpoint: an OpenAI-compatible chat or embeddings server, or a local chat model."""

    name: str
    kind: str
    model: str
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    api_key_env: str = ""

    @property
    def spec(self) -> str:
        return PREFIX + self.name

    def key(self) -> str:
        """The key to send ('' for none)."""
        return self.api_key or (os.environ.get(self.api_key_env, "") if self.api_key_env else "")


def endpoints_file(home: str | Path | None = None) -> Path:
    return Path(os.environ.get("MEDSEARCH_ENDPOINTS") or medsearch_home(home) / "endpoints.toml")


def _from_file(path: Path) -> list[Endpoint]:
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MedSearchError(f"The endpoints file {path} cannot be read: {exc}.") from exc
    found = []
    for kind, entries in config.items():
        if kind not in KINDS or not isinstance(entries, dict):
            raise MedSearchError(f"{path}: unknown section [{kind}] (use {', '.join(KINDS)}).")
        for name, entry in entries.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
                raise MedSearchError(f"{path}: [{kind}.{name}] needs model = \"...\".")
            url = str(entry.get("base_url", "")).rstrip("/")
            if kind != "local" and not re.fullmatch(r"https?://\S+", url):
                raise MedSearchError(f"{path}: [{kind}.{name}] needs base_url = \"http(s)://host:port/v1\".")
            found.append(Endpoint(name, kind, entry["model"], url, str(entry.get("api_key", "")),
                                  str(entry.get("api_key_env", ""))))
    return found


def _from_environment() -> list[Endpoint]:
    spec = os.environ.get("MEDSEARCH_LLM", "").strip()
    if spec.startswith("openai:"):
        model, _, url = spec[len("openai:"):].rpartition("@")
        key_env = "MEDSEARCH_LLM_API_KEY" if os.environ.get("MEDSEARCH_LLM_API_KEY") else "OPENAI_API_KEY"
        return [Endpoint("default", "chat", model, url.rstrip("/"), api_key_env=key_env)]
    if spec.startswith("hf:"):
        return [Endpoint("default", "local", spec[len("hf:"):].strip())]
    return []


def load_endpoints(kinds: tuple[str, ...] = KINDS, home: str | Path | None = None) -> dict[str, Endpoint]:
    """The allowed endpoints of these kinds, by name (the file's, then `$MEDSEARCH_LLM` as "default")."""
    path = endpoints_file(home)
    found = (_from_file(path) if path.is_file() else []) + _from_environment()
    by_name: dict[str, Endpoint] = {}
    for endpoint in found:
        by_name.setdefault(endpoint.name, endpoint)
    return {name: e for name, e in by_name.items() if e.kind in kinds}


def endpoint(spec_or_name: str, kinds: tuple[str, ...] = KINDS, home: str | Path | None = None) -> Endpoint:
    """The allowed endpoint a name (or `endpoint:NAME` spec) names; unknown names raise."""
    name = spec_or_name.removeprefix(PREFIX)
    allowed = load_endpoints(kinds, home)
    if name not in allowed:
        have = ", ".join(allowed) or "none"
        raise MedSearchError(f"No {'/'.join(kinds)} endpoint named '{name}' in the server configuration "
                             f"({endpoints_file(home)}; configured: {have}).")
    return allowed[name]


def scrub(text: str, *secrets: str | None) -> str:
    """`text` with every secret (and anything that looks like a bearer token) replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)


RETRIES = 2
"""Retries of a request that could not connect or got HTTP 408, 409, 429 or 5xx (the SDK's rule and backoff, honouring
Retry-After). Any other failure, a timeout or a refused key included, is reported at once."""


class _EndpointHTTP(httpx2.Client):
    """The SDK's HTTP client: redirects are never followed, so a prompt and a key go to the configured URL only,
    and a timeout raises `openai.APITimeoutError`, which the SDK does not retry (a reader would wait 3 times longer)."""

    def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        import openai

        try:
            return super().send(request, **{**kwargs, "follow_redirects": False})
        except httpx2.TimeoutException as exc:
            raise openai.APITimeoutError(request=request) from exc


def openai_client(base_url: str, timeout: float) -> openai.OpenAI:
    """An OpenAI SDK client for an OpenAI-compatible endpoint; `timeout` bounds connecting and every wait for more
    of a reply. It holds no key: each request sends `sent_headers(key)`."""
    import openai

    http = _EndpointHTTP(follow_redirects=False, timeout=timeout)
    return openai.OpenAI(base_url=base_url, api_key="unused", timeout=timeout, max_retries=RETRIES, http_client=http)


def sent_headers(api_key: str) -> dict[str, str | openai.Omit]:
    """Request headers carrying exactly `api_key` ('' sends no Authorization), and no organisation or project
    (which the SDK reads from OPENAI_* variables meant for OpenAI itself)."""
    import openai

    key = f"Bearer {api_key}" if api_key else openai.Omit()
    return {"Authorization": key, "OpenAI-Organization": openai.Omit(), "OpenAI-Project": openai.Omit()}


def error_message(body: Any) -> str | None:
    """The message of an error body, on one line: {"error": {"message": ...}}, {"error": "..."} or {"message": ...}."""
    detail = body.get("error", body) if isinstance(body, dict) else None
    message = (detail.get("message") or detail.get("detail")) if isinstance(detail, dict) else detail
    return " ".join(str(message).split())[:200] if message else None


def _status_error(exc: openai.APIStatusError, key: str) -> str:
    """What an HTTP error status says: the code, the endpoint's own message and what to check."""
    import openai

    code = exc.status_code
    if 300 <= code < 400:
        return f"answered HTTP {code}. Redirects are not followed: configure the address it redirects to."
    try:
        message = error_message(exc.response.json())  # exc.body lost the {"error": "..."} around a bare message
    except ValueError:
        message = None
    said = f": {scrub(message, key)}" if message else ""
    if isinstance(exc, openai.AuthenticationError):
        advice = " Check its API key."
    elif isinstance(exc, openai.NotFoundError):
        advice = " Check its base_url and the model name."
    else:  # 429 and 5xx were tried again
        retries = int(exc.request.headers.get("x-stainless-retry-count", "0"))
        advice = f" Tried {retries + 1} times." if retries else ""
    return f"answered HTTP {code}{said}.{advice}"


def _connection_error(exc: Exception, key: str) -> str:
    """Why a connection failed: refused or its host not found (unreachable), or broken off."""
    import openai

    cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) and exc.__cause__ else exc
    reason = scrub((str(cause).splitlines() or [repr(cause)])[0][:200], key)
    if isinstance(cause, httpx2.ConnectError):
        return f"is unreachable: {reason}."
    return f"broke the connection: {reason}."


def _failure(exc: Exception, timeout: float, key: str) -> str:
    """What went wrong, as the end of a sentence about the endpoint."""
    import openai

    if isinstance(exc, json.JSONDecodeError):
        return f"sent a malformed reply: {scrub(exc.doc[:80], key)!r}."
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, key)
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return f"sent nothing for {timeout:g} s (timeout)."
    if isinstance(exc, openai.APIConnectionError | httpx2.RequestError):
        return _connection_error(exc, key)
    return f"reported an error: {scrub(error_message(getattr(exc, 'body', None)) or str(exc), key)}."  # in a stream


@contextmanager
def endpoint_errors(where: str, timeout: float, key: str) -> Iterator[None]:
    """Raises a failed request to `where` (e.g. "LLM endpoint URL") as one line, never showing `key`: an HTTP error
    with the endpoint's own message, a timeout, a refused or broken connection, an error reported in a stream, or
    a reply that is not JSON."""
    import openai

    try:
        yield
    except (openai.APIError, httpx2.RequestError, json.JSONDecodeError) as exc:
        raise MedSearchError(f"{where} {_failure(exc, timeout, key)}") from exc
