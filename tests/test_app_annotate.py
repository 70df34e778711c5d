"""The Annotate page through AppTest: pooled candidates, labels with undo, mining, import and export."""

from medsearch.store import Store
from medsearch.triplets import read_triplets, write_triplets

PAGE = "views/annotate.py"


def click(app, label, n=0):
    [b for b in app.button if b.label == label][n].click().run()
    assert not app.exception
    return app


def test_label_undo_and_totals(restore_demo, open_app):
    demo_home = restore_demo
    app = open_app(demo_home, "zh", PAGE)
    assert any("请先输入名字" in i.value for i in app.info)
    app.text_input(key="annotator").input("ann").run()
    app.text_input(key="annotate_query").input("血糖高吃什么好").run()
    positives = [b for b in app.button if b.label == "✓ 正例"]
    assert len(positives) == len([b for b in app.button if b.label == "✗ 负例"]) >= 5
    assert not any("得分" in m.value or "score" in m.value for m in app.markdown)  # no scores shown
    click(app, "✓ 正例", 0)
    click(app, "✗ 负例", 1)
    store = Store.of("demo", demo_home)
    labels = store.labels_for("血糖高吃什么好")
    assert sorted(labels.values()) == ["negative", "positive"]
    assert any("建议的难负例" in c.value for c in app.caption)
    assert app.get("progress")[0].proto.text.startswith("本查询：已标注 2 /")
    click(app, "撤销我的上一条标注")
    assert list(store.labels_for("血糖高吃什么好").values()) == ["positive"]
    assert store.annotator_totals()["ann"] == 1
    tables = [d.value.values.tolist() for d in app.dataframe]
    assert ["ann", 1] in tables[1]  # labels per annotator, beside
    kept = next(doc for doc, label in store.labels_for("血糖高吃什么好").items() if label == "positive")
    assert [row[1:] for row in tables[0]] == [["血糖高吃什么好", kept, "positive"]]  # "my latest labels"


def test_query_list_gives_the_next_unlabeled_query(restore_demo, open_app):
    demo_home = restore_demo
    app = open_app(demo_home, "en", PAGE)
    app.text_input(key="annotator").input("bob").run()
    Store.of("demo", demo_home).label("What is gout?", "d001", "x", "skip", "bob")
    app.file_uploader(key="annotate_list").set_value(("queries.txt", "What is gout?\nHbA1c\n".encode(), "text/plain")).run()
    assert any("1 of 2 queries labeled" in c.value for c in app.caption)
    click(app, "Next unlabeled query from the list")
    assert app.text_input(key="annotate_query").value == "HbA1c"


def test_mine_import_and_export(restore_demo, open_app):
    demo_home = restore_demo
    app = open_app(demo_home, "en", PAGE)
    store = Store.of("demo", demo_home)
    before = len(store.rows("triplets", -1))
    app.multiselect[0].set_value(["bm25"]).run()
    click(app, "Mine and save")
    mined = len(store.rows("triplets", -1)) - before
    assert mined >= 30 and any(f"Saved {mined} new mined triplets from 40 pairs" in s.value for s in app.success)
    seed = [{"query": "What is gout?", "positive": "Gout is urate arthritis.", "negative": "Asthma is an airway disease."}]
    app.file_uploader(key="triplets_file").set_value(("seed.jsonl", write_triplets(seed), "application/json")).run()
    click(app, "Import")
    assert any("Imported 1 triplets (0 were saved already)" in s.value for s in app.success)
    click(app, "Import")  # the same file again adds nothing twice
    assert any("Imported 0 triplets (1 were saved already)" in s.value for s in app.success)
    assert [b.proto.label for b in app.get("download_button")] == ["JSONL", "CSV"]
    exported = read_triplets(write_triplets(store.training_triplets()), "t.jsonl")
    assert seed[0] in exported
