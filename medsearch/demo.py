"""The built-in demo collection: 216 bilingual passages with 40 judged queries, in data/demo."""

from __future__ import annotations

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
