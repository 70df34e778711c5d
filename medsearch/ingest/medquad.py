"""MedQuAD XML: `<Document id source url><Focus/><QAPairs><QAPair pid>...` files, parsed with defusedxml.

The variant spellings found in the real collection are accepted too: root `<doc
docid corpus>` or `<DiseaseFile fid>`, `<doctitle-focus>`, `<pair>`, lower-case
`<question>`/`<answer>`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

from medsearch.ingest.common import IngestOptions, clean_text, fail
from medsearch.records import Document

ROOTS = {"document", "doc", "diseasefile"}
FOCUS = {"focus", "doctitle-focus"}
PAIRS = {"qapair", "pair"}


def _tag(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1].lower() if isinstance(element.tag, str) else ""


def _child(element: ET.Element, names: set[str]) -> ET.Element | None:
    return next((c for c in element if _tag(c) in names), None)


def _text(element: ET.Element | None) -> str:
    return clean_text("".join(element.itertext())) if element is not None else ""


def _attr(element: ET.Element, *names: str) -> str:
    return next((element.get(n, "").strip() for n in names if element.get(n, "").strip()), "")


def read_medquad(data: bytes, name: str, options: IngestOptions | None = None) -> list[Document]:
    """One document per QAPair with an answer: title = question, text = answer.

    Ids are `<document id>-<pid>`; the source is the document's `source` attribute;
    metadata holds focus, qtype, qid, url and file. A file without answers gives [].
    """
    if not data.strip():
        raise fail(name, "empty")
    try:
        root = DefusedET.fromstring(data)
    except DefusedXmlException as e:
        raise fail(name, "xml_entities") from e
    except ET.ParseError as e:
        raise fail(name, "bad_xml", why=e) from e
    if _tag(root) not in ROOTS:
        raise fail(name, "not_medquad", root=root.tag)
    doc_id = _attr(root, "id", "docid", "fid") or name.rsplit(".", 1)[0]
    source = _attr(root, "source", "corpus") or name
    focus = _text(_child(root, FOCUS))
    docs = []
    pairs = [e for e in root.iter() if _tag(e) in PAIRS]
    for n, pair in enumerate(pairs, start=1):
        answer = _text(_child(pair, {"answer"}))
        if not answer:
            continue
        q = _child(pair, {"question"})
        question = _text(q)
        meta = {"focus": focus, "qtype": _attr(q, "qtype") if q is not None else "",
                "qid": _attr(q, "qid") if q is not None else "", "url": _attr(root, "url"), "file": name}
        docs.append(Document(f"{doc_id}-{pair.get('pid') or n}", answer, title=question,
                             source=source, metadata={k: v for k, v in meta.items() if v}))
    return docs
