"""Language detection and the search tokenizer for mixed Chinese / English text.

Chinese runs are segmented with jieba in search mode (so 高血压 also yields 血压), English runs
are lower-cased, stop-worded and Snowball-stemmed (PyStemmer). Both share one token stream, so
a mixed sentence such as "孕妇能用 amoxicillin 吗" works.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import jieba
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

jieba.setLogLevel(logging.WARNING)

HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RUN = re.compile(f"[{HAN}]+")
_RUNS = re.compile(f"[{HAN}]+|[A-Za-z0-9\u00c0-\u024f]+(?:[-'][A-Za-z0-9]+)*")
_WORD = re.compile(r"[a-z0-9\u00e0-\u024f]+")

# Function words only: medical words such as 上升 / 不能 stay searchable.
STOPWORDS_ZH = frozenset(
    "的 了 吗 呢 吧 啊 呀 么 和 与 及 或 而 且 是 在 有 我 你 他 她 它 我们 你们 他们 这 那 这个 那个 "
    "一个 也 都 就 还 又 被 把 给 对 从 向 于 以 之 其 该 请问 您好 你好 谢谢 医生 怎么办 怎么 什么 如何 "
    "为什么 哪些 可以 能 会 要 吃 用 应该 需要 是否 有没有 一下 一些 情况 问题".split()
)
STOPWORDS = frozenset(STOPWORDS_EN) | STOPWORDS_ZH


def detect_lang(text: str) -> str:
    """'zh', 'en' or 'mixed', from the share of Chinese characters (word-length weighted)."""
    han = sum(len(m) for m in _HAN_RUN.findall(text))
    words = len(_WORD.findall(text.lower()))
    if han == 0 and words == 0:
        return "en"
    share = han / (han + 2.5 * words)  # an English word carries about 2.5 Han characters of meaning
    return "zh" if share >= 0.8 else "en" if share <= 0.2 else "mixed"


def language_mix(texts: Iterable[str]) -> dict[str, float]:
    """Fraction of texts per detected language, e.g. {'zh': 0.5, 'en': 0.5, 'mixed': 0.0}."""
    counts = {"zh": 0, "en": 0, "mixed": 0}
    for text in texts:
        counts[detect_lang(text)] += 1
    total = sum(counts.values()) or 1
    return {lang: round(n / total, 4) for lang, n in counts.items()}


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


class Tokenizer:
    """Turns text into search tokens; picklable and deterministic."""

    name = "jieba-search+snowball-en"

    def __init__(self, stem: bool = True, stopwords: bool = True) -> None:
        self.stem = stem
        self.stopwords = stopwords

    def __call__(self, text: str) -> list[str]:
        tokens: list[str] = []
        for run in _RUNS.findall(text):
            if _HAN_RUN.fullmatch(run):
                words = list(jieba.cut_for_search(run))
            else:
                words = [w for w in re.split(r"[-']", run.lower()) if w]
            if self.stopwords:
                words = [w for w in words if w not in STOPWORDS]
            if self.stem and not _HAN_RUN.fullmatch(run):
                words = _stemmer().stemWords(words)
            tokens.extend(words)
        return tokens

    def many(self, texts: Iterable[str]) -> list[list[str]]:
        """Tokenize several texts."""
        return [self(t) for t in texts]

    def config(self) -> dict[str, object]:
        return {"name": self.name, "stem": self.stem, "stopwords": self.stopwords}


def text_languages(texts: Sequence[str]) -> list[str]:
    """The languages (`language_mix`) the texts are written in, sorted."""
    return sorted(lang for lang, share in language_mix(texts).items() if share > 0)
