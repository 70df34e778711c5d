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
"""

from __future__ import annotations

import os
import re
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsearch.home import medsearch_home
from medsearch.records import MedSearchError

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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuses redirects, so a prompt and a key go to the configured URL only."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirect)
