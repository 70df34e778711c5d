"""Turn question/answer data into a BEIR folder for retrieval evaluation.

Output: corpus.jsonl (`_id`, `title`, `text`, `metadata`), queries.jsonl (`_id`,
`text`), qrels/test.tsv and qrels/dev.tsv (`query-id  corpus-id  score`).
Sources: neike.txt-style blocks, PubMedQA JSON, a MedQuAD XML folder (or file),
MedMCQA (JSON Lines or Parquet: the question -> its correct option and explanation),
and generic Q/A CSV/TSV/JSON/JSONL with question and answer columns.
Identical answers become one document and identical questions one query, so a
query may have several relevant documents and a document several queries.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsearch.ingest.csvfile import read_rows
from medsearch.ingest.encoding import read_text
from medsearch.ingest.jsonfile import json_rows, load_json, load_jsonl
from medsearch.ingest.medmcqa import looks_like_medmcqa, read_medmcqa
from medsearch.ingest.medquad import read_medquad
from medsearch.ingest.pubmedqa import is_pubmedqa, pubmedqa_documents
from medsearch.ingest.text import split_blocks
from medsearch.jsonl import write_jsonl
from medsearch.records import MedSearchError

FORMATS = ("neike", "pubmedqa", "medquad", "medmcqa", "qa")
QUESTION_NAMES = ("question", "query", "q", "问题", "提问")
ANSWER_NAMES = ("answer", "a", "答案", "回答", "text")


@dataclass
class Pair:
    """One question with the answer document it is answered by."""

    question: str
    answer: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def detect(src: Path) -> str:
    """The source format of `src` (a folder of XML files is MedQuAD)."""
    if src.is_dir():
        return "medquad"
    suffix = src.suffix.lower()
    if suffix == ".txt":
        return "neike"
    if suffix == ".xml":
        return "medquad"
    if suffix in (".json", ".jsonl", ".ndjson", ".parquet") and looks_like_medmcqa(_bytes(src)):
        return "medmcqa"
    if suffix == ".json":
        return "pubmedqa" if is_pubmedqa(load_json(_bytes(src), src.name)) else "qa"
    if suffix in (".csv", ".tsv", ".jsonl", ".ndjson"):
        return "qa"
    raise MedSearchError(f"{src.name}: cannot tell the Q/A format; pass fmt= one of {', '.join(FORMATS)}")


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise MedSearchError(f"{path.name}: cannot read the file ({e.strerror or e})") from e


def neike_pairs(src: Path) -> list[Pair]:
    """Blocks of 'title,question' then the doctor's answer (GB18030 or any encoding)."""
    pairs = []
    for block in split_blocks(read_text(src)):
        head, _, answer = block.partition("\n")
        if not answer.strip():
            continue
        parts = re.split(r"[,，]", head, maxsplit=1)
        title, question = (parts[0].strip(), parts[1].strip()) if len(parts) == 2 else ("", head.strip())
        pairs.append(Pair(question or title, answer.strip()))
    return pairs


def pubmedqa_pairs(src: Path) -> list[Pair]:
    """QUESTION -> its own abstract (contexts joined)."""
    docs = pubmedqa_documents(load_json(_bytes(src), src.name), src.name)
    return [Pair(d.title, d.text, metadata={"pmid": d.id}) for d in docs if d.title and d.text]


def medquad_pairs(src: Path) -> list[Pair]:
    """Question -> answer for every QAPair of every XML file under `src`."""
    files = sorted(src.rglob("*.xml")) if src.is_dir() else [src]
    if not files:
        raise MedSearchError(f"{src.name}: no .xml files found in the folder")
    pairs = []
    for path in files:
        for d in read_medquad(_bytes(path), path.name):
            meta: dict[str, object] = {k: d.metadata[k] for k in ("focus", "qtype", "url") if k in d.metadata}
            pairs.append(Pair(d.title, d.text, metadata={"source": d.source, **meta}))
    return pairs


def medmcqa_pairs(src: Path) -> list[Pair]:
    """Each answered question -> its correct option and explanation; subject, topic and choice type as metadata."""
    return [Pair(d.title, d.text, metadata={"medmcqa_id": d.id, **{k: v for k, v in d.metadata.items() if k != "file"}})
            for d in read_medmcqa(_bytes(src), src.name)]


def _column(columns: list[str], names: Iterable[str], what: str, file: str) -> str:
    lowered = {c.strip().lower(): c for c in columns}
    for n in names:
        if n in lowered:
            return lowered[n]
    raise MedSearchError(f"{file}: no {what} column (looked for {', '.join(names)}; "
                         f"found {', '.join(columns) or 'none'})")


def qa_pairs(src: Path) -> list[Pair]:
    """Rows of a CSV/TSV/JSON/JSONL file with question and answer columns."""
    data, name, suffix = _bytes(src), src.name, src.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows: list[dict[str, Any]] = load_jsonl(data, name)
    elif suffix == ".json":
        rows = json_rows(load_json(data, name), name)[0]
    else:
        rows = read_rows(read_text(data, name), name)[1]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    q_col = _column(columns, QUESTION_NAMES, "question", name)
    a_col = _column(columns, ANSWER_NAMES, "answer", name)
    out = []
    for row in rows:
        q, a = str(row.get(q_col) or "").strip(), str(row.get(a_col) or "").strip()
        if q and a:
            out.append(Pair(q, a))
    return out


READERS = {"neike": neike_pairs, "pubmedqa": pubmedqa_pairs, "medquad": medquad_pairs, "medmcqa": medmcqa_pairs,
           "qa": qa_pairs}


def _key(text: str) -> str:
    return " ".join(text.split())


def build(pairs: list[Pair]) -> tuple[list[dict], list[dict], dict[str, list[str]]]:
    """Corpus rows, query rows and qrels (query id -> doc ids), deduplicating texts."""
    corpus: dict[str, dict] = {}
    queries: dict[str, dict] = {}
    qrels: dict[str, list[str]] = {}
    for p in pairs:
        d = corpus.setdefault(_key(p.answer), {"_id": f"d{len(corpus) + 1}", "title": p.title,
                                               "text": p.answer, "metadata": p.metadata})
        q = queries.setdefault(_key(p.question), {"_id": f"q{len(queries) + 1}", "text": p.question})
        rel = qrels.setdefault(q["_id"], [])
        if d["_id"] not in rel:
            rel.append(d["_id"])
    return list(corpus.values()), list(queries.values()), qrels


def _write_qrels(path: Path, qids: list[str], qrels: dict[str, list[str]]) -> int:
    lines = [f"{q}\t{d}\t1" for q in qids for d in qrels[q]]
    path.write_text("\n".join(["query-id\tcorpus-id\tscore", *lines]) + "\n", encoding="utf-8")
    return len(lines)


def convert(
    src: Path,
    out: Path,
    *,
    fmt: str | None = None,
    dev_fraction: float = 0.2,
    seed: int = 13,
    limit: int | None = None,
) -> dict:
    """Write a BEIR folder at `out` from Q/A data at `src`; return the counts.

    Queries are split into dev (`dev_fraction`) and test by a shuffle seeded with
    `seed`; all documents stay in the corpus. `limit` keeps the first N Q/A pairs.
    """
    src, out = Path(src), Path(out)
    if not src.exists():
        raise MedSearchError(f"{src.name}: not found")
    if not 0.0 <= dev_fraction < 1.0:
        raise MedSearchError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    fmt = fmt or detect(src)
    if fmt not in READERS:
        raise MedSearchError(f"unknown format '{fmt}' (known: {', '.join(FORMATS)})")
    pairs = READERS[fmt](src)
    if limit is not None:
        pairs = pairs[: max(limit, 0)]
    if not pairs:
        raise MedSearchError(f"{src.name}: no question/answer pairs found (format {fmt})")
    corpus, queries, qrels = build(pairs)
    qids = [q["_id"] for q in queries]
    shuffled = qids[:]
    random.Random(seed).shuffle(shuffled)
    dev = set(shuffled[: round(len(qids) * dev_fraction)])
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "corpus.jsonl", corpus)
    write_jsonl(out / "queries.jsonl", queries)
    n_dev = _write_qrels(out / "qrels" / "dev.tsv", [q for q in qids if q in dev], qrels)
    n_test = _write_qrels(out / "qrels" / "test.tsv", [q for q in qids if q not in dev], qrels)
    return {"format": fmt, "pairs": len(pairs), "docs": len(corpus), "queries": len(queries),
            "dev_queries": len(dev), "test_queries": len(qids) - len(dev),
            "dev_qrels": n_dev, "test_qrels": n_test}
