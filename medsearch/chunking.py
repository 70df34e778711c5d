"""Sentence-aware chunking for Chinese (。！？；) and English text, with overlap."""

from __future__ import annotations

import re
from collections.abc import Iterable

from medsearch.records import Chunk, Document, MedSearchError

# A sentence ends after Chinese end punctuation (and a closing quote), after . ! ? ; and a space,
# or at a line break.
_SENTENCE_END = re.compile(r"(?<=[。！？；])(?![”’」』）])|(?<=[。！？；][”’」』）])|(?<=[.!?;])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, keeping their end punctuation."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _hard_split(sentence: str, size: int) -> list[str]:
    return [sentence[i : i + size] for i in range(0, len(sentence), size)]


def chunk_text(text: str, size: int = 500, overlap: int = 80) -> list[str]:
    """Pack whole sentences into chunks of at most `size` characters.

    Each chunk starts with the trailing sentences of the previous one, up to `overlap`
    characters, so a fact split across a boundary is still found. A sentence longer than
    `size` is cut into pieces of `size` characters.
    """
    if size < 20 or not 0 <= overlap < size:
        raise MedSearchError(f"Chunk size must be at least 20 and overlap between 0 and size - 1 (got {size}, {overlap}).")
    pieces = [p for s in split_sentences(text) for p in (_hard_split(s, size) if len(s) > size else [s])]
    chunks: list[str] = []
    current: list[str] = []
    fresh = False  # does `current` hold a sentence not yet emitted?
    for piece in pieces:
        if current and fresh and _length(current + [piece]) > size:
            chunks.append(_join(current))
            current = _tail(current, overlap, size - len(piece))
        current.append(piece)
        fresh = True
    if fresh:
        chunks.append(_join(current))
    return chunks


def _tail(sentences: list[str], overlap: int, room: int) -> list[str]:
    kept: list[str] = []
    for sentence in reversed(sentences):
        if _length(kept + [sentence]) > min(overlap, room):
            break
        kept.insert(0, sentence)
    return kept


def _join(sentences: list[str]) -> str:
    out = ""
    for s in sentences:
        needs_space = out and (out[-1].isascii() and out[-1] not in "\n") and s[:1].isascii()
        out += (" " if needs_space else "") + s
    return out


def _length(sentences: list[str]) -> int:
    return len(_join(sentences))


def chunk_documents(documents: Iterable[Document], size: int = 500, overlap: int = 80) -> list[Chunk]:
    """Chunk every document; chunk ids are `<doc id>#<n>`."""
    chunks: list[Chunk] = []
    for doc in documents:
        for n, text in enumerate(chunk_text(doc.text, size, overlap)):
            chunks.append(Chunk(f"{doc.id}#{n}", doc.id, text, doc.title, n, dict(doc.metadata)))
    return chunks
