"""The Learn page's lessons, run for real on a collection with judged queries (the demo).

Each function returns plain data for the page to show: ranked passages marked against the
relevance judgments, cosine similarities, a training triplet with its loss values, a grounded answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from medsearch.collection import Collection
from medsearch.compare import judged
from medsearch.encoders import Encoder, sentence_transformer
from medsearch.grounding import Answer, extractive_answer, grounded_prompt, passages_from_hits
from medsearch.limits import checked_query
from medsearch.records import MedSearchError, Passage
from medsearch.rerank import Reranker
from medsearch.text import Tokenizer
from medsearch.training import LOSSES, TrainConfig, make_loss

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

RAG_QUESTION = "孕妇能吃头孢吗？"
SPARSE_QUERY = "吃完饭胸口火辣辣的，还总往上冒酸水"
DENSE_QUERY = "血压升高应该怎么办？"
CONCEPT = "高血压"
ANCHOR, NEIGHBOURS = "血压升高", ("高血压", "低血压", "血糖升高", "hypertension")
TRIPLET_QUERY = "q02"


@dataclass
class Ranked:
    """A retrieved passage, `relevant` by the judgments; `meaning_only` if it says the concept, not the query's words."""

    passage: Passage
    relevant: bool
    meaning_only: bool = False


@dataclass
class Triplet:
    """A training example: a query, a passage that answers it and a hard negative that only looks like it does."""

    query: str
    positive: str
    negative: str
    positive_id: str
    negative_id: str

    def seed(self) -> dict[str, str]:
        """The triplet in the fine-tuning seed format."""
        return {"query": self.query, "positive": self.positive, "negative": self.negative}


@dataclass
class TripletScores:
    """Cosine of the query to the positive and to the negative, and each loss's value on the triplet."""

    cos_positive: float
    cos_negative: float
    losses: dict[str, float]


@dataclass
class GroundedDemo:
    """A question's numbered passages, the prompt a language model would get, and the offline answer."""

    passages: list[Passage]
    prompt: list[dict[str, str]]
    answer: Answer


def top_passages(collection: Collection, query: str, k: int = 3, retriever: str = "auto") -> list[Passage]:
    """The top-k documents for a query (each with its best chunk), numbered from 1."""
    return passages_from_hits(collection, collection.search_documents([checked_query(query)], k, retriever)[0])


def relevant(collection: Collection, query: str) -> dict[str, int]:
    """{doc id: grade > 0} of the judged query with this text; {} if it is not judged."""
    return {doc: grade for doc, grade in judged(collection, query).items() if grade > 0}


def says_without_words(text: str, query: str, concept: str, tokenizer: Tokenizer) -> bool:
    """True if `text` says `concept` but misses some of the query's search words (BM25 cannot match it fully)."""
    return concept in text and not set(tokenizer(query)) <= set(tokenizer(text))


def ranked(collection: Collection, query: str, retriever: str, k: int = 5, concept: str | None = None) -> list[Ranked]:
    """Top-k passages of one retriever, marked as judged relevant and (with a concept) as meaning-only matches."""
    grades = relevant(collection, query)
    return [Ranked(p, p.doc_id in grades,
                   concept is not None and says_without_words(p.text, query, concept, collection.tokenizer))
            for p in top_passages(collection, query, k, retriever)]


def similarities(encoder: Encoder, anchor: str = ANCHOR, others: tuple[str, ...] = NEIGHBOURS) -> dict[str, float]:
    """Cosine similarity of `anchor` to each of `others`, all embedded as queries (a symmetric comparison)."""
    vectors = encoder.encode([anchor, *others], query=True)
    return {text: float(score) for text, score in zip(others, vectors[1:] @ vectors[0])}


def demo_triplet(collection: Collection, qid: str = TRIPLET_QUERY, depth: int = 20) -> Triplet:
    """A real triplet: the query, its best-graded relevant document, and BM25's top document that is not relevant."""
    query = collection.eval_set.queries.get(qid, "") if collection.eval_set else ""
    grades = relevant(collection, query)
    if not grades:
        raise MedSearchError(f"Collection '{collection.name}' has no judged query '{qid}' with a relevant document.")
    positive = max(grades, key=lambda doc: grades[doc])
    hits = collection.search_documents([query], depth, "bm25")[0]
    negative = next((h.doc_id for h in hits if h.doc_id not in grades), None)
    if negative is None:
        raise MedSearchError(f"BM25's top {depth} documents for '{qid}' are all relevant: no hard negative.")
    docs = collection.documents
    return Triplet(query, docs[positive].text, docs[negative].text, positive, negative)


def triplet_losses(encoder: Encoder, triplet: Triplet) -> TripletScores:
    """Embed the triplet and compute each training loss (default parameters) on it as a batch of one: the
    contrastive loss on its two pairs, (query, positive) labelled 1 and (query, negative) labelled 0."""
    q, p, n = (torch.from_numpy(encoder.encode([text], query=is_query))
               for text, is_query in ((triplet.query, True), (triplet.positive, False), (triplet.negative, False)))
    columns = {"infonce": ([q, p, n], None), "margin": ([q, p, n], None),
               "contrastive": ([torch.cat([q, q]), torch.cat([p, n])], torch.tensor([1.0, 0.0]))}
    losses = {name: float(make_loss(None, TrainConfig(loss=name)).compute_loss_from_embeddings(*columns[name]))
              for name in LOSSES}
    return TripletScores(float(q[0] @ p[0]), float(q[0] @ n[0]), losses)


@dataclass
class Interaction:
    """One passage scored three ways for the same query: one vector each (cosine), a vector per token (MaxSim:
    each query token's best match in the passage, averaged; `alignment` lists query token → passage token,
    similarity) and read together by a cross-encoder (`cross`, None without a reranker)."""

    passage: Passage
    cosine: float
    maxsim: float
    alignment: list[tuple[str, str, float]]
    cross: float | None


def token_vectors(model: SentenceTransformer, text: str, prompt: str = "") -> tuple[list[str], np.ndarray]:
    """The text's word pieces (special tokens, the prompt's and bare word-start marks left out) and their
    L2-normalised vectors from the model's transformer: what a ColBERT model keeps (before its projection)."""
    tokenizer = model.tokenizer
    ids = tokenizer(prompt + text, truncation=True, max_length=model.max_seq_length)["input_ids"]
    vectors = np.asarray(model.encode(prompt + text, output_value="token_embeddings", convert_to_numpy=True))
    skip = len(tokenizer(prompt)["input_ids"]) - 1 if prompt else 1  # the start token and the prompt's pieces
    pieces = tokenizer.convert_ids_to_tokens(ids)
    keep = [i for i, (piece, token) in enumerate(zip(pieces, ids)) if i >= skip
            and token not in tokenizer.all_special_ids and piece.strip("▁#")]
    chosen = vectors[keep]
    return [pieces[i].strip("▁#") for i in keep], chosen / np.linalg.norm(chosen, axis=1, keepdims=True)


def interactions(collection: Collection, query: str = DENSE_QUERY, k: int = 3,
                 reranker: Reranker | None = None) -> list[Interaction]:
    """The dense model's top-k documents for the query, each scored by single-vector cosine, by late interaction
    (MaxSim over the same model's token vectors) and, given one, by a cross-encoder."""
    encoder = sentence_transformer(collection.dense().encoder)
    if encoder is None:
        raise MedSearchError("The late-interaction lesson needs a local dense model (not an endpoint).")
    passages = top_passages(collection, query, k, "dense")
    texts = [p.text for p in passages]
    cosines = encoder.encode(texts, query=False) @ encoder.encode([query], query=True)[0]
    crosses = reranker.scores(query, texts) if reranker else [None] * len(texts)
    words, query_vectors = token_vectors(encoder.model, query, encoder.query_prefix)
    found = []
    for passage, cosine, cross in zip(passages, cosines, crosses):
        pieces, vectors = token_vectors(encoder.model, passage.text, encoder.passage_prefix)
        similarity = query_vectors @ vectors.T
        best = similarity.argmax(axis=1)
        alignment = [(word, pieces[j], float(similarity[i, j])) for i, (word, j) in enumerate(zip(words, best))]
        found.append(Interaction(passage, float(cosine), float(similarity.max(axis=1).mean()), alignment,
                                 None if cross is None else float(cross)))
    return found


def grounded_demo(collection: Collection, question: str, k: int = 3) -> GroundedDemo:
    """Top-k passages for a question, the grounded prompt over them, and the extractive answer."""
    passages = top_passages(collection, question, k)
    encoder = collection.dense().encoder if collection.default_model else None
    answer = extractive_answer(question, passages, encoder, collection.tokenizer)
    return GroundedDemo(passages, grounded_prompt(question, passages), answer)
