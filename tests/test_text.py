import pytest

from medsearch.chunking import chunk_documents, chunk_text, split_sentences
from medsearch.records import Document, MedSearchError
from medsearch.text import Tokenizer, detect_lang, language_mix


def test_tokenizer_mixes_jieba_and_english_stemming():
    tokens = Tokenizer()("孕妇能吃头孢吗？Pregnant women taking cephalosporins")
    assert "孕妇" in tokens and "头孢" in tokens
    assert "pregnant" in tokens and "cephalosporin" in tokens  # stemmed plural
    assert "吗" not in tokens and "能" not in tokens  # Chinese function words dropped


def test_search_mode_segmentation_links_synonyms():
    tok = Tokenizer()
    assert "血压" in tok("高血压") and "血压" in tok("血压升高")


def test_detect_lang():
    assert detect_lang("孕妇能吃头孢吗？") == "zh"
    assert detect_lang("Can pregnant women take cephalosporins?") == "en"
    assert detect_lang("孕妇能用 amoxicillin and cefuroxime 吗") == "mixed"
    assert language_mix(["高血压", "asthma"]) == {"zh": 0.5, "en": 0.5, "mixed": 0.0}


def test_split_sentences_chinese_and_english():
    text = "高血压很常见。需要服药吗？他说：“需要。”Asthma is chronic. Use the inhaler!\nNext line"
    assert split_sentences(text) == ["高血压很常见。", "需要服药吗？", "他说：“需要。”", "Asthma is chronic.",
                                     "Use the inhaler!", "Next line"]


def test_chunks_respect_size_and_overlap():
    text = "".join(f"第{i}句话讲的是高血压的治疗原则。" for i in range(40))
    chunks = chunk_text(text, size=100, overlap=30)
    assert len(chunks) > 5
    assert all(len(c) <= 100 for c in chunks)
    for first, second in zip(chunks, chunks[1:]):
        last_sentence = split_sentences(first)[-1]
        assert second.startswith(last_sentence)  # one sentence (17 chars) of overlap
    assert all(c.endswith("。") for c in chunks)  # never cut inside a sentence


def test_long_sentence_is_cut_and_doc_ids_kept():
    chunks = chunk_documents([Document("d1", "x" * 250, "T", metadata={"dept": "a"})], size=100, overlap=0)
    assert [c.id for c in chunks] == ["d1#0", "d1#1", "d1#2"]
    assert all(c.doc_id == "d1" and c.title == "T" and c.metadata == {"dept": "a"} for c in chunks)


def test_bad_chunk_options():
    with pytest.raises(MedSearchError):
        chunk_text("text", size=100, overlap=100)
