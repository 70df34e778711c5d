"""Search page: one box, a collection picker, a retriever choice, result cards."""

import time

import streamlit as st

from medsearch.collection import Collection, list_collections
from medsearch.demo import DEMO_NAME, ensure_demo
from medsearch.highlight import highlight
from medsearch.progress import Eta
from medsearch.records import MedSearchError

EXAMPLES = ["孕妇能吃头孢吗？", "血压升高应该怎么办？", "How do I recognize a stroke?", "my child has a fever what should I do"]
RETRIEVERS = {"auto": "Auto (recommended)", "bm25": "BM25 (keywords)", "dense": "Dense (meaning)",
              "hybrid": "Hybrid (RRF)"}


@st.cache_resource(show_spinner=False)
def open_collection(name: str, created: str) -> Collection:
    """One Collection (with its loaded indexes and models) per process and build."""
    return Collection.open(name)


def first_start() -> None:
    """Build the demo collection with a progress bar when the home folder is empty."""
    bar = st.progress(0.0, text="Building the demo collection (first start only)…")
    eta = Eta()
    ensure_demo(progress=lambda stage, done, total: bar.progress(done / max(total, 1), text=eta(stage, done, total)))
    bar.empty()


st.title("MedSearch")
if not list_collections():
    first_start()
collections = {c.name: c.manifest["created"] for c in list_collections()}
names = sorted(collections, key=lambda n: (n != DEMO_NAME, n))
left, right = st.columns([3, 1])
name = right.selectbox("Collection", names)
kind = right.radio("Retriever", list(RETRIEVERS), format_func=RETRIEVERS.get)
k = right.slider("Results", 3, 30, 10)
collection = open_collection(name, collections[name])

example = left.pills("Examples", EXAMPLES, label_visibility="collapsed")
query = left.text_input("Search medical text · 搜索医学文本", value=example or "", placeholder="孕妇能吃头孢吗？")
if query.strip():
    try:
        start = time.perf_counter()
        hits = collection.search(query, k, kind)
        elapsed = (time.perf_counter() - start) * 1000
    except MedSearchError as exc:
        left.error(str(exc))
        st.stop()
    if kind == "auto":
        plan = collection.retriever("auto").plan(query)
        left.caption(f"Pipeline: **{plan.label()}** — {plan.reason}")
        left.caption(f"Dense model: **{collection.default_model or 'none'}** — "
                     f"{collection.manifest.get('default_model_reason', '')}")
    left.caption(f"{len(hits)} results in {elapsed:.0f} ms")
    for hit in hits:
        chunk = collection.chunks[hit.chunk_id]
        doc = collection.documents[hit.doc_id]
        with left.container(border=True):
            st.markdown(f"**{hit.rank}. {chunk.title or doc.title or doc.id}**  ·  score {hit.score:.3f}")
            meta = " · ".join(str(v) for key, v in doc.metadata.items() if key in ("department", "year", "source", "topic"))
            st.caption(meta or doc.source)
            st.markdown(highlight(chunk.text, query, collection.tokenizer), unsafe_allow_html=True)
            with st.expander("Whole document"):
                st.text(doc.text)
