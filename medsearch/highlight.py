"""Query-term highlighting as safe HTML: document text is always made inert, terms wrapped in <mark>."""

from __future__ import annotations

import re
from functools import cache

from bm25s.stopwords import STOPWORDS_CHINESE, STOPWORDS_EN_PLUS

from medsearch.inert import inert
from medsearch.text import HAN, Tokenizer

_PIECES = re.compile(f"[{HAN}]+|[A-Za-z0-9\u00c0-\u024f]+|[^{HAN}A-Za-z0-9\u00c0-\u024f]+")


@cache
def _stop_tokens(stem: bool, stopwords: bool) -> frozenset[str]:
    """The search tokens of bm25s's longer English and its Chinese stop-word lists: words of a question that say
    nothing about its topic ("do", 怎么), which the index keeps but highlighting skips."""
    tokenizer = Tokenizer(stem, stopwords)
    return frozenset(token for word in (*STOPWORDS_EN_PLUS, *STOPWORDS_CHINESE) for token in tokenizer(word))


def highlight(text: str, query: str, tokenizer: Tokenizer | None = None) -> str:
    """HTML of `text` with the words that match the query's search tokens marked. Single characters (药, 血,
    "c") and stop words ("do", 怎么) are not marked: on their own they match almost every passage and mark noise."""
    tokenizer = tokenizer or Tokenizer()
    terms = {term for term in tokenizer(query) if len(term) > 1} - _stop_tokens(tokenizer.stem, tokenizer.stopwords)
    han_terms = sorted((t for t in terms if re.fullmatch(f"[{HAN}]+", t)), key=len, reverse=True)
    han_pattern = re.compile("|".join(map(re.escape, han_terms))) if han_terms else None
    out = []
    for piece in _PIECES.findall(text):
        if re.fullmatch(f"[{HAN}]+", piece) and han_pattern:
            out.append(_mark_spans(piece, han_pattern))
        elif piece[:1].isalnum() and not re.match(f"[{HAN}]", piece) and set(tokenizer(piece)) & terms:
            out.append(f"<mark>{inert(piece)}</mark>")
        else:
            out.append(inert(piece))
    return "".join(out)


def _mark_spans(run: str, pattern: re.Pattern[str]) -> str:
    out, last = [], 0
    for match in pattern.finditer(run):
        out.append(inert(run[last : match.start()]) + f"<mark>{inert(match.group())}</mark>")
        last = match.end()
    return "".join(out) + inert(run[last:])
