"""The built-in demo collection: 216 bilingual passages with 40 judged queries, in data/demo."""

from __future__ import annotations

import json
from pathlib import Path

from medsearch.collection import BuildOptions, Collection, Progress
from medsearch.evaluate import load_beir

DEMO_DIR = Path(__file__).resolve().parents[1] / "data" / "demo"
DEMO_NAME = "demo"


def ensure_demo(home: str | Path | None = None, progress: Progress | None = None) -> Collection:
    """Open the demo collection, building it from data/demo first if it is missing."""
    if Collection.exists(DEMO_NAME, home):
        return Collection.open(DEMO_NAME, home)
    documents, eval_set = load_beir(DEMO_DIR)
    return Collection.create(DEMO_NAME, documents, BuildOptions(), home=home, eval_set=eval_set, progress=progress)


def examples(per_language: int = 1) -> dict[str, list[str]]:
    """Judged demo queries by medical scenario (patient_qa, clinical_decision, literature, knowledge_base)."""
    found: dict[str, list[str]] = {}
    counts: dict[tuple[str, str], int] = {}
    with (DEMO_DIR / "queries.jsonl").open(encoding="utf-8") as lines:
        for row in map(json.loads, filter(str.strip, lines)):
            key = (row["metadata"]["scenario"], row["metadata"]["lang"])
            counts[key] = counts.get(key, 0) + 1
            if counts[key] <= per_language:
                found.setdefault(key[0], []).append(row["text"])
    return found
