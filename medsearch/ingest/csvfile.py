"""CSV and TSV files: one document per row."""

from __future__ import annotations

import csv
import io

from medsearch.ingest.columns import rows_to_documents
from medsearch.ingest.common import IngestOptions, fail
from medsearch.ingest.encoding import decode_bytes
from medsearch.records import Document

csv.field_size_limit(2**31 - 1)


def _delimiter(text: str, name: str) -> str:
    """Tab for .tsv/.tab files, else sniffed from the first lines (default comma)."""
    if name.lower().endswith((".tsv", ".tab")):
        return "\t"
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _header(raw: list[str]) -> list[str]:
    """Header names made non-empty and unique."""
    out: list[str] = []
    for i, col in enumerate(raw, start=1):
        base = col.strip() or f"column_{i}"
        col, k = base, 2
        while col in out:
            col, k = f"{base}_{k}", k + 1
        out.append(col)
    return out


def read_rows(text: str, name: str, delimiter: str | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """Parse CSV/TSV text into (columns, rows); the first line is the header."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or _delimiter(text, name))
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise fail(name, "no header row (the first line must name the columns)")
        columns = _header(header)
        rows = [dict(zip(columns, (v.strip() for v in line))) for line in reader if any(line)]
    except csv.Error as e:
        raise fail(name, f"invalid CSV on line {reader.line_num}: {e}") from e
    return columns, rows


def read_csv(data: bytes, name: str, options: IngestOptions) -> list[Document]:
    """One document per CSV/TSV row (see IngestOptions for column mapping)."""
    columns, rows = read_rows(decode_bytes(data, name), name)
    if not rows:
        raise fail(name, "no data rows below the header")
    return rows_to_documents(rows, columns, name=name, options=options)
