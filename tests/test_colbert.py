"""ColBERT late interaction with a tiny BERT built here (no download): training with sentence-transformers'
MultiVectorEncoderTrainer, reranking through `load_reranker`, the first-stage retriever over a collection's
token vectors, cancelling, and errors."""

import numpy as np
import pytest

from medsearch.colbert import (
    ColbertReranker,
    ColbertRetriever,
    build_colbert,
    colbert_index,
    load_colbert,
    train_colbert,
    training_columns,
)
from medsearch.collection import BuildOptions, Collection
from medsearch.records import Document, MedSearchError
from medsearch.rerank import load_reranker, passage_text
from medsearch.training import TrainingCancelled
from tests.tiny_models import tiny_bert

# queries name a topic with words their passage does not use; each negative shares a word with the query
TOPICS = {
    "fever": ("fever temperature medicine", "aspirin lowers pyrexia quickly"),
    "cough": ("cough at night medicine", "syrup soothes the throat"),
    "asthma": ("asthma breathing", "inhaler opens airways"),
    "diabetes": ("diabetes sugar", "metformin insulin glucose control"),
    "stroke": ("stroke face weakness", "emergency brain clot care"),
    "发热": ("发热 怎么 办", "退 烧 药 物 降 温"),
    "咳嗽": ("咳嗽 夜 里", "止 咳 糖 浆 润 喉"),
}
QUERY_VARIANTS = ("{q}", "{q} please", "what about {q}")
DOCS = [Document(topic, text, "") for topic, (_, text) in TOPICS.items()]
WORDS = sorted({w for q, text in TOPICS.values() for w in f"{q} {text} please what about".split()})


def _triplets() -> list[dict]:
    pairs, rows = list(TOPICS.values()), []
    for i, (query, positive) in enumerate(pairs):
        negative = f"{pairs[(i + 1) % len(pairs)][1]} {query.split()[-1]}"  # another passage + the query's last word
        rows += [{"query": v.format(q=query), "positive": positive, "negative": negative} for v in QUERY_VARIANTS]
    rows[-1]["negative"] = None  # a pair: borrows a negative
    return rows


TRIPLETS = _triplets()
TOPIC_OF = {text: topic for topic, (_, text) in TOPICS.items()}  # a positive's document id


def _wins(reranker: ColbertReranker) -> float:
    """The share of training triplets (with a hard negative) whose positive outscores the negative."""
    rows = [t for t in TRIPLETS if t["negative"]]
    return float(np.mean([np.argmax(reranker.scores(t["query"], [t["negative"], t["positive"]])) == 1 for t in rows]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(card, folder, progress reports, base folder) of the tiny ColBERT trained on TRIPLETS."""
    root = tmp_path_factory.mktemp("colbert")
    base = tiny_bert(root / "base", WORDS)
    reports = []
    card = train_colbert(TRIPLETS, str(base), root / "tuned", epochs=8, batch_size=7, learning_rate=5e-3, dim=16,
                         progress=reports.append)
    return card, root / "tuned", reports, base


@pytest.fixture
def collection(tmp_path):
    return Collection.create("cb", DOCS, BuildOptions(models=[]), home=tmp_path / "home")


def test_rows_without_a_negative_borrow_one():
    columns = training_columns(TRIPLETS)
    assert list(columns) == ["query", "positive", "negative"] and len(columns["negative"]) == len(TRIPLETS)
    assert columns["negative"][-1] not in (TRIPLETS[-1]["positive"], None)
    assert "negative" not in training_columns([{"query": "a", "positive": "x", "negative": None}] * 2)


def test_training_saves_a_colbert_that_load_reranker_returns_and_that_learnt(trained, tmp_path):
    card, folder, reports, base = trained
    assert card["family"] == "colbert" and card["steps"] == reports[-1]["total"] and card["loss_end"] < card["loss_start"]
    assert {"en", "zh"} <= set(card["languages"]) and (folder / "medsearch.json").is_file()
    assert not list(folder.parent.glob(".tmp-*")) and not list(folder.glob("checkpoint-*"))
    assert [r["step"] for r in reports] == list(range(1, card["steps"] + 1))
    assert set(reports[0]) == {"step", "total", "epoch", "loss", "eta_s"} and reports[-1]["eta_s"] == 0
    reranker = load_reranker(str(folder))
    assert isinstance(reranker, ColbertReranker) and reranker.encoder.get_embedding_dimension() == 16
    untrained = build_colbert(str(base), dim=16)
    untrained.eval()
    before, after = _wins(ColbertReranker("untrained", untrained)), _wins(reranker)
    assert after >= 0.8 and after > before, (before, after)


def test_reranker_caches_passage_vectors_and_orders_hits_by_its_scores(trained, collection):
    reranker = load_reranker(str(trained[1]))
    query, passages = TRIPLETS[0]["query"], [d.text for d in DOCS]
    first = reranker.scores(query, passages)
    assert first.shape == (len(DOCS),) and first.dtype == np.float32
    assert set(passages) <= set(reranker._cache)
    np.testing.assert_allclose(reranker.scores(query, passages[::-1]), first[::-1], rtol=1e-5)
    reranked = collection.reranked("bm25", None, str(trained[1]), rerank_k=3)
    assert reranked.reranker is reranker
    head = collection.retriever("bm25").search("fever temperature medicine cough sugar", 10)
    hits = reranked.rerank("fever temperature medicine cough sugar", head)
    scores = reranker.scores("fever temperature medicine cough sugar",
                             [passage_text(collection.chunks[h.chunk_id]) for h in head[:3]])
    assert [h.chunk_id for h in hits[:3]] == [head[i].chunk_id for i in np.argsort(-scores, kind="stable")]
    assert [h.score for h in hits[:3]] == pytest.approx(sorted(scores.tolist(), reverse=True))


def test_retriever_scores_every_chunk_from_token_vectors_on_disk(trained, collection):
    spec = str(trained[1])
    retriever = colbert_index(collection, spec)
    assert isinstance(retriever, ColbertRetriever)
    saved = list((collection.folder / "colbert").glob("*.npz"))
    assert len(saved) == 1 and saved[0].name.count(".") == 1  # the temporary file was renamed
    with np.load(saved[0]) as index:
        assert index["vectors"].dtype == np.float16 and len(index["offsets"]) == len(DOCS) + 1
    found = {t["query"]: retriever.search(t["query"], 3) for t in TRIPLETS}
    top1 = [found[t["query"]][0].doc_id == TOPIC_OF[t["positive"]] for t in TRIPLETS]
    assert np.mean(top1) >= 0.8 and found[TRIPLETS[0]["query"]][0].doc_id == "fever"
    assert found[TRIPLETS[0]["query"]][0].retriever == "colbert"
    written = saved[0].stat().st_mtime_ns
    again = colbert_index(Collection.open("cb", collection.folder.parent), spec)  # read back, not encoded again
    assert saved[0].stat().st_mtime_ns == written
    assert [h.chunk_id for h in again.search(TRIPLETS[0]["query"], 3)] == [h.chunk_id for h in found[TRIPLETS[0]["query"]]]
    by_kind = collection.search(TRIPLETS[0]["query"], 3, "colbert", spec)  # a retriever kind of the collection
    assert [h.chunk_id for h in by_kind] == [h.chunk_id for h in found[TRIPLETS[0]["query"]]]
    assert collection.retriever("colbert", spec) is collection.retriever("colbert", spec)  # indexed once
    with pytest.raises(MedSearchError, match="ColBERT search needs a ColBERT model"):
        collection.search("fever", 3, "colbert")


def test_retriever_refuses_big_collections(trained, collection, monkeypatch):
    import medsearch.colbert

    monkeypatch.setattr(medsearch.colbert, "MAX_CHUNKS", 3)
    with pytest.raises(MedSearchError, match="more than 3"):
        colbert_index(collection, str(trained[1]))


def test_cancelling_saves_nothing(trained, tmp_path):
    with pytest.raises(TrainingCancelled):
        train_colbert(TRIPLETS, str(trained[3]), tmp_path / "out", should_stop=lambda: True)
    assert list(tmp_path.iterdir()) == []


def test_unknown_hub_id_is_one_line_and_not_downloaded():
    for load in (load_reranker, load_colbert):
        with pytest.raises(MedSearchError) as err:
            load("medsearch-nobody/no-such-colbert")
        assert "\n" not in str(err.value) and "no-such-colbert" in str(err.value)


def test_cli_trains_a_colbert_reranker_that_search_uses_by_name(trained, tmp_path):
    import json

    from medsearch.rerank import rerankers_root
    from tests.test_cli import run

    home, triplets = tmp_path / "home", tmp_path / "triplets.jsonl"
    triplets.write_text("".join(json.dumps(t) + "\n" for t in TRIPLETS), encoding="utf-8")
    made = run("train-reranker", "--family", "colbert", "--triplets", str(triplets), "--base", str(trained[3]),
               "--name", "late", "--epochs", "1", "--batch-size", "7", home=home)
    assert "saved a colbert reranker" in made.stdout
    assert json.loads((rerankers_root(home) / "late" / "medsearch.json").read_text())["family"] == "colbert"
    Collection.create("cb", DOCS, BuildOptions(models=[]), home=home)
    rows = json.loads(run("search", "cb", "aspirin syrup inhaler", "--retriever", "bm25", "--rerank", "late",
                          "--json", home=home).stdout)
    assert len(rows) == 3 and {r["retriever"] for r in rows} == {"bm25+rerank"}
    assert isinstance(load_reranker("late", home), ColbertReranker)
    first = json.loads(run("search", "cb", TRIPLETS[0]["query"], "--retriever", "colbert", "--model", "late", "--json",
                           home=home).stdout)
    assert first and {r["retriever"] for r in first} == {"colbert"}
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": d.id, "text": d.text}) + "\n" for d in DOCS))
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": TOPICS[t][0]}) + "\n"
                                                for i, t in enumerate(TOPICS)))
    (beir / "qrels" / "test.tsv").write_text("".join(f"q{i}\t{t}\t1\n" for i, t in enumerate(TOPICS)))
    report = json.loads(run("evaluate", str(beir), "--retriever", "colbert", "--model", "late", "--json",
                            home=home).stdout)
    assert report["retriever"] == "colbert" and 0 < report["ndcg@10"] <= 1  # the server reranker, found by name
