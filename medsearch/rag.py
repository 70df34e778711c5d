"""Grounded answers end to end: retrieve, generate (streamed), check citations, log to the collection's store.

    run = Asking(collection, "孕妇能吃头孢吗？", make_generator(None))
    for piece in run.pieces():      # stream to a terminal or st.write_stream
        ...
    answer = run.result()           # citations checked against the passages, logged, timed
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from medsearch.collection import Collection
from medsearch.generators import ExtractiveGenerator, Generator, make_generator
from medsearch.grounding import NOT_FOUND, answer_lang, parse_citations, passages_from_hits
from medsearch.limits import checked_query
from medsearch.records import MedSearchError, Passage
from medsearch.relevance import abstains
from medsearch.store import Store


def generator_for(collection: Collection, spec: str | None = None, **options: object) -> Generator:
    """The generator `spec` names (default: `$MEDSEARCH_LLM`, else extractive).

    The extractive default ranks sentences with the collection's own dense model and tokenizer.
    """
    spec = os.environ.get("MEDSEARCH_LLM", "") if spec is None else spec
    if spec.strip().lower() in ("", "extractive"):
        encoder = collection.dense().encoder if collection.default_model else None
        return ExtractiveGenerator(encoder, collection.tokenizer)
    return make_generator(spec, **options)


@dataclass
class GroundedAnswer:
    """An answer with the numbered passages it may cite, what it did cite, and how long each step took."""

    question: str
    text: str
    passages: list[Passage]
    citations: list[int]
    unknown_citations: list[int]
    generator: str
    extractive: bool
    retrieval_ms: float
    generation_ms: float
    error: str = ""
    abstained: bool = False
    log_id: int | None = field(default=None, compare=False)


class Asking:
    """One question put to a collection: passages are retrieved at once, the answer streams from `pieces()`.

    When every retrieved passage is of low relevance (`relevance.abstains`), the answer is "not found in
    the sources" in the question's language and the generator is not called (`abstained`).
    A question longer than `limits.MAX_QUERY_CHARS` is refused (`QueryTooLong`) before any retrieval."""

    def __init__(self, collection: Collection, question: str, generator: Generator, k: int = 5,
                 store: Store | None = None, user: str = "") -> None:
        if not question.strip():
            raise MedSearchError("The question is empty.")
        self.collection, self.question, self.generator = collection, checked_query(question.strip()), generator
        self.store, self.user = store or Store.of(collection.name, collection.folder.parent), user
        start = time.perf_counter()
        hits = collection.search_documents([self.question], k, "auto")[0]
        judged = collection.judged(self.question, hits)
        self.retrieval_ms = (time.perf_counter() - start) * 1000
        self.passages = passages_from_hits(collection, hits, [j.level for j in judged])
        self.abstained = abstains(judged)
        self.text, self.error, self.generation_ms = "", "", 0.0

    def pieces(self) -> Iterator[str]:
        """The answer as it is generated; a generator failure is recorded, then raised."""
        start = time.perf_counter()
        try:
            said = [NOT_FOUND[answer_lang(self.question)]] if self.abstained else None
            for piece in said or self.generator.respond(self.question, self.passages):
                self.text += piece
                yield piece
        except MedSearchError as exc:
            self.error = str(exc)
            raise
        finally:
            self.generation_ms = (time.perf_counter() - start) * 1000

    def result(self) -> GroundedAnswer:
        """The finished answer, its citations checked against the passages, logged to the store."""
        cited = parse_citations(self.text)
        valid = [n for n in cited if 1 <= n <= len(self.passages)]
        answer = GroundedAnswer(self.question, self.text, self.passages, valid, [n for n in cited if n not in valid],
                                self.generator.name, self.generator.extractive, self.retrieval_ms,
                                self.generation_ms, self.error, self.abstained)
        answer.log_id = self.store.log_answer(
            answer.question, answer.text, answer.generator, answer.extractive, answer.citations,
            [asdict(p) for p in answer.passages], answer.retrieval_ms, answer.generation_ms, answer.error, self.user)
        return answer


def ask(collection: Collection, question: str, generator: Generator, k: int = 5, user: str = "") -> GroundedAnswer:
    """Answer a question in one call (no streaming); `user` is logged with it."""
    run = Asking(collection, question, generator, k, user=user)
    for _ in run.pieces():
        pass
    return run.result()
