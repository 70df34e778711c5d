"""Plain-text files: one document per file, or one per blank-line-separated block.

txt_mode "auto" picks "blocks" when the file holds at least two blocks separated by
two or more blank lines (a record-style file, like one Q/A pair per block), and
"file" otherwise (prose whose paragraphs are separated by single blank lines).
In "blocks" mode a block of several lines gets its first line (if short) as title;
the text is always the whole block.
"""

from __future__ import annotations

import re

from medsearch.ingest.common import TXT_MODES, IngestOptions, clean_text, fail, stem
from medsearch.ingest.encoding import decode_bytes
from medsearch.records import Document

_BLANK = re.compile(r"\n[ \t\u3000]*\n")
_DOUBLE_BLANK = re.compile(r"\n[ \t\u3000]*\n[ \t\u3000]*\n")
MAX_TITLE = 120


def split_blocks(text: str) -> list[str]:
    """Non-empty blocks of `text` separated by one or more blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [b.strip() for b in _BLANK.split(text) if b.strip()]


def choose_mode(text: str) -> str:
    """The "auto" decision: "blocks" for record-style files, else "file"."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    parts = [p for p in _DOUBLE_BLANK.split(text) if p.strip()]
    return "blocks" if len(parts) >= 2 else "file"


def _block_doc(block: str, n: int, name: str) -> Document:
    lines = block.split("\n")
    title = lines[0].strip() if len(lines) > 1 and len(lines[0].strip()) <= MAX_TITLE else ""
    return Document(f"{stem(name)}-{n}", clean_text(block), title=title, source=name,
                    metadata={"block": n})


def read_txt(data: bytes, name: str, options: IngestOptions) -> list[Document]:
    """Documents from a .txt file according to `options.txt_mode`."""
    mode = options.txt_mode or "auto"
    if mode not in TXT_MODES:
        raise fail(name, "txt_mode", mode=mode, modes=", ".join(TXT_MODES))
    text = decode_bytes(data, name)
    if not text.strip():
        raise fail(name, "only_whitespace")
    if mode == "auto":
        mode = choose_mode(text)
    if mode == "file":
        return [Document(stem(name), clean_text(text), title=stem(name), source=name)]
    return [_block_doc(b, n, name) for n, b in enumerate(split_blocks(text), start=1)]
