"""MedMCQA (Pal et al., 2022): medical entrance-exam questions, each with four options and the correct one.

A record has `id`, `question`, the options `opa` `opb` `opc` `opd`, `cop` (the correct option),
`choice_type` (single / multi), `exp` (an explanation, may be empty or null), `subject_name` and `topic_name`.
Each answered question becomes one document: title = the question, text = the correct option's text and the
explanation; subject, topic and choice_type are metadata (so they can filter).

The two releases number `cop` differently: 1-4 in the original JSON Lines files (github.com/medmcqa/medmcqa,
named train.json / dev.json / test.json), 0-3 in Hugging Face's openlifescienceai/medmcqa (Parquet; its loader
subtracted 1 and gave the test split -1). A file is read with the numbering its own values show: from 0 when a
record has 0 or -1, from 1 when one has 4 (both at once is an error). When they cannot tell (only 1-3, as in a
small sample) the container decides: JSON is the original release's (1-4), Parquet and `datasets` folders are
Hugging Face's (0-3). Letters a-d are read too. Questions without an answer (no `cop`, or -1: the test splits)
are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from medsearch.ingest.common import IngestOptions, as_text, fail, stem
from medsearch.ingest.encoding import decode_bytes
from medsearch.ingest.jsonfile import json_rows, load_jsonl, parse_json
from medsearch.ingest.parquet import is_parquet, parquet_columns, read_parquet
from medsearch.records import Document

SOURCE = "MedMCQA"
OPTIONS = ("opa", "opb", "opc", "opd")
LETTERS = ("a", "b", "c", "d")
HEAD = 1 << 16  # bytes of a JSON file searched for MedMCQA's keys (an explanation can be long)
_KEY = re.compile(rb'"(question|opa|opb|opc|opd)"\s*:')
_KEYS = {b"question", *(o.encode() for o in OPTIONS)}
Cop = int | str | None


def is_medmcqa(columns: Iterable[str]) -> bool:
    """True for columns (or a record's keys) holding a question and the four options opa..opd."""
    return {"question", *OPTIONS} <= set(columns)


def looks_like_medmcqa(data: bytes) -> bool:
    """True for a Parquet file with MedMCQA's columns, or a JSON / JSON Lines file whose start has its keys."""
    if is_parquet(data):
        return is_medmcqa(parquet_columns(data))
    return {m.group(1) for m in _KEY.finditer(data[:HEAD])} >= _KEYS


def _cop(value: Any, n: int, name: str) -> Cop:
    """A record's `cop` as a whole number (in the file's numbering) or a letter; None when it has none."""
    text = value.strip().lower() if isinstance(value, str) else None
    if value is None or text == "":
        return None
    if text in LETTERS:
        return text
    if text and re.fullmatch(r"-?\d+", text):
        return int(text)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise fail(name, "mcqa_cop", n=n, cop=value)


def _numbering(cops: Sequence[Cop], name: str, default: int) -> int:
    """0 or 1, the number of the first option in this file (see the module's docstring)."""
    zero = next((n for n, c in enumerate(cops, start=1) if c in (0, -1)), None)
    four = next((n for n, c in enumerate(cops, start=1) if c == 4), None)
    if zero and four:
        raise fail(name, "mcqa_mixed", zero=zero, four=four)
    return 0 if zero else 1 if four else default


def _option(cop: Cop, first: int, n: int, name: str) -> int | None:
    """The 0-based index of the correct option, None for an unanswered question."""
    if cop is None or cop == -1:
        return None
    index = LETTERS.index(cop) if isinstance(cop, str) else cop - first
    if not 0 <= index < len(OPTIONS):
        raise fail(name, "mcqa_cop", n=n, cop=cop)
    return index


def _document(row: dict[str, Any], option: int, n: int, name: str) -> Document:
    question, answer = as_text(row.get("question")).strip(), as_text(row.get(OPTIONS[option])).strip()
    if not question or not answer:
        raise fail(name, "mcqa_fields", n=n)
    text = "\n\n".join(filter(None, (answer, as_text(row.get("exp")).strip())))
    meta = {"subject": row.get("subject_name"), "topic": row.get("topic_name"), "choice_type": row.get("choice_type"),
            "file": name}
    return Document(as_text(row.get("id")).strip() or f"{stem(name)}-{n}", text, title=question, source=SOURCE,
                    metadata={k: as_text(v).strip() for k, v in meta.items() if as_text(v).strip()})


def medmcqa_documents(rows: Sequence[dict[str, Any]], name: str, first: int) -> list[Document]:
    """One document per answered question of MedMCQA records; `first` numbers `cop` when its values cannot tell."""
    if not rows:
        raise fail(name, "no_records")
    if not is_medmcqa(rows[0]):
        raise fail(name, "not_medmcqa")
    cops = [_cop(row.get("cop"), n, name) for n, row in enumerate(rows, start=1)]
    first = _numbering(cops, name, first)
    found = ((n, row, _option(cop, first, n, name)) for n, (row, cop) in enumerate(zip(rows, cops), start=1))
    docs = [_document(row, option, n, name) for n, row, option in found if option is not None]
    if not docs:
        raise fail(name, "mcqa_no_answers")
    return docs


def read_medmcqa(data: bytes, name: str, options: IngestOptions | None = None) -> list[Document]:
    """MedMCQA from JSON Lines (the original .json files are JSON Lines), a JSON list of records, or Parquet."""
    if is_parquet(data):
        return medmcqa_documents(read_parquet(data, name)[1], name, first=0)
    text = decode_bytes(data, name)
    rows = json_rows(parse_json(text, name), name)[0] if text.lstrip().startswith("[") else load_jsonl(data, name)
    return medmcqa_documents(rows, name, first=1)
