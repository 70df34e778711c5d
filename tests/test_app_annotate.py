"""The Annotate page through AppTest: pooled candidates, labels with undo, mining, import and export."""

from medsearch.collection import Collection
from medsearch.compare import judged
from medsearch.store import Store
from medsearch.triplets import candidates, read_triplets, write_triplets

PAGE = "views/annotate.py"


def click(app, label, n=0):
    [b for b in app.button if b.label == label][n].click().run()  # as its keyboard shortcut does
    assert not app.exception
    return app


def caption_texts(app) -> list[str]:
    return [c.value for c in app.caption]


def card_position(app) -> str:
    return next(c for c in caption_texts(app) if c.startswith("第 ") or c.startswith("Candidate "))


def card_title(app) -> str:
    """The focused candidate's title (the card's bold line, made inert)."""
    from html import unescape

    return unescape(next(m.value for m in app.markdown if m.value.startswith("**")).strip("*"))


def labeling_area(app) -> list[str]:
    """The kinds of element from the top of the page down to the line under the label buttons, in order."""
    def walk(node):
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    kinds, seen_keys = [], False
    for element in walk(app.main):
        kinds.append(type(element).__name__)
        if seen_keys:
            return kinds  # the line under the keys (what was just saved or undone)
        seen_keys = str(getattr(element, "value", "")).startswith("Keys: ")
    raise AssertionError("no keys line under the label buttons")


def test_one_focused_candidate_labels_advance_and_undo(restore_demo, open_app):
    demo_home = restore_demo
    app = open_app(demo_home, "zh", PAGE)
    assert any("请先输入名字" in i.value for i in app.info)
    app.text_input(key="annotator").input("ann").run()
    app.text_input(key="annotate_query").input("血糖高吃什么好").run()
    shown = candidates(Collection.open("demo", demo_home), "血糖高吃什么好")
    total = len(shown)
    assert [b.label for b in app.button][:6] == ["✓ 正例", "✗ 负例", "跳过", "← 上一个", "下一个 →", "↶ 撤销我的上一条标注"]
    assert {b.label: b.proto.shortcut for b in app.button if b.proto.shortcut} == {
        "✓ 正例": "1", "✗ 负例": "2", "跳过": "3", "← 上一个": "p", "下一个 →": "n", "↶ 撤销我的上一条标注": "u"}
    assert any(c.startswith("快捷键：1 正例 · 2 负例 · 3 跳过") for c in caption_texts(app))  # keys on screen
    assert card_position(app) == f"第 1 / {total} 个候选" and card_title(app) == shown[0].title
    assert not any("得分" in m.value or "score" in m.value for m in app.markdown)  # no scores shown
    click(app, "✓ 正例")
    assert card_position(app) == f"第 2 / {total} 个候选"  # auto-advance to the next unlabeled candidate
    assert f"“{shown[0].title}”已标注：✓ 正例" in caption_texts(app)  # says what the key did
    assert all(b.proto.type == "secondary" for b in app.button)  # the new candidate has no label yet
    click(app, "✗ 负例")
    store = Store.of("demo", demo_home)
    assert store.labels_for("血糖高吃什么好") == {shown[0].doc_id: "positive", shown[1].doc_id: "negative"}
    assert app.get("progress")[0].proto.text == f"本查询：已标注 2 / {total} 个候选"
    click(app, "← 上一个")
    click(app, "← 上一个")
    assert card_position(app) == f"第 1 / {total} 个候选"
    chosen = [b.label for b in app.button if b.proto.type == "primary"]
    assert chosen == ["✓ 正例"]  # the chosen label is highlighted
    click(app, "下一个 →")
    assert [b.label for b in app.button if b.proto.type == "primary"] == ["✗ 负例"]
    click(app, "下一个 →")
    click(app, "↶ 撤销我的上一条标注")
    assert f"已撤销：“{shown[1].title}”的“✗ 负例”。" in caption_texts(app)  # named by title, not id
    assert card_position(app) == f"第 2 / {total} 个候选"  # and back in focus to label again
    assert list(store.labels_for("血糖高吃什么好").values()) == ["positive"]
    assert store.annotator_totals()["ann"] == 1
    tables = [d.value.values.tolist() for d in app.dataframe]
    assert ["ann", 1] in tables[1]  # labels per annotator, beside
    assert [row[1:] for row in tables[0]] == [["血糖高吃什么好", shown[0].doc_id, "✓ 正例"]]  # "my latest labels", in Chinese


def test_every_candidate_by_keys_and_suggestions_skip_judged_relevant(restore_demo, open_app):
    """Label a judged query's whole pool with the three label buttons: the same elements every time; hard-negative
    suggestions never name a document the judgements mark relevant; the last label says the query is done."""
    demo_home = restore_demo
    demo = Collection.open("demo", demo_home)
    query = "孕妇能吃头孢吗？"
    relevant = {d for d, g in judged(demo, query).items() if g > 0}
    shown = candidates(demo, query)
    app = open_app(demo_home, "en", PAGE)
    app.text_input(key="annotator").input("ann").run()
    app.text_input(key="annotate_query").input(query).run()
    layout = None
    for n, candidate in enumerate(shown):
        assert card_title(app) == candidate.title
        hint = next(c for c in caption_texts(app) if c.startswith(":") or c == "&nbsp;")
        if "Suggested hard negative" in hint:
            assert candidate.doc_id not in relevant
        shape = labeling_area(app)
        assert layout in (None, shape)  # no element comes or goes between candidates
        layout = shape
        click(app, "✓ Positive" if candidate.doc_id in relevant else "✗ Negative" if n % 2 else "Skip")
    assert any("Every candidate of this query is labeled" in c for c in caption_texts(app))
    assert app.get("progress")[0].proto.text == f"This query: {len(shown)} of {len(shown)} candidates labeled"


def test_query_list_gives_the_next_unlabeled_query(restore_demo, open_app):
    demo_home = restore_demo
    app = open_app(demo_home, "en", PAGE)
    app.text_input(key="annotator").input("bob").run()
    Store.of("demo", demo_home).label("What is gout?", "d001", "x", "skip", "bob")
    app.file_uploader(key="annotate_list").set_value(("queries.txt", b"What is gout?\nHbA1c\n", "text/plain")).run()
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
