"""Triplets in the seed format — {"query": …, "positive": …, "negative": …} — read from and written to
JSONL or CSV, or to Parquet and Hugging Face `datasets` folders in sentence-transformers' columns
(anchor, positive[, negative]), and mined automatically from question/answer pairs with hard negatives.

Mining: for each (question, answer) pair the answer is the positive; the collection's retrievers
(BM25 and/or dense) rank candidates for the question, and candidates inside the rank window become
hard negatives unless the false-negative guard rejects them: a candidate that is the positive's own
document, is judged relevant, or shares too many search tokens with the positive (it probably says
the same thing) is skipped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

from medsearch.collection import Collection
from medsearch.compare import judged
from medsearch.encoders import sentence_transformer
from medsearch.ingest.common import fail, file_bytes
from medsearch.ingest.csvfile import read_rows
from medsearch.ingest.encoding import decode_bytes
from medsearch.ingest.jsonfile import load_jsonl
from medsearch.ingest.medmcqa import is_medmcqa, medmcqa_documents
from medsearch.ingest.parquet import is_parquet, parquet_bytes, read_dataset, read_parquet, save_dataset
from medsearch.jsonl import jsonl_text
from medsearch.limits import checked_query
from medsearch.records import MedSearchError, Passage

FIELDS = ("query", "positive", "negative")
HF_FIELDS = ("anchor", "positive", "negative")  # sentence-transformers' names, used in Parquet and datasets folders
QUERY, QUESTION, ANSWER = ("query", "anchor"), ("question", "query", "anchor"), ("answer", "positive")
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
Progress = Callable[[str, int, int], None]
Records = tuple[list[str] | None, list[dict]]


def _field(row: dict, names: Sequence[str]) -> str:
    """The first non-empty of `row`'s fields `names`, stripped ("" when none is)."""
    return next((text for text in (str(row.get(k) or "").strip() for k in names) if text), "")


def clean_triplets(rows: Iterable[dict], name: str) -> list[dict]:
    """Triplets with a non-empty query (or anchor) and positive (an empty negative becomes None); errors name `name`."""
    out = []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise fail(name, "triplet_not_object", n=n)
        query, positive = _field(row, QUERY), _field(row, ("positive",))
        if not query or not positive:
            raise fail(name, "triplet_fields", n=n)
        negative = _field(row, ("negative",)) or None
        out.append({"query": query, "positive": positive, "negative": negative,
                    **{k: row[k] for k in ("positive_id", "negative_id") if row.get(k)}})
    if not out:
        raise fail(name, "no_triplets")
    return out


def _records(data: bytes, name: str) -> Records:
    """(columns, records) of a CSV/TSV or Parquet file; (None, records) of JSON Lines, whose records may differ."""
    if name.lower().endswith((".csv", ".tsv")):
        return read_rows(decode_bytes(data, name), name)
    if name.lower().endswith(".parquet") or is_parquet(data):
        return read_parquet(data, name)
    return None, load_jsonl(data, name)


def _triplets(records: Records, name: str) -> list[dict]:
    columns, rows = records
    if columns is not None:
        missing = [" / ".join(names) for names in (QUERY, ("positive",)) if not set(names) & set(columns)]
        if missing:
            raise fail(name, "missing_columns", missing=", ".join(missing), columns=", ".join(columns))
    return clean_triplets(rows, name)


def read_triplets(data: bytes, name: str) -> list[dict]:
    """Triplets from JSONL (seed format), CSV/TSV or Parquet: query (or anchor), positive, optional negative."""
    return _triplets(_records(data, name), name)


def triplets_from_path(path: str | Path) -> list[dict]:
    """Triplets from a file (see `read_triplets`) or a Hugging Face `datasets` folder (its "train" split)."""
    path = Path(path)
    if path.is_dir():
        return _triplets(read_dataset(path, path.name), path.name)
    return read_triplets(file_bytes(path, path.name), path.name)


def _hf_table(triplets: Sequence[dict]) -> tuple[list[dict], list[str]]:
    """Rows and columns in sentence-transformers' names: anchor, positive, and negative when any triplet has one."""
    columns = list(HF_FIELDS if any(t.get("negative") for t in triplets) else HF_FIELDS[:2])
    return [dict(zip(HF_FIELDS, (t.get(k) for k in FIELDS))) for t in triplets], columns


def write_triplets(triplets: Sequence[dict], fmt: str = "jsonl") -> bytes:
    """Triplets (or pairs: no negatives) as JSONL or CSV bytes in the seed format, or as Parquet in
    sentence-transformers' columns (see `_hf_table`)."""
    if fmt == "parquet":
        return parquet_bytes(*_hf_table(triplets))
    rows = [{k: t.get(k) for k in FIELDS} for t in triplets]
    if fmt == "jsonl":
        return jsonl_text(rows).encode("utf-8")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows({k: v or "" for k, v in r.items()} for r in rows)
    return out.getvalue().encode("utf-8")


def save_triplets(triplets: Sequence[dict], path: str | Path) -> None:
    """Write triplets (or pairs) to `path` by its extension, .jsonl, .csv or .parquet (see `write_triplets`); a
    path without one (or an existing folder) becomes a `datasets` folder (`Dataset.save_to_disk`)."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        save_dataset(*_hf_table(triplets), path)
    elif path.suffix.lower() in SUFFIXES:
        path.write_bytes(write_triplets(triplets, SUFFIXES[path.suffix.lower()]))
    else:
        raise fail(path.name, "unsupported_type", suffix=path.suffix,
                   supported=", ".join(SUFFIXES) + ", no extension (a datasets folder)")


@dataclass
class MiningOptions:
    """Where hard negatives come from and how the false-negative guards decide: every candidate shares less than
    `max_overlap` of its words with the positive; a dense candidate also scores at least `relative_margin` (a share
    of the positive's score) below the positive (sentence-transformers' `mine_hard_negatives`)."""

    retrievers: tuple[str, ...] = ("bm25", "dense")
    skip_top: int = 0
    depth: int = 30
    negatives: int = 3
    max_overlap: float = 0.5
    relative_margin: float = 0.05


def overlap(a: set[str], b: set[str]) -> float:
    """Shared search tokens over the smaller set: 1.0 when one text's words are all in the other."""
    return len(a & b) / max(min(len(a), len(b)), 1)


def _margin_guarded(collection: Collection, pairs: Sequence[dict], ranked: list[list], options: MiningOptions) -> list[list]:
    """The dense candidates of each pair (ranked by the collection's index) that pass sentence-transformers'
    `mine_hard_negatives` relative-margin guard, in its order. It scores the pool of every pair's candidates and
    positives (each query's own top `depth` is in the pool, so ranks within it are its ranks in the collection)."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    found = sentence_transformer(collection.dense().encoder)
    if found is None:  # no local model to score positives with: the word-overlap guard alone
        return [hits[options.skip_top:] for hits in ranked]
    model, query_prompt, passage_prompt = found.model, found.query_prefix, found.passage_prefix
    docs = collection.documents
    pool = list(dict.fromkeys(docs[h.doc_id].text for hits in ranked for h in hits))
    by_text = {docs[h.doc_id].text: h for hits in ranked for h in hits}
    depth = min(options.depth, len(pool))
    if depth <= options.skip_top:
        return [[] for _ in pairs]
    mined = mine_hard_negatives(
        Dataset.from_dict({"anchor": [p["query"] for p in pairs], "positive": [p["positive"] for p in pairs]}),
        model, corpus=pool, range_min=options.skip_top, range_max=depth, num_negatives=depth - options.skip_top,
        relative_margin=options.relative_margin, sampling_strategy="top", query_prompt=query_prompt or None,
        corpus_prompt=passage_prompt or None, output_format="triplet", verbose=False)
    negatives: dict[tuple[str, str], list] = {}
    for row in mined:
        negatives.setdefault((row["anchor"], row["positive"]), []).append(by_text[row["negative"]])
    return [negatives.get((p["query"], p["positive"]), []) for p in pairs]


def mine(collection: Collection, pairs: Sequence[dict], options: MiningOptions | None = None,
         progress: Progress | None = None) -> list[dict]:
    """Triplets from pairs {"query", "positive", optional "positive_id", optional "relevant": [doc ids]}.

    Candidates ranked in [skip_top, depth) by any of the retrievers, taken alternately from each so both kinds
    of hard negative appear, pass the false-negative guards (`MiningOptions`) before they become negatives.
    """
    options = options or MiningOptions()
    if not pairs:
        raise MedSearchError("No question/answer pairs to mine from.")
    kinds = [k for k in options.retrievers if k != "dense" or collection.default_model]
    if not kinds:
        raise MedSearchError("Choose at least one retriever for mining (bm25 or dense).")
    queries = [p["query"] for p in pairs]
    ranked = {}
    for i, kind in enumerate(kinds):
        hits = collection.search_documents(queries, options.depth, kind)
        ranked[kind] = ([found[options.skip_top:] for found in hits] if kind != "dense"
                        else _margin_guarded(collection, pairs, hits, options))
        if progress:
            progress("rank candidates", i + 1, len(kinds))
    tokenizer, docs = collection.tokenizer, collection.documents
    triplets = []
    for i, pair in enumerate(pairs):
        positive_tokens = set(tokenizer(pair["positive"]))
        skip = {pair.get("positive_id"), *pair.get("relevant", ())}
        found: list[str] = []
        for group in zip_longest(*(ranked[kind][i] for kind in kinds)):
            for hit in filter(None, group):
                doc = docs[hit.doc_id]
                if hit.doc_id in skip or hit.doc_id in found or doc.text.strip() == pair["positive"].strip():
                    continue
                if overlap(set(tokenizer(doc.text)), positive_tokens) >= options.max_overlap:
                    continue
                found.append(hit.doc_id)
        triplets += [{"query": pair["query"], "positive": pair["positive"], "negative": docs[d].text,
                      "positive_id": pair.get("positive_id"), "negative_id": d} for d in found[:options.negatives]]
        if progress and (i + 1) % 50 == 0:
            progress("mine", i + 1, len(pairs))
    if progress:
        progress("mine", len(pairs), len(pairs))
    return triplets


def pairs_from_eval(collection: Collection, split: str | None = None) -> list[dict]:
    """(question, best relevant document) pairs from a collection's judged queries (default: the dev
    split, else the first split there is)."""
    if collection.eval_set is None:
        raise MedSearchError(f"Collection '{collection.name}' has no judged queries to mine from.")
    split = split or ("dev" if "dev" in collection.eval_set.qrels else next(iter(collection.eval_set.qrels), "dev"))
    queries, qrels = collection.eval_set.split(split)
    if not queries:
        raise MedSearchError(f"Collection '{collection.name}' has no judged queries in split '{split}'.")
    docs, pairs = collection.documents, []
    for qid, grades in qrels.items():
        relevant = [d for d, g in sorted(grades.items(), key=lambda x: -x[1]) if g > 0 and d in docs]
        if relevant:
            pairs.append({"query": queries[qid], "positive": docs[relevant[0]].text, "positive_id": relevant[0],
                          "relevant": relevant})
    return pairs


def _pairs(records: Records, name: str, first: int) -> list[dict]:
    """Pairs from records with question/answer columns, or from MedMCQA records (`first` numbers their `cop`
    when its values cannot tell: see `medsearch.ingest.medmcqa`)."""
    columns, rows = records
    if columns is None:  # JSON Lines: the first record's keys
        columns = list(rows[0]) if rows else []
    if is_medmcqa(columns):
        return [{"query": d.title, "positive": d.text} for d in medmcqa_documents(rows, name, first)]
    pairs = []
    for n, row in enumerate(rows, start=1):
        query, answer = _field(row, QUESTION), _field(row, ANSWER)
        if not query or not answer:
            raise fail(name, "pair_fields", n=n)
        pairs.append({"query": query, "positive": answer})
    if not pairs:
        raise fail(name, "no_pairs")
    return pairs


def pairs_from_file(data: bytes, name: str) -> list[dict]:
    """Question/answer pairs from CSV/TSV/JSONL/Parquet with columns question (or query, anchor) and answer (or
    positive), or from MedMCQA (the question and its correct option with the explanation)."""
    return _pairs(_records(data, name), name, first=0 if is_parquet(data) else 1)


def pairs_from_path(path: str | Path) -> list[dict]:
    """Pairs from a file (see `pairs_from_file`) or a Hugging Face `datasets` folder (its "train" split)."""
    path = Path(path)
    if path.is_dir():
        return _pairs(read_dataset(path, path.name), path.name, first=0)
    return pairs_from_file(file_bytes(path, path.name), path.name)


def candidates(collection: Collection, query: str, per_retriever: int = 5) -> list[Passage]:
    """The whole documents an annotator judges for a query: BM25 and dense top documents pooled and shuffled
    (the same order on every call for a query), numbered in that order, with the rank each retriever gave them
    (never shown, so that it cannot sway the judgement)."""
    kinds = ["bm25"] + (["dense"] if collection.default_model else [])
    pool: dict[str, Passage] = {}
    for kind in kinds:
        for hit in collection.search_documents([checked_query(query)], per_retriever, kind)[0]:
            doc = collection.documents[hit.doc_id]
            pool.setdefault(hit.doc_id, Passage(0, doc.id, doc.title, doc.cited, doc.text)).ranks[kind] = hit.rank
    shown = list(pool.values())
    random.Random(hashlib.sha1(query.encode()).hexdigest()).shuffle(shown)
    for n, passage in enumerate(shown, 1):
        passage.n = n
    return shown


def near_positives(collection: Collection, shown: Sequence[Passage], positives: Iterable[str],
                   max_overlap: float = 0.5) -> set[str]:
    """Candidates (not themselves positive) that share at least `max_overlap` of their words with a positive."""
    positive_ids = set(positives)
    marked = [set(collection.tokenizer(collection.documents[d].text)) for d in positive_ids if d in collection.documents]
    return {c.doc_id for c in shown if c.doc_id not in positive_ids
            and any(overlap(set(collection.tokenizer(c.text)), p) >= max_overlap for p in marked)}


def judged_relevant(collection: Collection, query: str) -> set[str]:
    """Documents the collection's judgements (qrels) grade relevant (> 0) for this exact query text."""
    return {d for d, grade in judged(collection, query).items() if grade > 0}


def suggested_negatives(collection: Collection, query: str, shown: Sequence[Passage], labels: dict[str, str],
                        n: int = 3, max_overlap: float = 0.5) -> list[str]:
    """Once a query has a positive: the best-ranked unlabeled candidates, the hard negatives to check first.

    Never one the collection's judgements grade relevant for the query, nor one that shares `max_overlap` of its
    words with a positive (marked by an annotator or judged relevant): those are likely false negatives."""
    if "positive" not in labels.values():
        return []
    relevant = judged_relevant(collection, query)
    positives = {d for d, value in labels.items() if value == "positive"} | relevant
    unsafe = relevant | near_positives(collection, shown, positives, max_overlap)
    open_ = [c for c in shown if c.doc_id not in labels and c.doc_id not in unsafe]
    return [c.doc_id for c in sorted(open_, key=lambda c: min(c.ranks.values()))[:n]]


def next_candidate(shown: Sequence[Passage], labels: dict[str, str], after: str | None = None) -> str | None:
    """The first unlabeled candidate after `after` (wrapping round; from the start without `after`), else None."""
    ids = [c.doc_id for c in shown]
    start = ids.index(after) + 1 if after in ids else 0
    return next((d for d in ids[start:] + ids[:start] if d not in labels), None)


def read_queries(data: bytes, name: str) -> list[str]:
    """Queries from a TXT file (one per line), a CSV/TSV (column query, question or text) or JSONL."""
    if name.lower().endswith((".csv", ".tsv")):
        columns, rows = read_rows(decode_bytes(data, name), name)
    elif name.lower().endswith((".jsonl", ".ndjson")):
        rows = load_jsonl(data, name)
        columns = list(rows[0]) if rows else []
    else:
        return list(dict.fromkeys(line.strip() for line in decode_bytes(data, name).splitlines() if line.strip()))
    column = next((c for c in ("query", "question", "text") if c in columns), None)
    if column is None:
        raise fail(name, "no_query_column", columns=", ".join(columns))
    return list(dict.fromkeys(str(r[column]).strip() for r in rows if str(r.get(column) or "").strip()))
