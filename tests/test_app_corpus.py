"""The Corpus page through AppTest: uploads (CSV, GB18030 TXT, broken files), column mapping, build, delete."""

from html import unescape as visible

from streamlit.testing.v1 import AppTest

from medsearch.collection import BuildOptions, Collection
from medsearch.records import Document

PAGE = "views/corpus.py"
CSV = ("id,question,answer,department\n"
       "1,头痛怎么办,多休息，必要时服用对乙酰氨基酚等止痛药。,神经内科\n"
       "2,What is asthma?,Asthma is a chronic disease of the airways that causes wheezing.,respiratory\n").encode()
TXT = "高血压患者应低盐饮食，每日食盐不超过5克。\n\n糖尿病患者需要定期监测血糖和糖化血红蛋白。\n".encode("gb18030")


def click(app: AppTest, label: str) -> AppTest:
    next(b for b in app.button if b.label == label).click().run()
    assert not app.exception
    return app


def upload(app: AppTest) -> AppTest:
    app.file_uploader[0].set_value([("qa.csv", CSV, "text/csv"), ("notes.txt", TXT, "text/plain"),
                                    ("broken.pdf", b"%PDF-1.4 not really a pdf", "application/pdf"),
                                    ("slides.pptx", b"PK\x03\x04", "application/octet-stream")]).run()
    assert not app.exception
    return app


def test_upload_reads_good_files_and_names_bad_ones(tmp_path, open_app):
    app = upload(open_app(tmp_path, page=PAGE))
    errors = [visible(e.value) for e in app.error]
    assert any("broken.pdf" in e for e in errors) and any("slides.pptx" in e for e in errors)
    captions = [visible(c.value) for c in app.caption]
    assert "qa.csv: 2 documents" in captions and "notes.txt: 1 documents" in captions
    table = app.dataframe[0].value
    assert list(table["source"]) == ["qa.csv", "qa.csv", "notes.txt"]
    assert "低盐饮食" in table["text"].iloc[2]  # GB18030 decoded
    assert table["title"].iloc[0] == "头痛怎么办" and table["metadata"].iloc[0] == "department=神经内科"


def test_column_mapping_and_build(tmp_path, open_app):
    app = upload(open_app(tmp_path, page=PAGE))
    app.selectbox(key="text-qa.csv").select("question").run()
    app.selectbox(key="title-qa.csv").select("(none)").run()
    assert app.dataframe[0].value["text"].iloc[0] == "头痛怎么办"
    app.text_input[0].input("clinic").run()
    app.selectbox(key="new-model").select("bm25").run()
    click(app, "Build the collection")
    assert any("'clinic' is ready: 3 documents" in s.value for s in app.success)
    built = Collection.open("clinic", tmp_path)
    assert built.documents["1"].text == "头痛怎么办" and built.documents["1"].metadata == {"department": "神经内科"}
    assert built.search("血糖", 1, "bm25")[0].doc_id == "notes"


def test_existing_name_is_refused_and_kept(tmp_path, open_app):
    Collection.create("qa", [Document("keep", "saved before")], BuildOptions(models=[]), home=tmp_path)
    app = upload(open_app(tmp_path, "zh", PAGE))
    app.selectbox(key="new-model").select("bm25").run()
    click(app, "构建文档集")
    assert any("已存在" in e.value for e in app.error)
    assert list(Collection.open("qa", tmp_path).documents) == ["keep"]


def test_add_to_an_existing_collection(tmp_path, open_app):
    Collection.create("qa", [Document("keep", "saved before")], BuildOptions(models=[]), home=tmp_path)
    app = upload(open_app(tmp_path, page=PAGE))
    app.radio(key="target").set_value("existing").run()
    click(app, "Build the collection")
    assert set(Collection.open("qa", tmp_path).documents) == {"keep", "1", "2", "notes"}


def test_delete_and_rebuild_ask_for_confirmation(tmp_path, open_app):
    Collection.create("old", [Document("a", "asthma inhaler technique " * 40)], BuildOptions(models=[]), home=tmp_path)
    app = open_app(tmp_path, page=PAGE)
    assert app.dataframe[0].value["name"].tolist() == ["old"]
    app.number_input(key="rebuild-old-chunk").set_value(200).run()
    click(app, "Rebuild")
    assert Collection.open("old", tmp_path).options.chunk_size == 500  # nothing happens before "yes"
    click(app, "Yes, do it")
    rebuilt = Collection.open("old", tmp_path)
    assert rebuilt.options.chunk_size == 200 and rebuilt.manifest["counts"]["chunks"] > 1
    click(app, "Delete")
    click(app, "Cancel")
    assert Collection.exists("old", tmp_path)
    click(app, "Delete")
    click(app, "Yes, do it")
    assert not Collection.exists("old", tmp_path)
    assert any("'old' deleted" in s.value for s in app.success)


def test_other_models_are_chosen_by_name_never_typed(tmp_path, open_app, monkeypatch):
    """'Other' offers the server's embeddings endpoints (and fine-tuned models) by name: no field for an id or URL."""
    (tmp_path / "endpoints.toml").write_text('[embeddings.tei]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "bge-m3"\n')
    monkeypatch.setenv("MEDSEARCH_ENDPOINTS", str(tmp_path / "endpoints.toml"))
    app = upload(open_app(tmp_path, page=PAGE))
    app.selectbox(key="new-model").set_value("custom").run()
    assert not app.exception
    assert app.selectbox(key="new-spec").options == ["tei: bge-m3 (embeddings endpoint)"]
    assert any(visible(c.value).startswith("No time estimate: Embedding endpoint http://127.0.0.1:9/v1/embeddings is "
                                           "unreachable") for c in app.caption)
    assert not [box for box in app.text_input if box.key and "spec" in box.key]


def test_a_collection_busy_elsewhere_is_named_and_left_alone(tmp_path, open_app):
    """Another process is rebuilding 'old': Delete and Rebuild say so in the UI language and change nothing."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    Collection.create("old", [Document("a", "asthma inhaler technique")], BuildOptions(models=[]), home=tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom medsearch.locks import writing\n"
                               f"with writing('old', 'rebuild', {str(tmp_path)!r}):\n    print('held', flush=True)\n"
                               "    time.sleep(120)"], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        assert holder.stdout.readline().strip() == "held"
        app = open_app(tmp_path, "zh", page=PAGE)
        click(app, "删除")
        click(app, "确定")
        assert any("文档集“old”正忙：有人在" in e.value and "开始重建" in e.value for e in app.error)
        assert Collection.exists("old", tmp_path)
    finally:
        holder.kill()
        holder.wait()
    click(app, "删除")
    click(app, "确定")
    assert not Collection.exists("old", tmp_path)


def test_hostile_uploads_are_each_refused_in_one_line(tmp_path, open_app):
    """Nested JSON (once a RecursionError traceback), ragged CSV, numbers as JSON, one repeated byte: each file
    gets its own message in the UI language, and good files beside them still read."""
    app = open_app(tmp_path, "zh", PAGE)
    app.file_uploader[0].set_value([
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "application/json"),
        ("ragged.csv", b"title,text\nGout,Urate crystals.\nAsthma,Airways,narrow,extra\n", "text/csv"),
        ("numbers.json", b"[1, 2, 3]", "application/json"), ("noise.txt", b"\x01" * 5000, "text/plain"),
        ("qa.csv", CSV, "text/csv")]).run()
    assert not app.exception
    errors = [visible(e.value) for e in app.error]
    assert len(errors) == 4 and all(e.startswith("未添加：") and "\n" not in e for e in errors)
    assert [name for name in ("deep.json", "ragged.csv", "numbers.json", "noise.txt") if any(name in e for e in errors)] \
        == ["deep.json", "ragged.csv", "numbers.json", "noise.txt"]
    assert any("有 1 行的字段数与表头的 2 个不符（第 3 行）" in e for e in errors)  # ragged rows named, in Chinese
    assert "qa.csv：2 篇文档" in [visible(c.value) for c in app.caption]


def test_documents_are_deleted_by_id_after_a_check_and_a_confirmation(tmp_path, open_app):
    docs = [Document(f"d{i}", f"Passage {i} about asthma inhalers and spacers.") for i in range(5)]
    Collection.create("kb", docs, BuildOptions(models=[]), home=tmp_path)
    app = open_app(tmp_path, "zh", page=PAGE)
    app.text_area(key="ids-kb").input("d1\nd3\nnope\n").run()
    captions = [visible(c.value) for c in app.caption]
    assert "3 个编号中有 2 个在“kb”中。" in captions and "文档集中没有：nope" in captions
    click(app, "删除文档")
    assert len(Collection.open("kb", tmp_path).documents) == 5  # nothing before "yes"
    assert any("从“kb”删除 2 篇文档" in visible(w.value) for w in app.warning)
    click(app, "确定")
    assert set(Collection.open("kb", tmp_path).documents) == {"d0", "d2", "d4"}
    assert any("已从“kb”删除 2 篇文档；剩余 3 篇" in visible(s.value) for s in app.success)


def test_building_shows_an_estimate_and_vectors_move_without_encoding(tmp_path, open_app):
    Collection.create("kb", [Document("a", "Asthma inhalers and spacers for children.")], BuildOptions(models=["minilm"]),
                      home=tmp_path)
    app = upload(open_app(tmp_path, page=PAGE))
    app.selectbox(key="new-model").select("minilm").run()
    assert any(visible(c.value).startswith("Estimate 3 chunks: tokenizing ~") and "MiniLM" in visible(c.value)
               for c in app.caption)
    assert app.selectbox(key="new-store").options == ["FAISS, in the collection's folder"]  # no Milvus set up here
    app.selectbox(key="move-kb-index").select("hnsw").run()
    click(app, "Move vectors")
    click(app, "Yes, do it")
    moved = Collection.open("kb", tmp_path)
    assert moved.manifest["dense"][moved.default_model]["index"] == "hnsw"
    assert moved.search("spacer", 1, "dense")[0].doc_id == "a"
