"""CSV and TSV files: one document per row."""

from __future__ import annotations

import csv
import io

from medsearch.ingest.columns import rows_to_documents
from medsearch.ingest.common import IngestOptions, fail
from medsearch.ingest.encoding import decode_bytes
from medsearch.limits import limited
from medsearch.records import Document, MedSearchError

SHOWN_LINES = 5

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


class RaggedRows(MedSearchError):
    """`count` rows of `name` do not have the header's `fields` fields; `lines` holds the first few line numbers."""

    def __init__(self, name: str, count: int, lines: list[int], fields: int) -> None:
        self.name, self.count, self.lines, self.fields = name, count, lines, fields
        shown = ", ".join(map(str, lines)) + (", …" if count > len(lines) else "")
        super().__init__(f"{name}: {count} rows do not have the header's {fields} fields (lines {shown}); "
                         "quote fields that hold the delimiter, or fix those rows")


def _fits(line: list[str], width: int) -> bool:
    """True for a row of the header's width (extra fields are allowed when empty, as spreadsheets write them)."""
    return len(line) == width or (len(line) > width and not any(v.strip() for v in line[width:]))


def read_rows(text: str, name: str, delimiter: str | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """Parse CSV/TSV text into (columns, rows); the first line is the header. Rows with more or fewer
    fields than the header are refused (RaggedRows), more rows than `limits.max_rows()` too."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or _delimiter(text, name))
    rows, ragged = [], []
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise fail(name, "no_header")
        columns = _header(header)
        for line in limited((line for line in reader if any(line)), name):
            if not _fits(line, len(columns)):
                ragged.append(reader.line_num)
            rows.append(dict(zip(columns, (v.strip() for v in line))))
    except csv.Error as e:
        raise fail(name, "bad_csv", line=reader.line_num, why=e) from e
    if ragged:
        raise RaggedRows(name, len(ragged), ragged[:SHOWN_LINES], len(columns))
    return columns, rows


def read_csv(data: bytes, name: str, options: IngestOptions) -> list[Document]:
    """One document per CSV/TSV row (see IngestOptions for column mapping)."""
    columns, rows = read_rows(decode_bytes(data, name), name)
    if not rows:
        raise fail(name, "no_rows")
    return rows_to_documents(rows, columns, name=name, options=options)
