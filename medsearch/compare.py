"""Side-by-side comparison of two or three search pipelines (a first stage, its dense model, an optional reranker)
on one query or on a whole judged query set."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from medsearch.collection import Collection
from medsearch.encoders import canonical
from medsearch.jsonl import read_jsonl
from medsearch.limits import checked_query
from medsearch.metrics import evaluate_run, query_scores, run_from_hits
from medsearch.modelref import ModelRef
from medsearch.records import Hit, MedSearchError
from medsearch.rerank import K_FIRST

DEPTH = 100
SHOWN_METRICS = ("ndcg@10", "mrr@10", "recall@10")
KINDS = ("bm25", "tfidf", "dense", "hybrid", "auto")  # every first stage `Collection.search_documents` runs
MODEL_KINDS = ("dense", "hybrid", "auto")  # the kinds that search with a dense model
TIE = 0.001  # two scores closer than this are a tie


@dataclass(frozen=True)
class Pipeline:
    """One column of a comparison: a first-stage retriever `kind`, the dense `model` of a kind that uses one (None:
    the collection's default; dropped for bm25 and tfidf), and an optional reranker spec (`medsearch.rerank`: a
    cross-encoder or ColBERT) reordering its top `rerank_k` hits (dropped without a reranker)."""

    kind: str
    model: str | None = None
    rerank: str | None = None
    rerank_k: int = K_FIRST

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise MedSearchError(f"Unknown retriever '{self.kind}': choose one of {', '.join(KINDS)}.")
        if self.kind not in MODEL_KINDS:
            object.__setattr__(self, "model", None)
        if not self.rerank:
            object.__setattr__(self, "rerank", None)
            object.__setattr__(self, "rerank_k", K_FIRST)
        elif self.rerank_k < 1:
            raise MedSearchError("Rerank at least 1 hit.")

    @property
    def key(self) -> str:
        """A stable short name (`kind`, `kind:model`, then `>reranker@k`): the pipeline's key in a `Comparison` and
        in `per_query` rows."""
        first = f"{self.kind}:{self.model}" if self.model else self.kind
        return f"{first}>{self.rerank}@{self.rerank_k}" if self.rerank else first

    def on(self, collection: Collection) -> Pipeline:
        """The same pipeline as the collection runs it: its default model filled in, model and reranker specs
        canonical (so two names of one model are one pipeline)."""
        model = canonical(self.model) if self.model else collection.default_model
        return replace(self, model=model, rerank=str(ModelRef.parse(self.rerank)) if self.rerank else None)

    def documents(self, collection: Collection, queries: list[str], k: int = DEPTH) -> list[list[Hit]]:
        """Each query's top-k documents through this pipeline."""
        return collection.search_documents(queries, k, self.kind, self.model, rerank=self.rerank,
                                           rerank_k=self.rerank_k)


class SamePipelines(MedSearchError):
    """Two columns of a comparison are one pipeline (`index`: the second of them)."""

    def __init__(self, index: int) -> None:
        super().__init__(f"Pipeline {index + 1} is the same as an earlier one: change one of them.")
        self.index = index


def resolved(collection: Collection, pipelines: Sequence[Pipeline]) -> list[Pipeline]:
    """The pipelines as the collection runs them (`Pipeline.on`); SamePipelines when two of them are one."""
    done: list[Pipeline] = []
    for n, pipeline in enumerate(pipelines):
        done.append(pipeline.on(collection))
        if done[-1] in done[:-1]:
            raise SamePipelines(n)
    return done


@dataclass
class Entry:
    """One document in one pipeline's list, with where the other pipelines put it (None: not in their top DEPTH)."""

    hit: Hit
    others: dict[str, int | None]
    in_all: bool
    grade: int = 0


@dataclass
class Comparison:
    """The top-k documents of each pipeline for one query, cross-referenced; every dict is keyed by `Pipeline.key`
    (`took_ms`: how long each reranked pipeline's rerank took)."""

    query: str
    k: int
    pipelines: dict[str, Pipeline]
    columns: dict[str, list[Entry]]
    found: dict[str, list[Hit]]
    took_ms: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def judge(self, relevant: Mapping[str, int]) -> Comparison:
        """Mark the relevant documents and compute each list's metrics (none without a relevant document)."""
        for entries in self.columns.values():
            for entry in entries:
                entry.grade = relevant.get(entry.hit.doc_id, 0)
        judged = {d: g for d, g in relevant.items() if g > 0}
        self.metrics = {name: evaluate_run({"q": judged}, run_from_hits({"q": hits}), SHOWN_METRICS)
                        for name, hits in self.found.items()} if judged else {}
        return self

    def overlap(self) -> dict[str, int]:
        """How many top-k documents all lists share, and how many each list has alone."""
        tops = {name: {e.hit.doc_id for e in entries} for name, entries in self.columns.items()}
        shared = set.intersection(*tops.values()) if tops else set()
        alone = {name: len(docs - set().union(*(d for n, d in tops.items() if n != name))) for name, docs in tops.items()}
        return {"shared": len(shared), **{f"only {name}": n for name, n in alone.items()}}


def judged(collection: Collection, query: str) -> dict[str, int]:
    """The collection's relevance grades for this exact query text ({} when it is not a judged query)."""
    eval_set = collection.eval_set
    if eval_set is None:
        return {}
    for qid, text in eval_set.queries.items():
        if text.strip() == query.strip():
            for qrels in eval_set.qrels.values():
                if qid in qrels:
                    return dict(qrels[qid])
    return {}


BASELINE = (Pipeline("bm25"), Pipeline("dense"))


def compare(collection: Collection, query: str, pipelines: Sequence[Pipeline] = BASELINE, k: int = 10) -> Comparison:
    """Each pipeline's top-k documents and where the others ranked them (judged with the collection's qrels); a
    reranked pipeline's hits keep the reranker's raw scores. SamePipelines when two pipelines are one."""
    text = checked_query(query)
    runs = {p.key: p for p in resolved(collection, pipelines)}
    found, took = {}, {}
    for key, pipeline in runs.items():
        found[key] = pipeline.documents(collection, [text])[0]
        if pipeline.rerank:
            took[key] = collection.reranked(pipeline.kind, pipeline.model, pipeline.rerank, pipeline.rerank_k).last_ms
    ranks = {name: {h.doc_id: h.rank for h in hits} for name, hits in found.items()}
    columns = {name: [Entry(h, {o: ranks[o].get(h.doc_id) for o in found if o != name},
                            all(ranks[o].get(h.doc_id, k + 1) <= k for o in found)) for h in hits[:k]]
               for name, hits in found.items()}
    return Comparison(query, k, runs, columns, found, took).judge(judged(collection, query))


def per_query(collection: Collection, pipelines: Sequence[Pipeline] = BASELINE, metric: str = "ndcg@10") -> list[dict]:
    """`metric` of each pipeline on every judged query of the collection: [{qid, query, <Pipeline.key of the
    pipeline as the collection runs it (`Pipeline.on`)>: value}]."""
    eval_set = collection.eval_set
    if eval_set is None:
        return []
    qrels = {q: grades for split in eval_set.qrels.values() for q, grades in split.items() if q in eval_set.queries}
    ids = sorted(qrels)
    texts = [eval_set.queries[q] for q in ids]
    scores = {p.key: query_scores(qrels, run_from_hits(dict(zip(ids, p.documents(collection, texts)))), metric)
              for p in resolved(collection, pipelines)}
    return [{"qid": q, "query": eval_set.queries[q], **{key: found.get(q, 0.0) for key, found in scores.items()}}
            for q in ids]


@dataclass
class HeadToHead:
    """Two pipelines (`a`, `b`: keys) on the same queries: the rows ordered by `b − a`, those differences, on how
    many queries b is better (wins), worse (losses) or within `TIE` (ties), and each one's mean."""

    a: str
    b: str
    rows: list[dict]
    diffs: list[float]
    wins: int
    losses: int
    ties: int
    means: tuple[float, float]


def head_to_head(rows: Sequence[dict], a: Pipeline, b: Pipeline) -> HeadToHead:
    """`per_query` rows read as b against a (pipelines as `resolved` gives them)."""
    ordered = sorted(rows, key=lambda r: r[b.key] - r[a.key])
    diffs = [r[b.key] - r[a.key] for r in ordered]
    wins, losses = sum(d > TIE for d in diffs), sum(d < -TIE for d in diffs)
    n = max(len(ordered), 1)
    return HeadToHead(a.key, b.key, ordered, diffs, wins, losses, len(ordered) - wins - losses,
                      (sum(r[a.key] for r in ordered) / n, sum(r[b.key] for r in ordered) / n))


@dataclass
class TrainingOverlap:
    """How many of the compared judged queries a fine-tuned model was trained on.

    `known` is False when the model is fine-tuned but its training queries cannot be found (trained from a file
    on the command line, or its run folder deleted): then nobody can say whether its scores are fair."""

    model: str
    compared: int
    seen: list[str]
    known: bool = True
    trained: frozenset[str] = frozenset()

    def includes(self, query: str) -> bool:
        """Whether this query text was one the model was trained on."""
        return query.strip() in self.trained


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def finetuned_name(model: str | None) -> str | None:
    """The registry name of a fine-tuned model reference (`home:finetuned/NAME`), else None."""
    try:
        ref = ModelRef.parse(model) if model else None
    except MedSearchError:
        return None
    if ref is None or ref.kind != "home" or not ref.name.startswith("finetuned/"):
        return None
    return ref.name.split("/", 1)[1]


def training_queries(model: str | None, home: str | Path | None = None) -> set[str] | None:
    """The query texts a fine-tuned model of the registry was trained on (its held-out queries excluded), or
    None when `model` is not a fine-tuned model or its training data cannot be found.

    Read from the model's card (`train_queries`) when it lists them, else rebuilt from the training run that made
    it: the run folder keeps the triplets and the config, and the held-out split is seeded, so it is the same split."""
    from medsearch.registry import models_root
    from medsearch.runs import runs_root
    from medsearch.training import check_triplets, split_held_out

    name = finetuned_name(model)
    if name is None:
        return None
    card = _read_json(models_root(home) / name / "card.json") or {}
    if isinstance(card.get("train_queries"), list):
        return {str(q).strip() for q in card["train_queries"]}
    root = runs_root(home)
    for config_file in sorted(root.glob("*/config.json"), reverse=True) if root.is_dir() else []:
        config, status = _read_json(config_file), _read_json(config_file.with_name("status.json"))
        if not config or config.get("name") != name or not status or status.get("state") != "done":
            continue
        try:
            triplets = check_triplets(read_jsonl(config_file.with_name("triplets.jsonl")))
        except (OSError, ValueError, MedSearchError):
            return None
        train_part, _ = split_held_out(triplets, config.get("held_out", 0.1), config.get("seed", 42))
        return {t["query"].strip() for t in train_part}
    return None


def training_overlap(collection: Collection, model: str | None) -> TrainingOverlap | None:
    """Which of the collection's judged queries (those `per_query` runs) a fine-tuned dense model was trained on;
    None for a model that was not fine-tuned here (a bundled or hub model)."""
    if model is None or finetuned_name(model) is None:
        return None
    eval_set = collection.eval_set
    ids = sorted({q for split in eval_set.qrels.values() for q in split if q in eval_set.queries}) if eval_set else []
    trained = training_queries(model, collection.folder.parent)
    if trained is None or eval_set is None:
        return TrainingOverlap(model, len(ids), [], known=False)
    return TrainingOverlap(model, len(ids), [q for q in ids if eval_set.queries[q].strip() in trained],
                           trained=frozenset(trained))
