"""Generators write the answer of a grounded search: a language model, or the offline extractive answer.

Every generator has the one entry point the RAG layer calls, `respond(question, passages)`, which
yields the answer's text in pieces as they come, citing passages as [n]; `name` says which generator
answered and `extractive` whether the text is quoted sentences rather than a model's words.

- `ExtractiveGenerator` (the offline default) needs the passages, not a prompt: it yields
  `grounding.extractive_answer` one cited sentence at a time.
- Language models are `ChatGenerator`s: `respond` streams `stream(grounded_prompt(question, passages))`,
  and `stream(messages)` takes any chat messages. `OpenAIChatGenerator` speaks the OpenAI chat API
  (Ollama, vLLM, llama.cpp server, DeepSeek, DashScope, OpenAI); `HFLocalGenerator` runs a local
  Hugging Face chat model on CPU.

`make_generator(spec)` picks one from a spec: "extractive" (or nothing), `endpoint:NAME` (an endpoint
the server's configuration allows, `medsearch.endpoints`: what the app offers), or, for the command
line of whoever runs the server, `openai:MODEL@BASE_URL` and `hf:ID_OR_FOLDER`.
"""

from __future__ import annotations

import json
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from medsearch.endpoints import PREFIX, endpoint, endpoint_errors, error_message, openai_client, scrub, sent_headers
from medsearch.grounding import extractive_answer, grounded_prompt
from medsearch.records import MedSearchError, Passage

if TYPE_CHECKING:  # imported when first used: `import openai` takes a second
    from openai import Stream
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

Messages = list[dict[str, str]]
_CITED_SENTENCE = re.compile(r".*?\[\d+\]\s*|.+", re.DOTALL)
_WORD = re.compile(r"[\w\s'-]+")


class Generator(Protocol):
    """Writes an answer to a question from numbered passages, citing them as [n]."""

    name: str
    extractive: bool

    def respond(self, question: str, passages: Sequence[Passage]) -> Iterator[str]: ...


class ChatGenerator(ABC):
    """A language model that answers chat messages; it answers passages through `grounded_prompt`."""

    name: str
    extractive = False

    @abstractmethod
    def stream(self, messages: Messages) -> Iterator[str]:
        """The reply to chat messages, in pieces as they arrive."""

    def respond(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        return self.stream(grounded_prompt(question, passages))


def generate(generator: ChatGenerator, messages: Messages) -> str:
    """The whole reply to chat messages."""
    return "".join(generator.stream(messages))


class ExtractiveGenerator:
    """The passages' sentences closest to the question, each with its [n]; no language model."""

    name = "extractive"
    extractive = True

    def __init__(self, encoder: Any = None, tokenizer: Callable[[str], list[str]] | None = None,
                 max_sentences: int = 3) -> None:
        self.encoder, self.tokenizer, self.max_sentences = encoder, tokenizer, max_sentences

    def respond(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        answer = extractive_answer(question, passages, self.encoder, self.tokenizer, self.max_sentences)
        yield from _CITED_SENTENCE.findall(answer.text)


class OpenAIChatGenerator(ChatGenerator):
    """An OpenAI-compatible `/chat/completions` endpoint through the OpenAI SDK, streamed by default.

    The key is `api_key` ('' for none), else `$MEDSEARCH_LLM_API_KEY` (`api_key_env`), else
    `$OPENAI_API_KEY`; it is scrubbed from every error. Redirects are not followed. `timeout` bounds
    connecting and every wait for more of the reply, not the whole answer.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None,
                 api_key_env: str = "MEDSEARCH_LLM_API_KEY", timeout: float = 60.0,
                 temperature: float = 0.1, max_tokens: int = 768, stream: bool = True) -> None:
        base_url = base_url.rstrip("/")
        self.name, self.model, self.url = f"openai:{model}@{base_url}", model, f"{base_url}/chat/completions"
        self.api_key = api_key if api_key is not None else (
            os.environ.get(api_key_env) or os.environ.get("OPENAI_API_KEY") or "")
        self.timeout = timeout
        self.temperature, self.max_tokens, self.streaming = temperature, max_tokens, stream
        self._client = openai_client(base_url, timeout)

    def stream(self, messages: Messages) -> Iterator[str]:
        from openai import Stream

        with endpoint_errors(f"LLM endpoint {self.url}", self.timeout, self.api_key):
            reply = self._client.chat.completions.create(
                model=self.model, messages=cast(Any, messages), stream=self.streaming, temperature=self.temperature,
                max_tokens=self.max_tokens, extra_headers=sent_headers(self.api_key))
            if isinstance(reply, Stream):
                with reply:
                    yield from self._pieces(reply)
            else:
                yield self._whole(reply)

    def _pieces(self, reply: Stream[ChatCompletionChunk]) -> Iterator[str]:
        """The content of each streamed chunk; a server may ignore `stream` and send one whole reply."""
        from openai.types.chat import ChatCompletion

        if "text/event-stream" not in reply.response.headers.get("Content-Type", ""):
            body = json.loads(reply.response.read())
            yield self._whole(ChatCompletion.construct(**body) if isinstance(body, dict) else body)
            return
        answered = False
        for chunk in reply:
            piece = self._content(chunk)
            if piece:
                answered = True
                yield piece
        if not answered:
            raise self._no_answer()

    def _whole(self, reply: object) -> str:
        """The content of a whole (non-streamed) chat completion; an error object sent instead is reported."""
        from openai.types.chat import ChatCompletion

        if not isinstance(reply, ChatCompletion):
            raise self._not_a_completion()
        extra = reply.model_extra or {}
        if extra.get("error"):
            message = error_message(extra) or str(extra["error"])[:200]
            raise MedSearchError(f"LLM endpoint {self.url} reported an error: {scrub(message, self.api_key)}.")
        content = self._content(reply)
        if not content:
            raise self._no_answer()
        return content

    def _content(self, reply: ChatCompletion | ChatCompletionChunk) -> str | None:
        """`choices[0].delta.content` of a streamed chunk, `choices[0].message.content` of a whole reply."""
        from openai.types.chat import ChatCompletionChunk

        try:
            if not reply.choices:
                return None
            part = reply.choices[0].delta if isinstance(reply, ChatCompletionChunk) else reply.choices[0].message
            content = part.content
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            raise self._not_a_completion() from exc
        if content is not None and not isinstance(content, str):
            raise self._not_a_completion()
        return content

    def _not_a_completion(self) -> MedSearchError:
        return MedSearchError(f"LLM endpoint {self.url} sent a reply that is not a chat completion.")

    def _no_answer(self) -> MedSearchError:
        return MedSearchError(f"LLM endpoint {self.url} ended its reply without any answer text.")


def control_tokens(tokenizer: Any) -> list[str]:
    """The strings `tokenizer` reads as one special or added token, other than plain words; longest first."""
    added = [token.content for token in tokenizer.added_tokens_decoder.values()]
    tokens = {t for t in [*tokenizer.all_special_tokens, *added] if len(t) > 1 and not _WORD.fullmatch(t)}
    return sorted(tokens, key=len, reverse=True)


def as_plain_text(text: str, tokenizer: Any) -> str:
    """`text` with each of `tokenizer`'s control tokens (any case) broken by a space after its first
    character, so words from a document or a question never become role markers or other special tokens."""
    tokens = control_tokens(tokenizer)
    if not tokens:
        return text
    pattern = re.compile("|".join(map(re.escape, tokens)), re.IGNORECASE)
    return pattern.sub(lambda match: f"{match[0][0]} {match[0][1:]}", text)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [repr(exc)])[0][:200]


class HFLocalGenerator(ChatGenerator):
    """A Hugging Face causal chat model (hub id or local folder), loaded on first use, decoding greedily.

    The hub id honours HF_ENDPOINT and offline mode as transformers does. Generation runs in a
    background thread feeding a `TextIteratorStreamer`; it stops when the reader stops reading.
    """

    def __init__(self, model_id_or_folder: str, max_new_tokens: int = 256, device: str = "cpu") -> None:
        self.name, self.source = f"hf:{model_id_or_folder}", model_id_or_folder
        self.max_new_tokens, self.device = max_new_tokens, device
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        """(model, tokenizer), loaded once."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._from_pretrained()
        return self._loaded

    def _from_pretrained(self) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.source)
            dtype = "float32" if self.device == "cpu" else "auto"  # bf16 checkpoints are slow on most CPUs
            model = AutoModelForCausalLM.from_pretrained(self.source, dtype=dtype)
            model = model.to(self.device).eval()  # type: ignore[arg-type]  # transformers types `to` as unbound
        except Exception as exc:  # noqa: BLE001 - hub, disk and format errors all mean "cannot load"
            raise MedSearchError(
                f"Cannot load language model '{self.source}': {_first_line(exc)}. Give a local "
                "folder, or a Hugging Face id reachable directly or through HF_ENDPOINT.") from exc
        if not tokenizer.chat_template:
            raise MedSearchError(f"Language model '{self.source}' has no chat template: use an instruction-tuned "
                                 "(chat) model, e.g. Qwen/Qwen2.5-0.5B-Instruct.")
        return model, tokenizer

    def prompt(self, messages: Messages) -> str:
        """The messages in the model's chat template, ending where the assistant's reply begins; special
        tokens come from the template only (in the messages they are broken: `as_plain_text`)."""
        tokenizer = self._load()[1]
        plain = [{**message, "content": as_plain_text(message["content"], tokenizer)} for message in messages]
        return tokenizer.apply_chat_template(plain, add_generation_prompt=True, tokenize=False)

    def encode(self, messages: Messages) -> Any:
        """The token ids of `prompt(messages)` (a batch of one, on the model's device)."""
        tokenizer = self._load()[1]
        return tokenizer(self.prompt(messages), return_tensors="pt", add_special_tokens=False).to(self.device)

    def stream(self, messages: Messages) -> Iterator[str]:
        from transformers import StoppingCriteria, TextIteratorStreamer

        model, tokenizer = self._load()
        inputs = self.encode(messages)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        pad = tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id
        stop, failures = threading.Event(), []

        class Abandoned(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return stop.is_set()

        def run() -> None:
            try:
                model.generate(**inputs, streamer=streamer, max_new_tokens=self.max_new_tokens, do_sample=False,
                               stopping_criteria=[Abandoned()], pad_token_id=pad)
            except Exception as exc:  # noqa: BLE001 - reported in the reader's thread below
                failures.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True, name=f"generate {self.source}")
        thread.start()
        try:
            yield from (piece for piece in streamer if piece)
        finally:
            stop.set()
        thread.join()
        if failures:
            raise MedSearchError(f"Language model '{self.source}' failed: {_first_line(failures[0])}.")


def make_generator(spec: str | None = None, **options: Any) -> Generator:
    """The generator a spec names: None / '' / 'extractive', 'endpoint:NAME', 'openai:MODEL@BASE_URL' or
    'hf:ID_OR_FOLDER'.

    `options` go to its constructor (e.g. timeout= or max_new_tokens=). MODEL may hold ':' (Ollama
    tags such as qwen2.5:7b): the URL starts after the last '@'. The app passes only 'extractive' and
    'endpoint:NAME' specs, so a visitor never chooses where the server sends a prompt or its key.
    """
    spec = (spec or "").strip()
    if spec.lower() in ("", "extractive"):
        return ExtractiveGenerator(**options)
    if spec.startswith(PREFIX):
        return from_endpoint(spec, **options)
    if spec.startswith("openai:"):
        model, _, base_url = spec[len("openai:"):].rpartition("@")
        if not model or not re.fullmatch(r"https?://\S+", base_url):
            raise MedSearchError(f"LLM spec must look like openai:MODEL@http://host:port/v1 (got '{spec}').")
        return OpenAIChatGenerator(base_url, model, **options)
    if spec.startswith("hf:") and spec[len("hf:"):].strip():
        return HFLocalGenerator(spec[len("hf:"):].strip(), **options)
    raise MedSearchError(f"Unknown LLM spec '{spec}': use 'extractive', 'endpoint:NAME', "
                         "'openai:MODEL@http://host:port/v1' or 'hf:MODEL_ID_OR_FOLDER'.")


def from_endpoint(spec: str, **options: Any) -> ChatGenerator:
    """The chat generator of an allowed endpoint (`endpoint:NAME`), with exactly that endpoint's key."""
    allowed = endpoint(spec, ("chat", "local"))
    if allowed.kind == "local":
        generator: ChatGenerator = HFLocalGenerator(allowed.model, **options)
    else:
        generator = OpenAIChatGenerator(allowed.base_url, allowed.model, api_key=allowed.key(), **options)
    generator.name = f"{allowed.name} ({allowed.model})"
    return generator
