"""MedSearch web app: `streamlit run app.py`. Pages live in pages/; the work is done by `medsearch`."""

import streamlit as st

from medsearch.i18n import Texts
from pages.common import language_switch, texts

TEXTS = Texts({
    "search": ("Search", "检索"), "compare": ("Compare BM25 vs dense", "BM25 与稠密检索对比"),
    "answers": ("Answers", "回答"), "corpus": ("Corpus", "语料"), "annotate": ("Annotate", "标注"),
    "finetune": ("Fine-tune", "微调"), "learn": ("Learn", "入门讲解"),
    "find": ("Find", "查找"), "data": ("Data", "数据"), "about": ("Understand", "了解原理"),
    "note": ("MedSearch supports and does not replace clinical judgement.",
             "MedSearch 辅助而不取代临床判断。"),
})

st.set_page_config(page_title="MedSearch", page_icon="🩺", layout="wide")
language_switch()
t = texts(TEXTS)
pages = {
    t("find"): [st.Page("pages/search.py", title=t("search"), icon=":material/search:", default=True),
                st.Page("pages/compare.py", title=t("compare"), icon=":material/compare_arrows:"),
                st.Page("pages/answers.py", title=t("answers"), icon=":material/forum:")],
    t("data"): [st.Page("pages/corpus.py", title=t("corpus"), icon=":material/library_books:"),
                st.Page("pages/annotate.py", title=t("annotate"), icon=":material/label:"),
                st.Page("pages/finetune.py", title=t("finetune"), icon=":material/model_training:")],
    t("about"): [st.Page("pages/learn.py", title=t("learn"), icon=":material/school:")],
}
st.sidebar.caption(t("note"))
st.navigation(pages).run()
