"""Model families: prompts from the model's own config (BGE, E5), the name prefix only without them, and dual
encoders (a query/document Router model, a `dpr:QUERY|PASSAGE` pair), all on tiny models built here."""

import json

import numpy as np
import pytest

from medsearch.collection import BuildOptions, Collection
from medsearch.dualencoders import dual_encoder_model, router_model
from medsearch.encoders import BGE_QUERY, canonical, load_encoder
from medsearch.modelref import ModelRef
from medsearch.records import Document, MedSearchError
from tests.tiny_models import tiny_sentence_transformer

WORDS = ["fever", "cough", "asthma", "inhaler", "insulin", "diabetes", "query", "passage", ":", *BGE_QUERY["en"].split(),
         *BGE_QUERY["zh"]]
TEXTS = ["asthma inhaler", "fever and cough", "insulin for diabetes"]


def plain(encoder, texts: list[str]) -> np.ndarray:
    """The encoder's model on texts exactly as given (no prompt), normalised as encoders return vectors."""
    vectors = encoder.model.encode(texts, prompt="", convert_to_numpy=True)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_bge_prompt_applies_to_queries_only(tmp_path, lang):
    """The model's own BGE instruction is its query prompt; the folder's name (BGE English) adds nothing more."""
    instruction = BGE_QUERY[lang]
    folder = tiny_sentence_transformer(tmp_path / "bge-small-en-v1.5", WORDS, {"query": instruction, "document": ""})
    encoder = load_encoder(str(folder))
    assert (encoder.query_prefix, encoder.passage_prefix) == (instruction, "")
    assert not np.allclose(encoder.encode(TEXTS, query=True), plain(encoder, TEXTS), atol=1e-3)
    np.testing.assert_allclose(encoder.encode(TEXTS, query=True), plain(encoder, [instruction + t for t in TEXTS]), atol=1e-6)
    np.testing.assert_allclose(encoder.encode(TEXTS, query=False), plain(encoder, TEXTS), atol=1e-6)


def test_name_prefix_only_for_a_model_without_prompts(tmp_path):
    """An e5 folder saved without prompts still gets E5's prefixes from its name, and gives the vectors a model
    carrying them as prompts gives."""
    bare = load_encoder(str(tiny_sentence_transformer(tmp_path / "e5-tiny", WORDS)))
    prompted = load_encoder(str(tiny_sentence_transformer(
        tmp_path / "tiny", WORDS, {"query": "query: ", "document": "passage: "})))
    for encoder in (bare, prompted):
        assert (encoder.query_prefix, encoder.passage_prefix) == ("query: ", "passage: ")
        for query, prefix in ((True, "query: "), (False, "passage: ")):
            np.testing.assert_allclose(encoder.encode(TEXTS, query=query), plain(bare, [prefix + t for t in TEXTS]), atol=1e-6)


def test_minilm_vectors_unchanged():
    encoder = load_encoder("minilm")
    assert (encoder.query_prefix, encoder.passage_prefix) == ("", "")
    np.testing.assert_allclose(encoder.encode(TEXTS, query=True), plain(encoder, TEXTS), atol=1e-6)


def test_router_model_routes_queries_and_passages(tmp_path):
    """A folder assembled from two models encodes each side through its own route, with its own prompt."""
    query_model = tiny_sentence_transformer(tmp_path / "q", WORDS, {"query": "fever "})
    passage_model = tiny_sentence_transformer(tmp_path / "p", WORDS, seed=1)
    folder = dual_encoder_model(str(query_model), str(passage_model), tmp_path / "dual")
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert config["prompts"] == {"query": "fever ", "document": ""}
    assert json.loads((folder / "router_config.json").read_text())["structure"].keys() == {"query", "document"}
    dual = load_encoder(str(folder))
    queries, passages = dual.encode(TEXTS, query=True), dual.encode(TEXTS, query=False)
    assert not np.allclose(queries, passages, atol=1e-3)
    np.testing.assert_allclose(queries, load_encoder(str(query_model)).encode(TEXTS, query=True), atol=1e-6)
    np.testing.assert_allclose(passages, load_encoder(str(passage_model)).encode(TEXTS, query=False), atol=1e-6)


def test_router_model_from_one_base(tmp_path):
    base = tiny_sentence_transformer(tmp_path / "base", WORDS)
    dual = load_encoder(str(router_model(str(base), tmp_path / "dual")))
    assert len(dual.model[0].sub_modules) == 2
    np.testing.assert_allclose(dual.encode(TEXTS, query=True), dual.encode(TEXTS, query=False), atol=1e-6)


def test_pair_spec_round_trips_and_searches(tmp_path):
    """A pair of models under the home is stored as home references, parses back, and a collection built
    with it finds the right document (both halves hold the same weights, so their vectors agree)."""
    models = tmp_path / ".models"
    query_model = tiny_sentence_transformer(models / "tiny-q", WORDS)
    passage_model = tiny_sentence_transformer(models / "tiny-p", WORDS)
    spec = canonical(f"dpr:{query_model}|{passage_model}")
    assert spec == "dpr:home:tiny-q|home:tiny-p"
    assert ModelRef.parse(spec).halves() == (ModelRef("home", "tiny-q"), ModelRef("home", "tiny-p"))
    assert canonical(spec) == spec
    docs = [Document(f"d{i}", text) for i, text in enumerate(TEXTS)]
    Collection.create("kb", docs, BuildOptions(models=[spec]), home=tmp_path)
    kb = Collection.open("kb", home=tmp_path)
    assert kb.models == [spec]
    assert kb.dense(spec).search("fever and cough", 1)[0].doc_id == "d1"


def test_pair_of_different_sizes_is_one_line_error(tmp_path):
    small = tiny_sentence_transformer(tmp_path / "small", WORDS, hidden=16)
    wide = tiny_sentence_transformer(tmp_path / "wide", WORDS)
    for build in (lambda: load_encoder(f"dpr:{wide}|{small}"),
                  lambda: dual_encoder_model(str(wide), str(small), tmp_path / "dual")):
        with pytest.raises(MedSearchError, match="same size") as error:
            build()
        assert "\n" not in str(error.value)
    assert not (tmp_path / "dual").exists()


@pytest.mark.parametrize("spec", ["dpr:", "dpr:only-one", "dpr:a|", "dpr:a|b|c"])
def test_malformed_pair_spec(spec):
    with pytest.raises(MedSearchError, match=r"dpr:QUERY_MODEL\|PASSAGE_MODEL"):
        ModelRef.parse(spec)
