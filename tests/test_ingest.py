"""Tests for medsearch.ingest: every format, encodings, broken files, read_many."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from medsearch.ingest import (
    IngestOptions,
    RaggedRows,
    detect_format,
    read_documents,
    read_many,
    save_upload,
    table_columns,
)
from medsearch.ingest.encoding import read_text
from medsearch.limits import TooManyRows
from medsearch.records import MedSearchError

ZH = "高血压患者能吃党参吗？\n党参有降血脂、降血压的作用，糖尿病患者也可适量食用。"


def make_pdf(pages, title=None):
    """A minimal valid PDF with one Helvetica text line per page."""
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", None,
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({esc}) Tj ET"
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                    f"/Resources << /Font << /F1 3 0 R >> >> /Contents {len(objs)} 0 R >>")
        kids.append(f"{len(objs)} 0 R")
    objs[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    if title:
        objs.append(f"<< /Title ({title}) >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    info = f" /Info {len(objs)} 0 R" if title else ""
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def make_docx(path, *, title=None, heading=None, paragraphs=("Aspirin reduces fever.",)):
    import docx

    document = docx.Document()
    if title is not None:
        document.core_properties.title = title
    if heading:
        document.add_heading(heading, level=1)
    for p in paragraphs:
        document.add_paragraph(p)
    document.save(str(path))
    return path


MEDQUAD_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Document id="0000051" source="NIHSeniorHealth" url="http://example.org/paget">
<Focus>Paget's Disease of Bone</Focus>
<FocusAnnotations><UMLS><CUIs><CUI>C0029401</CUI></CUIs></UMLS></FocusAnnotations>
<QAPairs>
  <QAPair pid="1">
    <Question qid="0000051-1" qtype="information">What is (are) Paget's Disease of Bone ?</Question>
    <Answer>Paget&apos;s disease of bone causes affected bones to become enlarged.
    It is uncommon.</Answer>
  </QAPair>
  <QAPair pid="2">
    <Question qid="0000051-2" qtype="symptoms">What are the symptoms of Paget's Disease of Bone ?</Question>
    <Answer>Pain, misshapen bones and fractures.</Answer>
  </QAPair>
  <QAPair pid="3">
    <Question qid="0000051-3" qtype="treatment">What are the treatments for Paget's Disease of Bone ?</Question>
    <Answer></Answer>
  </QAPair>
</QAPairs>
</Document>
"""

PUBMEDQA = {
    "10808977": {
        "QUESTION": "Can tailored interventions increase mammography use among HMO women?",
        "CONTEXTS": ["Telephone counseling is promising.", "We ran a randomized trial."],
        "LABELS": ["BACKGROUND", "METHODS"],
        "MESHES": ["Female", "Humans"],
        "YEAR": "2000",
        "final_decision": "yes",
        "LONG_ANSWER": "The effects were most pronounced after the first intervention.",
    },
    "21645374": {
        "QUESTION": "Do mitochondria play a role in remodelling lace plant leaves?",
        "CONTEXTS": ["Programmed cell death occurs in lace plant leaves."],
        "LABELS": ["BACKGROUND"],
        "MESHES": ["Mitochondria"],
        "final_decision": "yes",
        "LONG_ANSWER": "Mitochondria play a role.",
    },
}


def write(tmp_path, name, content, encoding="utf-8"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode(encoding))
    return path


# --- encodings ------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk", "utf-16"])
def test_chinese_round_trips_in_every_encoding(tmp_path, encoding):
    path = write(tmp_path, f"zh-{encoding}.txt", ZH, encoding)
    assert read_text(path) == ZH
    assert read_text(path.read_bytes(), name="x.txt") == ZH


@pytest.mark.parametrize("text", ["头痛", "胃", "咳嗽发热", "高血压,糖尿病\n1,2\n"])
def test_short_gbk_text_is_not_misread_as_utf8_or_big5(text):
    assert read_text(text.encode("gb18030"), name="short.txt") == text


def test_utf8_is_preferred_when_it_decodes():
    for text in ["Café au lait", "Привет мир", "plain ascii", "混合 text 中文"]:
        assert read_text(text.encode("utf-8")) == text


def test_bom_is_stripped(tmp_path):
    path = write(tmp_path, "bom.txt", "\ufeff" + ZH, "utf-8")
    assert not read_text(path).startswith("\ufeff")


def test_empty_and_binary_files_are_errors(tmp_path):
    empty = write(tmp_path, "empty.txt", b"")
    with pytest.raises(MedSearchError, match="empty.txt.*empty"):
        read_text(empty)
    junk = write(tmp_path, "junk.txt", bytes(range(256)) * 8)
    with pytest.raises(MedSearchError, match="junk.txt"):
        read_documents(junk)
    with pytest.raises(MedSearchError, match="empty.txt"):
        read_documents(empty)


# --- CSV / TSV ------------------------------------------------------------------


def test_csv_guesses_columns(tmp_path):
    path = write(tmp_path, "faq.csv", "问题,答案,科室\n高血压吃什么药？,遵医嘱服用降压药。,内科\n,只有答案,外科\n空答案,,内科\n")
    docs = read_documents(path)
    assert [d.id for d in docs] == ["faq-1", "faq-2"]
    assert docs[0].title == "高血压吃什么药？"
    assert docs[0].text == "遵医嘱服用降压药。"
    assert docs[0].metadata == {"科室": "内科"}
    assert docs[0].source == "faq.csv"


def test_csv_explicit_columns_and_id(tmp_path):
    path = write(tmp_path, "x.csv", "key,head,body,lang,extra\nA1,T1,Body one,en,e\nA1,T2,Body two,en,e\n")
    opts = IngestOptions(text_column="body", title_column="head", id_column="key", metadata_columns=["lang"])
    docs = read_documents(path, options=opts)
    assert [d.id for d in docs] == ["A1", "A1-2"]  # ids made unique within the file
    assert docs[1].title == "T2" and docs[1].metadata == {"lang": "en"}


def test_csv_missing_column_is_named(tmp_path):
    path = write(tmp_path, "x.csv", "title,text\na,b\n")
    with pytest.raises(MedSearchError, match=r"x\.csv: text column 'body' not found \(columns: title, text\)"):
        read_documents(path, options=IngestOptions(text_column="body"))


def test_tsv_and_semicolon_csv_and_quoted_newlines(tmp_path):
    tsv = write(tmp_path, "d.tsv", "id\ttext\n7\tfirst, with comma\n8\tsecond\n")
    assert [(d.id, d.text) for d in read_documents(tsv)] == [("7", "first, with comma"), ("8", "second")]
    semi = write(tmp_path, "s.csv", 'title;content\nA;"line one\nline two"\nB;x\n')
    docs = read_documents(semi)
    assert docs[0].text == "line one\nline two" and docs[0].title == "A"


def test_csv_gb18030_file(tmp_path):
    path = write(tmp_path, "gb.csv", "标题,内容\n头痛,多休息，必要时就医。\n", "gb18030")
    doc = read_documents(path)[0]
    assert (doc.title, doc.text) == ("头痛", "多休息，必要时就医。")


def test_csv_without_rows_is_an_error(tmp_path):
    with pytest.raises(MedSearchError, match="h.csv"):
        read_documents(write(tmp_path, "h.csv", "title,text\n"))


def test_csv_falls_back_to_longest_column(tmp_path):
    path = write(tmp_path, "w.csv", "code,description\nX1,A long description of the drug\n")
    doc = read_documents(path)[0]
    assert doc.text == "A long description of the drug" and doc.metadata == {"code": "X1"}


# --- JSON / JSONL / BEIR --------------------------------------------------------


def test_json_list_of_objects(tmp_path):
    rows = [{"id": 1, "title": "T", "content": "C1", "tags": ["a", "b"]}, {"content": "C2"}]
    docs = read_documents(write(tmp_path, "l.json", json.dumps(rows)))
    assert [(d.id, d.text) for d in docs] == [("1", "C1"), ("l-2", "C2")]
    assert docs[0].metadata == {"tags": ["a", "b"]}


def test_json_object_of_objects_uses_keys_as_ids(tmp_path):
    data = {"k1": {"text": "one", "question": "Q1"}, "k2": {"text": "two"}}
    docs = read_documents(write(tmp_path, "o.json", json.dumps(data, ensure_ascii=False)))
    assert [(d.id, d.title, d.text) for d in docs] == [("k1", "Q1", "one"), ("k2", "", "two")]


def test_invalid_json_reports_line(tmp_path):
    path = write(tmp_path, "bad.json", '[\n {"text": "a"},\n {"text": }\n]')
    with pytest.raises(MedSearchError, match=r"bad\.json: invalid JSON on line 3"):
        read_documents(path)


def test_json_wrong_shape(tmp_path):
    with pytest.raises(MedSearchError, match="n.json"):
        read_documents(write(tmp_path, "n.json", "42"))


def test_jsonl_generic_and_bad_line(tmp_path):
    path = write(tmp_path, "r.jsonl", '{"passage": "p1", "topic": "x"}\n\n{"passage": "p2"}\n')
    docs = read_documents(path)
    assert [(d.id, d.text) for d in docs] == [("r-1", "p1"), ("r-2", "p2")]
    bad = write(tmp_path, "bad.jsonl", '{"text": "ok"}\n{"text": broken}\n')
    with pytest.raises(MedSearchError, match=r"bad\.jsonl: invalid JSON on line 2"):
        read_documents(bad)


def test_beir_corpus(tmp_path):
    lines = [{"_id": "d1", "title": "T", "text": "糖尿病", "metadata": {"url": "u"}},
             {"_id": "d2", "title": "", "text": "Asthma"}, {"_id": "d3", "text": ""}]
    path = write(tmp_path, "corpus.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in lines))
    assert detect_format("corpus.jsonl") == "jsonl"
    docs = read_documents(path)
    assert [d.id for d in docs] == ["d1", "d2"]
    assert docs[0].metadata == {"url": "u"} and docs[0].title == "T"
    other = write(tmp_path, "other.jsonl", json.dumps({"_id": "x", "text": "t", "metadata": {"a": 1}}))
    assert read_documents(other)[0].metadata == {"a": 1}


# --- TXT / Markdown -------------------------------------------------------------


def test_txt_auto_file_mode_for_prose(tmp_path):
    path = write(tmp_path, "article.txt", "Para one.\n\nPara two.\n")
    docs = read_documents(path)
    assert len(docs) == 1 and docs[0].title == "article" and docs[0].id == "article"
    assert docs[0].text == "Para one.\n\nPara two."


def test_txt_auto_blocks_mode_for_records(tmp_path):
    path = write(tmp_path, "qa.txt", "Q1 title\nanswer one\n\n\nQ2 title\nanswer two\n\n\n", "gb18030")
    docs = read_documents(path)
    assert [(d.id, d.title, d.text) for d in docs] == [
        ("qa-1", "Q1 title", "Q1 title\nanswer one"), ("qa-2", "Q2 title", "Q2 title\nanswer two")]


def test_txt_explicit_modes(tmp_path):
    path = write(tmp_path, "p.txt", "a\n\nb\n\nc")
    assert len(read_documents(path, options=IngestOptions(txt_mode="blocks"))) == 3
    assert len(read_documents(path, options=IngestOptions(txt_mode="file"))) == 1
    with pytest.raises(MedSearchError, match="p.txt"):
        read_documents(path, options=IngestOptions(txt_mode="lines"))


def test_whitespace_only_txt_is_an_error(tmp_path):
    with pytest.raises(MedSearchError, match="blank.txt"):
        read_documents(write(tmp_path, "blank.txt", "  \n\n \n"))


def test_markdown(tmp_path):
    md = "---\nauthor: x\n---\nIntro line.\n\n# 高血压 指南\n\nSee **bold** and [link](http://x) and `code`.\n\n## Sub\n"
    doc = read_documents(write(tmp_path, "guide.md", md))[0]
    assert doc.title == "高血压 指南" and doc.id == "guide"
    assert "See bold and link and code." in doc.text
    assert "**" not in doc.text and "http://x" not in doc.text and "author" not in doc.text
    raw = read_documents(write(tmp_path, "r.markdown", "no heading *here*"),
                         options=IngestOptions(strip_markdown=False))[0]
    assert raw.title == "r" and raw.text == "no heading *here*"


# --- PDF / DOCX -----------------------------------------------------------------


def test_pdf(tmp_path):
    path = write(tmp_path, "leaflet.pdf", make_pdf(["Aspirin page one", "Insulin page two"]))
    [doc] = read_documents(path)
    assert "Aspirin page one" in doc.text and "Insulin page two" in doc.text
    assert doc.metadata == {"pages": 2} and doc.title == "leaflet" and doc.id == "leaflet"
    titled = read_documents(data=make_pdf(["x y"], title="Drug Guide"), name="up.pdf")[0]
    assert titled.title == "Drug Guide" and titled.source == "up.pdf"


def test_truncated_and_fake_pdf(tmp_path):
    good = make_pdf(["Aspirin page one"])
    with pytest.raises(MedSearchError, match=r"cut\.pdf: damaged or truncated"):
        read_documents(write(tmp_path, "cut.pdf", good[: len(good) // 2]))
    with pytest.raises(MedSearchError, match=r"fake\.pdf: not a PDF"):
        read_documents(write(tmp_path, "fake.pdf", b"hello, not a pdf"))


def test_pdf_without_text(tmp_path):
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(MedSearchError, match=r"scan\.pdf: no extractable text"):
        read_documents(write(tmp_path, "scan.pdf", buf.getvalue()))


def test_docx_titles(tmp_path):
    doc = read_documents(make_docx(tmp_path / "a.docx", title="Core Title"))[0]
    assert doc.title == "Core Title" and doc.text == "Aspirin reduces fever."
    doc = read_documents(make_docx(tmp_path / "b.docx", title="", heading="糖尿病", paragraphs=["饮食控制。", "运动。"]))[0]
    assert doc.title == "糖尿病" and doc.text == "糖尿病\n饮食控制。\n运动。"
    doc = read_documents(make_docx(tmp_path / "c.docx", title=""))[0]
    assert doc.title == "c" and doc.id == "c"


def test_bad_docx(tmp_path):
    import zipfile

    with pytest.raises(MedSearchError, match=r"junk\.docx: not a \.docx"):
        read_documents(write(tmp_path, "junk.docx", b"plain text"))
    zpath = tmp_path / "zip.docx"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(MedSearchError, match=r"zip\.docx: not a valid \.docx"):
        read_documents(zpath)
    with pytest.raises(MedSearchError, match=r"empty\.docx"):
        read_documents(data=make_docx(tmp_path / "e.docx", paragraphs=[]).read_bytes(), name="empty.docx")


# --- MedQuAD / PubMedQA ---------------------------------------------------------


def test_medquad_xml(tmp_path):
    docs = read_documents(write(tmp_path, "0000051.xml", MEDQUAD_XML))
    assert [d.id for d in docs] == ["0000051-1", "0000051-2"]  # empty answer skipped
    first = docs[0]
    assert first.title == "What is (are) Paget's Disease of Bone ?"
    assert first.text.startswith("Paget's disease of bone causes") and "uncommon" in first.text
    assert first.source == "NIHSeniorHealth"
    assert first.metadata["focus"] == "Paget's Disease of Bone"
    assert first.metadata["qtype"] == "information"
    assert first.metadata["url"] == "http://example.org/paget"


def test_medquad_variant_and_errors(tmp_path):
    variant = ('<doc docid="7" corpus="NINDS" url="u"><doctitle-focus>HAS</doctitle-focus><qaPairs>'
               '<pair pid="1"><question qid="7-1" qtype="information">what is HAS?</question>'
               "<answer>A disorder.</answer></pair></qaPairs></doc>")
    [doc] = read_documents(write(tmp_path, "v.xml", variant))
    assert (doc.id, doc.source, doc.metadata["focus"]) == ("7-1", "NINDS", "HAS")
    with pytest.raises(MedSearchError, match=r"broken\.xml: invalid XML"):
        read_documents(write(tmp_path, "broken.xml", "<Document><QAPairs>"))
    with pytest.raises(MedSearchError, match=r"none\.xml: no documents"):
        read_documents(write(tmp_path, "none.xml", '<Document id="1"><QAPairs></QAPairs></Document>'))
    with pytest.raises(MedSearchError, match=r"rss\.xml: not a MedQuAD"):
        read_documents(write(tmp_path, "rss.xml", "<rss/>"))


def test_pubmedqa(tmp_path):
    path = write(tmp_path, "pqal_dev.json", json.dumps(PUBMEDQA))
    assert detect_format(path.name) == "json"
    docs = read_documents(path)
    assert [d.id for d in docs] == ["10808977", "21645374"]
    d = docs[0]
    assert d.title.startswith("Can tailored interventions")
    assert d.text == "Telephone counseling is promising.\nWe ran a randomized trial."
    assert d.metadata["meshes"] == ["Female", "Humans"]
    assert d.metadata["labels"] == ["BACKGROUND", "METHODS"]
    assert d.metadata["final_decision"] == "yes"
    assert d.source == "PubMedQA" and d.metadata["file"] == "pqal_dev.json"


# --- dispatch / read_many -------------------------------------------------------


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(MedSearchError, match=r"x\.xyz: unsupported file type '\.xyz'"):
        read_documents(write(tmp_path, "x.xyz", "hello"))
    with pytest.raises(MedSearchError, match=r"old\.doc"):
        read_documents(write(tmp_path, "old.doc", b"\xd0\xcf\x11\xe0junk"))
    with pytest.raises(MedSearchError, match=r"nope\.csv: file not found"):
        read_documents(tmp_path / "nope.csv")
    with pytest.raises(MedSearchError, match="unknown format"):
        read_documents(write(tmp_path, "y.txt", "hi"), fmt="excel")


def test_uploaded_bytes_and_forced_format(tmp_path):
    docs = read_documents(data="title,text\nA,B\n".encode("utf-16"), name="upload.csv")
    assert (docs[0].title, docs[0].text, docs[0].source) == ("A", "B", "upload.csv")
    docs = read_documents(data=b"some text", name="noext", fmt="txt")
    assert docs[0].text == "some text"
    assert detect_format("blob", make_pdf(["x"])) == "pdf"


def test_read_many_keeps_good_files(tmp_path):
    good = write(tmp_path, "good.csv", "text\nhello\n")
    bad = write(tmp_path, "bad.json", "{oops")
    junk = write(tmp_path, "junk.txt", bytes(range(256)) * 4)
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub, "good.csv", "text\nagain\n")
    docs, errors = read_many([good, bad, junk, sub, ("up.md", b"# T\nbody")])
    assert [d.text for d in docs] == ["hello", "again", "T\nbody"]
    assert len({d.id for d in docs}) == len(docs)  # ids unique across files too
    assert len(errors) == 2
    assert errors[0].startswith("bad.json: invalid JSON") and errors[1].startswith("junk.txt:")
    assert all("Traceback" not in e and "\n" not in e for e in errors)


# --- real shared data -----------------------------------------------------------


def test_real_pubmedqa(shared_data):
    docs = read_documents(shared_data / "pubmedqa-dev" / "pqal_dev.json")
    assert len(docs) == 300 and all(d.title and d.text for d in docs)


def test_real_neike_blocks(shared_data):
    docs = read_documents(shared_data / "zh-dialogue-neike" / "neike.txt")
    assert len(docs) == 4048
    assert docs[0].text.startswith("高血压患者能吃党参吗？")


def test_real_medquad_folder(shared_data):
    docs, errors = read_many([shared_data / "medquad-dev"])
    assert len([d for d in docs if d.source != "LICENSE.txt"]) > 3000
    assert len({d.id for d in docs}) == len(docs)
    assert all("no documents" in e for e in errors)


# Limits and bad input (issue 12): each refused with one clear line, never a traceback.

def test_ragged_csv_rows_are_refused_with_their_lines():
    data = b"id,title,text\n1,Gout,Urate crystals\n2,Asthma,Airways,extra\n3,Only two\n4,Ok,Fine,,\n5,Bad\n6,x,y,z,w\n7,x,y,z\n"
    with pytest.raises(RaggedRows) as caught:
        read_documents(name="r.csv", data=data)
    error = caught.value
    assert (error.name, error.count, error.lines, error.fields) == ("r.csv", 5, [3, 4, 6, 7, 8], 3)
    assert str(error) == ("r.csv: 5 rows do not have the header's 3 fields (lines 3, 4, 6, 7, 8); "
                          "quote fields that hold the delimiter, or fix those rows")
    assert table_columns("r.csv", data) is None
    assert len(read_documents(name="ok.csv", data=b"id,text\n1,a\n2,b,,\n")) == 2  # trailing empty fields are fine


@pytest.mark.parametrize("name,data,message", [
    ("numbers.json", b"[1, 2, 3]", "expected text records"),
    ("numbers.jsonl", b"[1, 2]\n[3]\n", "line 1 is not a JSON object"),
    ("scalar.json", b"42", "expected text records"),
    ("counts.json", b'[{"a": 1, "b": true}, {"a": 2, "b": false}]', "no field with text"),
    ("counts.jsonl", b'{"n": 1.5}\n{"n": null}\n', "no field with text"),
    ("nested.json", b'[{"text": {"a": {"b": 1}}}]', "no field with text"),
])
def test_json_that_is_not_text_documents_is_refused(name, data, message):
    with pytest.raises(MedSearchError, match=rf"^{name}: .*{message}"):
        read_documents(name=name, data=data)


@pytest.mark.parametrize("name", ["deep.json", "deep.jsonl"])
def test_deeply_nested_json_is_a_clear_error(name):
    data = b'{"a": [' * 50_000 + b'"x"' + b"]}" * 50_000
    with pytest.raises(MedSearchError, match=rf"^{name}: JSON nested too deeply"):
        read_documents(name=name, data=data)
    assert table_columns(name, data) is None  # the Corpus page's column guess: no RecursionError


@pytest.mark.parametrize("byte", [b"a", b"\x80", b"\xb0", b"\xe4", b"\x00", b"\xff"])
@pytest.mark.parametrize("name", ["noise.txt", "noise.csv", "noise.md"])
def test_binary_noise_is_not_text(byte, name):
    with pytest.raises(MedSearchError, match=rf"^{name}: (does not look like text|not a text file)"):
        read_documents(name=name, data=byte * 5000)


def test_random_bytes_are_not_text():
    import random

    rng = random.Random(12)
    for n in range(20):
        data = bytes(rng.randrange(256) for _ in range(4000))
        with pytest.raises(MedSearchError, match="does not look like text|not a text file"):
            read_documents(name=f"r{n}.txt", data=data)


def test_real_gb18030_text_is_still_text():
    from pathlib import Path

    neike = Path("/work/shared/data/zh-dialogue-neike/neike.txt")
    if not neike.is_file():
        pytest.skip("the shared GB18030 dialogue file is not here")
    data = neike.read_bytes()[:300_000]
    docs = read_documents(name="neike.txt", data=data[: data.rfind(b"\n")])
    assert docs and sum(len(d.text) for d in docs) > 100_000
    assert [d.text for d in read_documents(name="z.txt", data=ZH.encode("gb18030"))] == [ZH]


def test_row_limit(monkeypatch):
    monkeypatch.setenv("MEDSEARCH_MAX_ROWS", "3")
    rows = b"text\n" + b"".join(b"passage %d\n" % i for i in range(4))
    lines = b"".join(b'{"text": "passage %d"}\n' % i for i in range(4))
    for name, data in (("four.csv", rows), ("four.jsonl", lines), ("four.txt", rows.replace(b"\n", b"\n\n\n"))):
        with pytest.raises(TooManyRows) as caught:
            read_documents(name=name, data=data)
        assert (caught.value.name, caught.value.limit) == (name, 3)
        assert str(caught.value) == f"{name}: more than 3 rows, the limit of one ingestion (the server's MEDSEARCH_MAX_ROWS setting)."
    assert len(read_documents(name="three.csv", data=rows[: rows.rfind(b"passage 3")])) == 3
    with pytest.raises(TooManyRows, match="^all files: more than 3 rows"):
        read_many([("a.csv", b"text\none\ntwo\n"), ("b.csv", b"text\nthree\nfour\n")])
    monkeypatch.setenv("MEDSEARCH_MAX_ROWS", "lots")
    with pytest.raises(MedSearchError, match="MEDSEARCH_MAX_ROWS must be a positive whole number"):
        read_documents(name="a.csv", data=b"text\none\n")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Document id="x"><QAPairs><QAPair pid="1"><Question>q</Question><Answer>&lol3;</Answer></QAPair></QAPairs></Document>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY secret SYSTEM "file:///etc/hostname">]>
<Document id="x"><QAPairs><QAPair pid="1"><Question>q</Question><Answer>&secret;</Answer></QAPair></QAPairs></Document>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["entity expansion", "external entity"])
def test_xml_entities_are_refused(data):
    with pytest.raises(MedSearchError, match=r"^e\.xml: XML with entity declarations is refused"):
        read_documents(name="e.xml", data=data)


def test_an_upload_is_read_from_a_file(tmp_path):
    upload = io.BytesIO(b"title,text\nGout,Urate crystals in joints.\n")
    path = save_upload(upload, "../../etc/My notes.CSV", tmp_path)
    assert path.parent == tmp_path and path.suffix == ".csv" and path.read_bytes().startswith(b"title,text")
    [doc] = read_documents(path, name="My notes.CSV")
    assert (doc.title, doc.source) == ("Gout", "My notes.CSV")
    assert table_columns("My notes.CSV", path=path).text == "text"
    with pytest.raises(MedSearchError, match="x.exe: unsupported file type"):
        save_upload(io.BytesIO(b"MZ"), "x.exe", tmp_path)


def test_file_errors_are_codes_rendered_in_either_language():
    from medsearch.i18n import FILE_ERRORS
    from medsearch.ingest.common import IngestError

    with pytest.raises(IngestError) as caught:
        read_documents(data=b"%PDF-1.4 broken", name="x.pdf")
    error = caught.value
    assert error.code == "bad_pdf" and str(error).startswith("x.pdf: damaged or truncated PDF (")
    assert FILE_ERRORS(error.code, "zh", **error.params).startswith("PDF 已损坏或不完整（")


def test_every_file_error_raised_in_the_package_has_both_languages():
    from medsearch.i18n import FILE_ERRORS

    package = Path(__file__).parent.parent / "medsearch"
    raised = {code for path in package.rglob("*.py")
              for code in re.findall(r"\bfail\(\w+, \"(\w+)\"", path.read_text(encoding="utf-8"))}
    assert len(raised) > 20 and not raised - set(FILE_ERRORS.entries)
