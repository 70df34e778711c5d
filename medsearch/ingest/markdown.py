"""Markdown files: one document per file, titled by its first `# ` heading."""

from __future__ import annotations

import re

from medsearch.ingest.common import IngestOptions, clean_text, fail, stem
from medsearch.ingest.encoding import decode_bytes
from medsearch.records import Document

_FRONT_MATTER = re.compile(r"\A---\n.*?\n(?:---|\.\.\.)\n", re.S)
_H1 = re.compile(r"^[ \t]{0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.M)
_LIGHT = [
    (re.compile(r"^```.*$|^~~~.*$", re.M), ""),             # code fences (keep the code)
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),         # images -> alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),          # links -> link text
    (re.compile(r"<[^>\n]+>"), ""),                         # inline HTML tags
    (re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M), r"\1"),  # headings
    (re.compile(r"^[ \t]{0,3}>[ \t]?", re.M), ""),          # block quotes
    (re.compile(r"^[ \t]*([-*_])([ \t]*\1){2,}[ \t]*$", re.M), ""),  # rules
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),               # bold
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?!\w)"), r"\1"),  # italics
    (re.compile(r"`([^`\n]+)`"), r"\1"),                    # inline code
]


def strip_markdown(text: str) -> str:
    """Remove the most common Markdown markup, keeping the words."""
    for pattern, repl in _LIGHT:
        text = pattern.sub(repl, text)
    return text


def read_markdown(data: bytes, name: str, options: IngestOptions) -> list[Document]:
    """One document per Markdown file."""
    text = _FRONT_MATTER.sub("", decode_bytes(data, name).replace("\r\n", "\n"), count=1)
    if not text.strip():
        raise fail(name, "no_text")
    match = _H1.search(text)
    title = strip_markdown(match.group(1)).strip() if match else stem(name)
    body = strip_markdown(text) if options.strip_markdown else text
    return [Document(stem(name), clean_text(body), title=title, source=name)]
