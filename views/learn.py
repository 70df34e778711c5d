"""Learn page: MedSearch's ideas, each run for real on the demo collection at the press of a button."""

import json
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from medsearch.collection import Collection
from medsearch.demo import DEMO_NAME, ensure_demo
from medsearch.grounding import answer_markdown
from medsearch.i18n import Texts
from medsearch.lessons import (
    ANCHOR,
    CONCEPT,
    DENSE_QUERY,
    RAG_QUESTION,
    SPARSE_QUERY,
    TRIPLET_QUERY,
    Ranked,
    demo_triplet,
    grounded_demo,
    interactions,
    ranked,
    similarities,
    top_passages,
    triplet_losses,
)
from medsearch.limits import MAX_QUERY_CHARS
from medsearch.records import MedSearchError
from views.common import collections, failure, open_collection, passage_card, pick_reranker, progress_bar, texts

TEXTS = Texts({
    "title": ("Learn: how MedSearch finds and grounds answers", "入门讲解：MedSearch 如何检索、如何给出有据可查的回答"),
    "intro": ("Each idea below runs live on the built-in demo collection (216 Chinese and English passages, "
              "40 queries judged by hand). Press a button to see it happen.",
              "下面每个概念都在内置的演示文档集（216 段中英文文本、40 条人工标注的查询）上实时运行。点击按钮即可看到结果。"),
    "building": ("Building the demo collection…", "正在构建演示文档集…"),
    "running": ("Running…", "正在运行…"),
    "relevant": ("✓ judged relevant", "✓ 标注为相关"),
    "not_relevant": ("✗ not judged relevant", "✗ 未标注为相关"),
    "s1": ("1. A retriever finds, a language model writes", "1. 检索器负责查找，语言模型负责写作"),
    "s1_text": ("A **retriever** ranks passages that already exist in a collection and says where each one comes "
                "from, so every sentence can be checked against its source. A **language model** (such as ChatGPT) "
                "writes new text word by word: fluent, but it can be wrong and does not say where a fact came from. "
                "MedSearch is a retriever; when it answers, it only quotes what it retrieved (section 5).",
                "**检索器**在文档集中已有的段落里排序，并给出每段的出处，因此每句话都能对照来源核实。"
                "**语言模型**（如 ChatGPT）逐字生成新文本：行文流畅，但可能出错，也不会说明事实从何而来。"
                "MedSearch 是检索器；它回答问题时只引用检索到的内容（见第 5 节）。"),
    "s1_button": ("Find the top 3 passages for “{query}”", "查找“{query}”的前 3 个段落"),
    "s2": ("2. Sparse vs dense retrieval", "2. 稀疏检索与稠密检索"),
    "s2_text": ("**Sparse** retrievers (BM25, TF-IDF) cut the query into words and score the passages containing "
                "them, rare words weighing more: fast and exact, but blind to synonyms. **Dense** retrievers turn the "
                "query and every passage into a vector (an embedding) and rank by cosine similarity, so they match "
                "meaning. Sentence-BERT bi-encoders embed query and passage separately; DPR trains two encoders "
                "(a dual encoder) on questions and their answers; ColBERT keeps one vector per token and matches "
                "them late (late interaction); BGE and E5 are multilingual embedders trained contrastively on "
                "millions of text pairs. This collection's dense model is **{model}**.",
                "**稀疏**检索（BM25、TF-IDF）把查询切成词，为包含这些词的段落打分，越罕见的词权重越高：快速、精确，"
                "但不认识同义词。**稠密**检索把查询和每个段落都变成向量（嵌入），按余弦相似度排序，因此匹配的是语义。"
                "Sentence-BERT 双塔编码器分别编码查询和段落；DPR 用问题及其答案训练两个编码器（双编码器）；"
                "ColBERT 为每个词保留一个向量，最后再逐词匹配（后期交互）；BGE 和 E5 是在数以百万计的文本对上"
                "用对比学习训练的多语言嵌入模型。本文档集的稠密模型是 **{model}**。"),
    "query": ("Query", "查询"),
    "tokens": ("Search tokens of the query (what BM25 and TF-IDF look for): {tokens}",
               "查询的检索词（BM25 和 TF-IDF 要找的词）：{tokens}"),
    "s2_button": ("Compare BM25, TF-IDF and dense", "对比 BM25、TF-IDF 与稠密检索"),
    "bm25": ("BM25", "BM25"), "tfidf": ("TF-IDF", "TF-IDF"), "dense": ("Dense ({model})", "稠密（{model}）"),
    "s3": ("3. Why dense retrieval helps in medicine", "3. 为什么医学检索需要稠密检索"),
    "s3_text": ("Patients and doctors say the same thing in different words: 血压升高 (raised blood pressure) and "
                "高血压 (hypertension), 心梗 and 心肌梗死, “heart attack” and “myocardial infarction”. BM25 only "
                "counts shared words; a dense model has learnt from text pairs that such phrases mean the same.",
                "患者和医生常用不同的词说同一件事：“血压升高”与“高血压”、“心梗”与“心肌梗死”、"
                "“heart attack”与“myocardial infarction”。BM25 只统计共同的词；稠密模型则从大量文本对中学到"
                "这些说法意思相同。"),
    "s3_button": ("Run BM25 and dense on “{query}”", "用 BM25 和稠密检索运行“{query}”"),
    "meaning_only": (":material/lightbulb: says {concept} without all of the query's words",
                     ":material/lightbulb: 提到“{concept}”，但不含查询的全部词语"),
    "found": ("Judged relevant in the top {k}: {n}", "前 {k} 条中标注为相关：{n} 条"),
    "similar": ("Cosine similarity to “{anchor}” from the dense model (all embedded as queries). E5 scores "
                "crowd near the top of the scale: what matters is their order.",
                "稠密模型给出的与“{anchor}”的余弦相似度（均按查询编码）。E5 的分数都挤在高端，关键看它们的排序。"),
    "text": ("Text", "文本"), "cosine": ("Cosine", "余弦相似度"),
    "s4": ("4. Triplets and the three training losses", "4. 三元组与三种训练损失"),
    "s4_text": ("Fine-tuning teaches a dense model from examples. A **triplet** is a query, a **positive** passage "
                "that answers it, and a **hard negative**: a passage that looks relevant but does not answer. This "
                "one is real: judged query {qid}, its best-graded relevant document, and the document BM25 ranks "
                "highest although the judges did not mark it relevant.",
                "微调通过示例来训练稠密模型。**三元组**由查询、能回答它的**正例**段落和一个**难负例**组成："
                "难负例看起来相关，却回答不了问题。下面是真实的例子：已标注查询 {qid}、它评分最高的相关文档，"
                "以及 BM25 排名最高、却未被标注为相关的文档。"),
    "losses": ("- **InfoNCE** (multiple negatives ranking): the query must pick its positive out of every passage "
               "in the batch, the other queries' positives included; cross-entropy pulls the positive up among "
               "all the others.\n"
               "- **Margin** (triplet): the positive must beat the negative by a margin: "
               "max(0, margin − (cos(q, p) − cos(q, n))).\n"
               "- **Contrastive**: pull each (query, positive) pair together and push each (query, negative) pair "
               "apart until their cosine distance is beyond a margin.",
               "- **InfoNCE**（多负例排序）：查询要从批次里的所有段落（包括其他查询的正例）中挑出自己的正例；"
               "交叉熵把正例的得分拉到其他段落之上。\n"
               "- **Margin**（三元组间隔）：正例必须比负例至少高出一个间隔："
               "max(0, 间隔 − (cos(q, p) − cos(q, n)))。\n"
               "- **Contrastive**（对比损失）：把每个（查询，正例）对拉近，把每个（查询，负例）对推开，"
               "直到余弦距离超过间隔。"),
    "s4_button": ("Embed the triplet and compute the three losses", "编码三元组并计算三种损失"),
    "cos_p": ("cos(q, positive)", "cos(查询, 正例)"), "cos_n": ("cos(q, negative)", "cos(查询, 负例)"),
    "infonce": ("InfoNCE loss (scale 20)", "InfoNCE 损失（温度缩放 20）"),
    "margin": ("Margin loss (margin 0.2)", "Margin 损失（间隔 0.2）"),
    "contrastive": ("Contrastive loss (margin 0.5)", "Contrastive 损失（间隔 0.5）"),
    "gap": ("The positive beats the negative by only {gap:.3f} in cosine: the closer to zero, the more the model "
            "confuses the two, and the more this triplet has to teach it.",
            "正例的余弦相似度只比负例高 {gap:.3f}：越接近 0，说明模型越分不清两者，这个三元组能教给它的就越多。"),
    "li": ("5. One vector, a vector per word, or reading both together", "5. 一个向量、每个词一个向量，还是一起读"),
    "li_text": ("A **single-vector** model (Sentence-BERT, E5, BGE, DPR) squeezes the question and each passage into "
                "one vector each and compares them by cosine: fast, since passages are encoded once, ahead of time. "
                "**Late interaction** (ColBERT) keeps one vector per word piece: each word of the question looks "
                "for its best match in the passage, and the passage scores the average of those best matches "
                "(MaxSim), so a passage is rewarded for covering every part of the question. A **cross-encoder** "
                "reads question and passage together in one model: the most accurate, and the slowest, so it only "
                "reranks a first stage's top hits. Below, the dense model's top passages for “{query}”, scored all "
                "three ways; MaxSim uses the same model's word-piece vectors (a trained ColBERT adds a projection "
                "learnt on question/answer pairs).",
                "**单向量**模型（Sentence-BERT、E5、BGE、DPR）把问题和每个段落各压缩成一个向量，用余弦相似度比较："
                "段落可以提前编码，所以很快。**后期交互**（ColBERT）为每个词片保留一个向量：问题中的每个词都在段落里"
                "找最相近的词，段落的得分是这些最佳匹配的平均值（MaxSim），因此覆盖问题各个部分的段落得分更高。"
                "**交叉编码器**把问题和段落放进同一个模型一起读：最准确，也最慢，所以只用来重排第一阶段的前几条结果。"
                "下面是稠密模型对“{query}”找到的前几个段落，分别用三种方式打分；MaxSim 使用同一模型的词片向量"
                "（训练过的 ColBERT 还会加上一层在问答对上学到的投影）。"),
    "li_button": ("Score the top passages three ways", "用三种方式给前几个段落打分"),
    "li_cosine": ("Single vector: cosine", "单向量：余弦"),
    "li_maxsim": ("Late interaction: MaxSim", "后期交互：MaxSim"),
    "li_cross": ("Cross-encoder ({name})", "交叉编码器（{name}）"),
    "li_no_cross": ("This server has no reranker yet: train one on the Fine-tune page (cross-encoder or ColBERT) "
                    "to see the third score.",
                    "服务器上还没有重排序模型：可在微调页面训练一个（交叉编码器或后期交互模型），即可看到第三种分数。"),
    "li_align": ("Each word piece of the question and its best match in passage [{n}]",
                 "问题的每个词片及其在段落 [{n}] 中的最佳匹配"),
    "li_piece": ("Question piece", "问题词片"), "li_match": ("Best match in the passage", "段落中的最佳匹配"),
    "li_similarity": ("Similarity", "相似度"),
    "s5": ("6. How RAG grounds an answer", "6. RAG 如何让回答有据可查"),
    "s5_text": ("Retrieval-augmented generation (RAG) retrieves passages first, then answers only from them, citing "
                "each claim as [n]. The prompt fences every passage as data, so a document cannot give the model "
                "orders. Without a language model, MedSearch answers extractively: it quotes the sentences of the "
                "passages closest to the question.",
                "检索增强生成（RAG）先检索段落，再只根据这些段落回答，并用 [n] 标出每个论断的出处。"
                "提示词把每个段落都围起来作为数据，文档因此无法向模型下达指令。没有语言模型时，"
                "MedSearch 采用抽取式回答：直接引用段落中与问题最接近的句子。"),
    "question": ("Question", "问题"),
    "s5_button": ("Retrieve and answer", "检索并回答"),
    "prompt": ("The prompt a language model would get", "语言模型会收到的提示词"),
    "answer": ("Answer (extractive, no language model)", "回答（抽取式，未使用语言模型）"),
    "passages": ("Numbered passages", "编号段落"),
})
t = texts(TEXTS)
T = TypeVar("T")


def demo_collection() -> Collection:
    """The demo collection, built first if it was deleted."""
    found = collections()
    if DEMO_NAME not in found:
        update, clear = progress_bar(t("building"))
        ensure_demo(progress=update)
        clear()
        found = collections()
    return open_collection(DEMO_NAME, found[DEMO_NAME])


def pressed(label: str, key: str, run: Callable[[], T]) -> T | None:
    """A button whose result (run on press) stays in the session until the next press."""
    if st.button(label, key=key):
        with st.spinner(t("running")):
            try:
                st.session_state[f"{key}-result"] = run()
            except MedSearchError as exc:
                st.error(failure(exc))
    return st.session_state.get(f"{key}-result")


def ranked_column(rows: list[Ranked], show_relevance: bool) -> None:
    for row in rows:
        marks = ((t("relevant") if row.relevant else t("not_relevant")),) if show_relevance else ()
        marks += (t("meaning_only", concept=CONCEPT),) if row.meaning_only else ()
        passage_card(row.passage, marks=marks)


def retriever_vs_model(collection: Collection) -> None:
    st.subheader(t("s1"))
    st.markdown(t("s1_text"))
    found = pressed(t("s1_button", query=RAG_QUESTION), "learn-s1", lambda: top_passages(collection, RAG_QUESTION))
    for passage in found or []:
        passage_card(passage)


def sparse_vs_dense(collection: Collection) -> None:
    st.subheader(t("s2"))
    st.markdown(t("s2_text", model=collection.default_model))
    query = st.text_input(t("query"), SPARSE_QUERY, key="learn-s2-query", max_chars=MAX_QUERY_CHARS)
    st.caption(t("tokens", tokens=" · ".join(collection.tokenizer(query)) or "-"))
    kinds = ("bm25", "tfidf", "dense")
    found = pressed(t("s2_button"), "learn-s2", lambda: {kind: ranked(collection, query, kind, 3) for kind in kinds})
    if found:
        judged = any(row.relevant for rows in found.values() for row in rows)
        for column, kind in zip(st.columns(3), kinds):
            with column:
                st.markdown(f"**{t(kind, model=collection.default_model)}**")
                ranked_column(found[kind], show_relevance=judged)


def dense_in_medicine(collection: Collection) -> None:
    st.subheader(t("s3"))
    st.markdown(t("s3_text"))
    found = pressed(t("s3_button", query=DENSE_QUERY), "learn-s3",
                    lambda: ({kind: ranked(collection, DENSE_QUERY, kind, 5, CONCEPT) for kind in ("bm25", "dense")},
                             similarities(collection.retriever("dense").encoder)))
    if found:
        rows, cosines = found
        for column, kind in zip(st.columns(2), rows):
            with column:
                st.markdown(f"**{t(kind, model=collection.default_model)}**")
                st.caption(t("found", k=len(rows[kind]), n=sum(r.relevant for r in rows[kind])))
                ranked_column(rows[kind], show_relevance=True)
        st.caption(t("similar", anchor=ANCHOR))
        st.table({t("text"): list(cosines), t("cosine"): [f"{c:.3f}" for c in cosines.values()]})


def triplets_and_losses(collection: Collection) -> None:
    st.subheader(t("s4"))
    triplet = demo_triplet(collection)
    st.markdown(t("s4_text", qid=TRIPLET_QUERY))
    st.code(json.dumps(triplet.seed(), ensure_ascii=False, indent=2), language="json", wrap_lines=True)
    st.markdown(t("losses"))
    scores = pressed(t("s4_button"), "learn-s4", lambda: triplet_losses(collection.retriever("dense").encoder, triplet))
    if scores:
        for row in ({"cos_p": scores.cos_positive, "cos_n": scores.cos_negative}, scores.losses):
            for column, (key, value) in zip(st.columns(3), row.items()):
                column.metric(t(key), f"{value:.4f}")
        st.caption(t("gap", gap=scores.cos_positive - scores.cos_negative))


def late_interaction(collection: Collection) -> None:
    st.subheader(t("li"))
    st.markdown(t("li_text", query=DENSE_QUERY))
    choice = pick_reranker("learn-li")
    if choice is None:
        st.caption(t("li_no_cross"))
    found = pressed(t("li_button"), "learn-li",
                    lambda: interactions(collection, DENSE_QUERY, 3, choice.reranker if choice else None))
    if not found:
        return
    for row in found:
        passage_card(row.passage)
        scores = {t.plain("li_cosine"): row.cosine, t.plain("li_maxsim"): row.maxsim}
        if row.cross is not None and choice:
            scores[t.plain("li_cross", name=choice.name)] = row.cross
        for column, (label, value) in zip(st.columns(3), scores.items()):
            column.metric(label, f"{value:.3f}")
    first = found[0]
    st.caption(t("li_align", n=first.passage.n))
    st.table({t.plain("li_piece"): [q for q, _, _ in first.alignment],
              t.plain("li_match"): [m for _, m, _ in first.alignment],
              t.plain("li_similarity"): [f"{v:.3f}" for *_, v in first.alignment]})


def grounded_answer(collection: Collection) -> None:
    st.subheader(t("s5"))
    st.markdown(t("s5_text"))
    question = st.text_input(t("question"), RAG_QUESTION, key="learn-s5-question", max_chars=MAX_QUERY_CHARS)
    demo = pressed(t("s5_button"), "learn-s5", lambda: grounded_demo(collection, question))
    if demo:
        with st.expander(t("prompt")):
            st.code("\n\n".join(f"[{m['role']}]\n{m['content']}" for m in demo.prompt), language=None, wrap_lines=True)
        st.markdown(f"**{t('answer')}**")
        st.markdown(answer_markdown(demo.answer.text))
        st.markdown(f"**{t('passages')}**")
        for passage in demo.passages:
            passage_card(passage, cited=True)


st.title(t("title"))
st.caption(t("intro"))
collection = demo_collection()
for section in (retriever_vs_model, sparse_vs_dense, dense_in_medicine, triplets_and_losses, late_interaction,
                grounded_answer):
    section(collection)
    st.divider()
