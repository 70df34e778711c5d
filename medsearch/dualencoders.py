"""Assemble a dual encoder as ONE sentence-transformers model: a `Router` with a "query" and a "document"
route, saved as a folder that loads (`medsearch.encoders.load_encoder`), trains (`router_mapping`) and
moves like any model.

- `dual_encoder_model(query_model, passage_model, out)`: two models (a DPR question / context pair, or any
  two of the same vector size), each kept as its own route;
- `router_model(base, out)`: one base copied into both routes, the start of an asymmetric fine-tune.

Each route keeps the prompt its model used (its own prompts, else its family's prefix), written as the new
model's "query" / "document" prompts; the folder's `medsearch.json` card records the languages both halves
read and where they came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from medsearch.encoders import SentenceTransformerEncoder, pair_dim
from medsearch.modelref import MINILM, ModelRef
from medsearch.records import MedSearchError
from medsearch.trainers import save_with_card

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

_LOADABLE = ("hub", "folder", "home")  # kinds that name a sentence-transformers model (and the bundled MiniLM)


def _half(spec: str, home: str | Path | None) -> SentenceTransformerEncoder:
    """A fresh copy of a sentence-transformers model (never the one searches share: its modules move)."""
    ref = ModelRef.parse(spec)
    if ref.kind not in _LOADABLE and ref.name != MINILM:
        raise MedSearchError(f"'{spec}' cannot be a route of a dual encoder: give a sentence-transformers "
                             "model's folder, home: reference or Hugging Face id.")
    return SentenceTransformerEncoder(str(ref), ref.location(home))


def router(query: SentenceTransformer, passage: SentenceTransformer, prompts: tuple[str, str]) -> SentenceTransformer:
    """One model whose "query" route is `query`'s modules and "document" route `passage`'s (give fresh copies:
    the modules move), with (query, document) `prompts`."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Module, Router

    routes = Router.for_query_document(cast(list[Module], list(query.children())),
                                       cast(list[Module], list(passage.children())))
    return SentenceTransformer(modules=[routes], device="cpu", prompts={"query": prompts[0], "document": prompts[1]})


def dual_encoder_model(query_model: str, passage_model: str, out: str | Path,
                       home: str | Path | None = None) -> Path:
    """Save at `out` (atomically) one model routing queries through `query_model` and passages through
    `passage_model`; `home:` references resolve under `home` (default: MEDSEARCH_HOME)."""
    query, passage = _half(query_model, home), _half(passage_model, home)
    pair_dim(str(out), query, passage)
    model = router(query.model, passage.model, (query.query_prefix, passage.passage_prefix))
    card = {"languages": sorted(query.languages & passage.languages),
            "query_model": query.spec, "passage_model": passage.spec}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_with_card(model.save, card, out)
    return out


def router_model(base: str, out: str | Path, home: str | Path | None = None) -> Path:
    """Save at `out` a dual encoder whose query and document routes both start as copies of `base`."""
    return dual_encoder_model(base, base, out, home)
