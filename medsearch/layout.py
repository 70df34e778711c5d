"""A collection's folder on disk and its manifest, the one file that says which build is current.

Layout of `<MEDSEARCH_HOME>/<name>/`:
    manifest.json        the current generation: models, counts, versions, index files, auto pipelines
    corpus.sqlite        documents, chunks (with their tokens) and metadata, read lazily (`corpusdb`)
    sparse/counts-<gen>/ term counts of every chunk (what the next change starts from)
    sparse/bm25-<gen>/   bm25s index + rows.npy    sparse/tfidf-<gen>/  TF-IDF matrix and vocabulary
    dense/<model>/       vectors.f32 + rows.i64 (every encoded chunk) and index-<gen>.faiss (or a Milvus
                         collection named in the manifest), one folder per embedding model
    eval/                optional eval.json (dev qrels tune `auto`)
Beside the collections, `<MEDSEARCH_HOME>/.cache/encode/<name>/<model>/` keeps a build's encoded batches
until it is done, so a killed build resumes. Models are named by `medsearch.modelref` references, never by
absolute paths into the home, so the home can move.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

from medsearch.encoders import canonical

MANIFEST = "manifest.json"


def has_manifest(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def read_manifest(folder: Path) -> dict:
    """The manifest of a collection folder; models named by an older MedSearch (absolute paths into a home's
    `.models/`) come back as `home:` references."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if any(canonical(spec) != spec for spec in manifest.get("dense", {})):
        manifest["dense"] = {canonical(spec): info for spec, info in manifest["dense"].items()}
        manifest["default_model"] = manifest["default_model"] and canonical(manifest["default_model"])
        options = manifest.get("options", {})
        options["models"] = [canonical(m) for m in options.get("models") or []]
    return manifest


def write_manifest(folder: Path, manifest: dict) -> None:
    """Replace the manifest atomically: readers see the old one or the new one, never a mix."""
    tmp = folder / f".manifest-{uuid.uuid4().hex[:8]}.json"
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def model_folder(spec: str) -> str:
    """A file-system-safe folder name for a model spec."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("_")[-100:]


def encode_caches(home: Path) -> Path:
    """The folder holding every collection's encoded batches (one folder per collection name)."""
    return home / ".cache" / "encode"


def encode_cache(home: Path, name: str, spec: str) -> Path:
    """Where a build keeps a model's encoded batches until it is done."""
    return encode_caches(home) / name / model_folder(spec)
