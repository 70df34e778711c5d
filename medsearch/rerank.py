"""Cross-encoder reranking: a first-stage retriever finds candidates, a cross-encoder (sentence-transformers'
`CrossEncoder`, reading query and passage together) puts its top `k_first` in order; a ColBERT model
(`medsearch.colbert`, token vectors scored by MaxSim) can take the cross-encoder's place.

Rerankers are named like embedding models (`medsearch.modelref`): a local folder, a fine-tuned one
(`home:finetuned/NAME`) or a Hugging Face id already in the local cache (nothing is downloaded unless asked).
`train_reranker` trains one from a base on (query, positive, negative) triplets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medsearch.filters import Filter
from medsearch.home import folder_name, medsearch_home
from medsearch.modelref import ModelRef
from medsearch.records import Chunk, Hit, MedSearchError
from medsearch.retrieval import Retriever
from medsearch.text import text_languages
from medsearch.trainers import Progress, labelled_pairs, loss_summary, run_trainer, save_with_card

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

K_FIRST = 20  # first-stage hits the cross-encoder reorders
RERANKERS = Path(".models") / "rerankers"  # beside fine-tuned models, where no collection can be named
_LOADING = threading.RLock()


class Reranker:
    """A loaded cross-encoder: `scores(query, passages)`, higher is more relevant (`colbert.ColbertReranker`
    scores the same way with MaxSim)."""

    def __init__(self, spec: str, model: CrossEncoder) -> None:
        self.spec, self.model = spec, model

    def scores(self, query: str, passages: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """The cross-encoder's score of each (query, passage) pair, in batches on CPU."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        found = self.model.predict([(query, p) for p in passages], batch_size=batch_size,
                                   show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(found, dtype=np.float32).reshape(len(passages))


def load_reranker(spec: str, home: str | Path | None = None, *, download: bool = False) -> Reranker:
    """The reranker a spec names (a cross-encoder, or a ColBERT model: `medsearch.colbert.ColbertReranker`), loaded
    once per process: one of the server's rerankers by name (`list_rerankers`), a folder, `home:…`, or a Hugging
    Face id in the local cache unless `download`. MedSearchError when it cannot be loaded."""
    ref = ModelRef.parse(str(reranker_path(spec, home)) if spec in list_rerankers(home) else spec)
    if ref.kind not in ("hub", "folder", "home"):
        raise MedSearchError(f"'{spec}' is an embedding model, not a reranker: give a server reranker's name, a "
                             "reranker's folder, home:finetuned/NAME or a Hugging Face id.")
    with _LOADING:
        return _load(str(ref), ref.location(home), download)


@lru_cache(maxsize=4)
def _load(spec: str, location: str, download: bool) -> Reranker:
    """A `ColbertReranker` when the folder holds a multi-vector model (`colbert.is_multi_vector`), else the
    cross-encoder."""
    from sentence_transformers import CrossEncoder

    from medsearch.colbert import ColbertReranker, is_multi_vector, load_colbert

    if is_multi_vector(location, download):
        return ColbertReranker(spec, load_colbert(location, spec, download))
    try:
        model = CrossEncoder(location, device="cpu", local_files_only=not download)
    except Exception as exc:  # noqa: BLE001 - hub, disk and format errors all mean "cannot load"
        raise MedSearchError(
            f"Cannot load reranker '{spec}': {str(exc).splitlines()[0][:200]} Give a cross-encoder's folder, "
            "home:finetuned/NAME, or a Hugging Face id already downloaded to the local cache.") from exc
    if model.num_labels != 1:
        raise MedSearchError(f"'{spec}' gives {model.num_labels} scores per pair; a reranker gives one.")
    return Reranker(spec, model)


def rerankers_root(home: str | Path | None = None) -> Path:
    """The folder of the rerankers a server offers (`<home>/.models/rerankers/<name>/`, each a cross-encoder folder)."""
    return medsearch_home(home) / RERANKERS


def list_rerankers(home: str | Path | None = None) -> list[str]:
    """The names of the server's rerankers: the folders in `rerankers_root` (hidden ones, such as a training's
    unfinished `.tmp-` folder, left out), sorted."""
    root = rerankers_root(home)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def reranker_path(name: str, home: str | Path | None = None) -> Path:
    """The folder of the server's reranker `name` (whether or not it exists yet)."""
    return rerankers_root(home) / folder_name(name, "reranker")


def passage_text(chunk: Chunk) -> str:
    """What the cross-encoder reads of a chunk: its title, then its text."""
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text


class RerankedRetriever:
    """A Retriever: the first stage's top `k_first` hits reordered by the cross-encoder (score: its score,
    retriever: `<first>+rerank`), then the first stage's next hits in its own order, scores and name.
    `last_ms` is how long the last rerank in the calling thread took."""

    def __init__(self, first: Retriever, reranker: Reranker, chunks: Mapping[str, Chunk], k_first: int = K_FIRST) -> None:
        if k_first < 1:
            raise MedSearchError("Rerank at least 1 hit.")
        self.first, self.reranker, self.chunks, self.k_first = first, reranker, chunks, k_first
        self.name = f"{first.name}+rerank"
        self._last = threading.local()

    @property
    def last_ms(self) -> float:
        return getattr(self._last, "ms", 0.0)

    def search(self, query: str, k: int = 10, where: Filter | None = None) -> list[Hit]:
        hits = self.first.search(query, max(k, self.k_first), where)
        return self.rerank(query, hits)[:k]

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """The hits with their top `k_first` reordered by the cross-encoder, ranked 1..n."""
        started = time.perf_counter()
        head, tail = list(hits[:self.k_first]), list(hits[self.k_first:])
        scores = self.reranker.scores(query, [passage_text(self.chunks[h.chunk_id]) for h in head])
        order = np.argsort(-scores, kind="stable")
        ranked = [replace(head[i], score=float(scores[i]), retriever=self.name) for i in order.tolist()] + tail
        self._last.ms = (time.perf_counter() - started) * 1000
        return [replace(hit, rank=n) for n, hit in enumerate(ranked, 1)]


# --- training ---------------------------------------------------------------------------------
def train_reranker(triplets: Sequence[dict], base: str, out: str | Path, *, epochs: int = 1,
                   batch_size: int = 16, learning_rate: float = 2e-5, max_length: int = 256, seed: int = 42,
                   progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                   home: str | Path | None = None) -> dict:
    """Train a cross-encoder from `base` (a folder, home:… under `home`, or a cached Hugging Face id) on triplets with
    binary cross-entropy on (query, positive)=1 / (query, negative)=0 (`trainers.labelled_pairs`), and save it at
    `out` (replaced whole); `progress` and `should_stop` as `trainers.run_trainer`. Returns the card saved beside
    it as `medsearch.json`. The training is sentence-transformers' own: `CrossEncoderTrainer` with
    `BinaryCrossEntropyLoss`."""
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from medsearch.training import check_triplets

    if batch_size < 1 or epochs < 1:
        raise MedSearchError("Training needs a batch size and epochs of at least 1.")
    pairs = labelled_pairs(check_triplets(triplets))
    dataset = Dataset.from_dict({"query": [q for q, _, _ in pairs], "passage": [p for _, p, _ in pairs],
                                 "label": [y for *_, y in pairs]})
    model = _trainable(base, max_length, home, seed)
    started = time.monotonic()
    losses, steps = run_trainer(CrossEncoderTrainer, CrossEncoderTrainingArguments, model, dataset,
                                BinaryCrossEntropyLoss(model), epochs=epochs, batch_size=batch_size,
                                learning_rate=learning_rate, seed=seed, progress=progress, should_stop=should_stop)
    card = {"kind": "cross-encoder", "base": base, "loss": "bce", "n_triplets": len(triplets), "n_pairs": len(pairs),
            "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "steps": steps,
            "trainer": "sentence-transformers CrossEncoderTrainer", **loss_summary(losses),
            "languages": text_languages([text for pair in pairs for text in pair[:2]]),
            "train_seconds": round(time.monotonic() - started, 1)}
    save_with_card(model.save_pretrained, card, out)
    return card


def _trainable(base: str, max_length: int, home: str | Path | None, seed: int) -> CrossEncoder:
    """A fresh copy of the base cross-encoder (never the one searches share), one score per pair; a new scoring
    head starts from `seed`."""
    import torch
    from sentence_transformers import CrossEncoder

    from medsearch.encoders import transformer_folder

    torch.manual_seed(seed)
    location = transformer_folder(base, home)
    try:
        return CrossEncoder(location, device="cpu", num_labels=1, max_length=max_length,
                            local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - hub, disk and format errors all mean "cannot load"
        raise MedSearchError(f"Cannot load base model '{base}': {str(exc).splitlines()[0][:200]}") from exc
