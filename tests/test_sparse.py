"""BM25 on bm25s agrees with the rank_bm25 reference; TF-IDF and BM25 round-trip through disk."""

import bm25s
import numpy as np
import pytest
import rank_bm25

from medsearch.retrieval import ChunkTable, search_many
from medsearch.sparse import BM25Retriever, TermCounts, TfidfRetriever
from medsearch.text import Tokenizer

TEXTS = [
    "高血压患者每天食盐不超过5克，规律服用降压药。",
    "血压升高时应先复测，排除紧张和咖啡因的影响。",
    "孕妇在医生指导下可以使用头孢类抗生素。",
    "四环素类和喹诺酮类抗生素孕期应避免使用。",
    "Asthma inhalers with corticosteroids reduce airway inflammation.",
    "Stroke signs: face drooping, arm weakness, speech difficulty; call emergency services.",
    "Type 2 diabetes is managed with diet, exercise and metformin.",
    "Influenza vaccine is recommended every year for adults over 65.",
    "Hypotension means low blood pressure and may cause dizziness.",
    "Hypertension (high blood pressure) raises the risk of stroke and heart attack.",
    "糖尿病患者应监测血糖，控制饮食。",
    "儿童发热超过38.5度可以使用对乙酰氨基酚退热。",
]
QUERIES = ["血压升高怎么办", "孕妇能吃头孢吗", "high blood pressure stroke", "asthma inhaler", "儿童发热 退热药",
           "diabetes metformin", "vaccine for elderly", "抗生素 孕期"]


@pytest.fixture(scope="module")
def corpus():
    tok = Tokenizer()
    table = ChunkTable([f"c{i}" for i in range(len(TEXTS))], [f"d{i}" for i in range(len(TEXTS))])
    return tok, table, tok.many(TEXTS)


def test_same_top10_as_rank_bm25(corpus):
    """Robertson BM25 on both sides: same ranking; bm25s leaves out the constant (k1 + 1) factor."""
    tok, table, tokens = corpus
    ours = BM25Retriever.build(tokens, table, tok, method="robertson", k1=1.5, b=0.75)
    ref = rank_bm25.BM25Okapi(tokens, k1=1.5, b=0.75)
    for query in QUERIES:
        ref_scores = ref.get_scores(tok(query))
        expected = [f"c{i}" for i in np.argsort(-ref_scores, kind="stable")[:10] if ref_scores[i] > 0]
        got = [h.chunk_id for h in ours.search(query, 10)]
        assert got == expected, query
        np.testing.assert_allclose(ours.scores(tok(query)) * 2.5, ref_scores, rtol=1e-4, atol=1e-5)


def test_bm25_finds_and_round_trips(corpus, tmp_path):
    tok, table, tokens = corpus
    bm25 = BM25Retriever.build(tokens, table, tok)
    assert bm25.search("孕妇能吃头孢吗？", 1)[0].chunk_id == "c2"
    assert bm25.search("血压升高", 3)[0].chunk_id == "c1"
    assert bm25.search("zzzz unknownword", 5) == []
    bm25.save(tmp_path / "bm25")
    again = BM25Retriever.load(tmp_path / "bm25", table, tok)
    assert [h.chunk_id for h in again.search("stroke arm weakness", 3)] == [h.chunk_id for h in bm25.search("stroke arm weakness", 3)]
    assert [[h.chunk_id for h in hits] for hits in search_many(again, QUERIES, 3)] == \
        [[h.chunk_id for h in bm25.search(q, 3)] for q in QUERIES]


def test_tfidf_finds_and_round_trips(corpus, tmp_path):
    tok, table, tokens = corpus
    tfidf = TfidfRetriever.build(tokens, table, tok)
    top = tfidf.search("asthma corticosteroid inhaler", 3)
    assert top[0].chunk_id == "c4" and 0 < top[0].score <= 1.0
    tfidf.save(tmp_path / "tfidf")
    again = TfidfRetriever.load(tmp_path / "tfidf", table, tok)
    assert [(h.chunk_id, round(h.score, 6)) for h in again.search("头孢 孕妇", 5)] == \
        [(h.chunk_id, round(h.score, 6)) for h in tfidf.search("头孢 孕妇", 5)]


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
def test_bm25_from_counts_scores_as_bm25s_builds(corpus, method):
    """Our numpy build of the bm25s index gives the scores of bm25s's own `BM25.index`, for every variant."""
    tok, table, tokens = corpus
    ours = BM25Retriever.build(tokens, table, tok, method=method)
    reference = bm25s.BM25(method=method)
    reference.index(tokens, show_progress=False)
    for query in QUERIES:
        known = [t for t in tok(query) if t in reference.vocab_dict]
        np.testing.assert_allclose(ours.scores(tok(query)), reference.get_scores(known), rtol=1e-5, atol=1e-6)


def test_changed_counts_score_as_counting_afresh(corpus):
    """Dropping chunks and adding new ones to saved counts gives the indexes a fresh count would give:
    the same BM25 and TF-IDF scores, and no terms that only the dropped chunks had."""
    tok, table, tokens = corpus
    rows = list(range(len(tokens)))
    before = TermCounts.of(zip(rows[:8], tokens[:8]))
    retired = np.array([2, 5])
    after = before.changed(retired, zip(rows[8:], tokens[8:]))
    kept = [r for r in rows if r not in retired]
    fresh = TermCounts.of((r, tokens[r]) for r in kept)
    assert after.rows.tolist() == kept == fresh.rows.tolist()
    assert sorted(after.terms) == sorted(fresh.terms) and "头孢类" not in after.terms
    sub = ChunkTable([f"c{r}" for r in kept], [f"d{r}" for r in kept])
    for build in (BM25Retriever.build, TfidfRetriever.build):
        a, f = build(after, sub, tok), build(fresh, sub, tok)
        for query in QUERIES:
            assert [(h.chunk_id, round(h.score, 5)) for h in a.search(query, 10)] == \
                [(h.chunk_id, round(h.score, 5)) for h in f.search(query, 10)], (build, query)


def test_counts_round_trip(corpus, tmp_path):
    _, _, tokens = corpus
    counts = TermCounts.of(enumerate(tokens))
    counts.save(tmp_path / "counts")
    again = TermCounts.load(tmp_path / "counts")
    assert again.terms == counts.terms and again.rows.tolist() == counts.rows.tolist()
    assert (again.matrix != counts.matrix).nnz == 0
