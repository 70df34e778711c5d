"""The Fine-tune page through AppTest: a real background run on mined triplets, followed to the end, then used."""

import json
import time
from html import unescape as visible

import numpy as np

from medsearch.collection import Collection
from medsearch.encoders import load_encoder
from medsearch.registry import model_path
from medsearch.store import Store
from medsearch.triplets import MiningOptions, mine, pairs_from_eval

PAGE = "views/finetune.py"


def wait_for(app, text: str, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.run()
        assert not app.exception
        if any(text in visible(m.value) for m in app.markdown):
            return
        time.sleep(2)
    raise AssertionError(f"'{text}' never appeared: {[m.value for m in app.markdown][:5]}")


def test_train_follow_and_use_a_static_dpr_model(restore_demo, open_app):
    """A static query encoder and passage encoder (DPR family) trained from scratch in the background."""
    demo_home = restore_demo
    demo = Collection.open("demo", demo_home)
    Store.of("demo", demo_home).import_triplets(mine(demo, pairs_from_eval(demo), MiningOptions(("bm25",))), "mined")
    app = open_app(demo_home, "en", PAGE)
    assert any("triplets in this collection's store" in c.value for c in app.caption)
    app.text_input[0].input("demo-static").run()
    family = next(s for s in app.selectbox if s.label == "Model family")
    assert family.options == ["one encoder for questions and passages", "two encoders: questions, passages (DPR)",
                              "reranker reading question and passage together (cross-encoder)",
                              "reranker matching token by token (ColBERT)"]
    family.select("dpr").run()
    next(b for b in app.button if b.label == "Start training").click().run()
    assert any("started in the background" in s.value for s in app.success)
    wait_for(app, "model 'demo-static' is ready")
    shown = {visible(m.label): m.value for m in app.metric}
    assert set(shown) == {"nDCG@10 · after", "MRR@10 · after", "Recall@10 · after"}
    assert app.get("plotly_chart")  # loss curve and per-query wins/losses
    assert app.dataframe[0].value["name"].tolist()[0] == "demo-static"
    next(b for b in app.button if visible(b.label) == "Use 'demo-static' in collection 'demo'").click().run()
    assert not app.exception
    assert any("is now a dense model of 'demo'" in visible(s.value) for s in app.success)
    assert any("judged queries" in i.value for i in app.info)
    used = Collection.open("demo", demo_home)
    assert len(used.models) == 2 and used.search("血压升高怎么办", 3, "dense", used.models[1])
    card = json.loads((model_path("demo-static", demo_home) / "card.json").read_text())
    assert card["config"]["family"] == "dpr"
    encoder = load_encoder(used.models[1], demo_home)
    assert not np.allclose(encoder.encode(["高血压"], query=True), encoder.encode(["高血压"], query=False))
