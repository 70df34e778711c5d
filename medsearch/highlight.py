"""Query-term highlighting as safe HTML: document text is always made inert, terms wrapped in <mark>."""

from __future__ import annotations

import re
from functools import cache

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from medsearch.inert import inert
from medsearch.text import HAN, Tokenizer

_PIECES = re.compile(f"[{HAN}]+|[A-Za-z0-9\u00c0-\u024f]+|[^{HAN}A-Za-z0-9\u00c0-\u024f]+")
# Words of a question that say nothing about its topic: marking them marks noise. scikit-learn's English stop
# words (less a few that can name something medical) and common Chinese question and function words.
_CONTENT = {"fire", "bill", "system", "interest", "detail", "side", "back", "front", "top", "bottom", "full",
            "empty", "thick", "thin", "fill", "cry", "mill"}
_ZH_STOP = ("怎么", "怎么办", "怎样", "什么", "哪些", "为什么", "如何", "应该", "可以", "能否", "是否", "需要",
            "有没有", "一下", "我们", "你们", "他们", "这个", "那个", "还是", "或者", "以及", "因为", "所以",
            "如果", "就是", "一个", "一些", "请问", "有点", "什么样", "吗", "呢")


@cache
def _stop_tokens(stem: bool, stopwords: bool) -> frozenset[str]:
    tokenizer = Tokenizer(stem, stopwords)
    return frozenset(token for word in [*(ENGLISH_STOP_WORDS - _CONTENT), *_ZH_STOP] for token in tokenizer(word))


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
