"""Untrusted text (documents, titles, sources, metadata, file names, error messages) made inert for display.

One helper for every place such text meets Markdown or HTML: each character that means something
to Markdown, to Streamlit's `:directives[...]`, `:icons:` and `$math$`, or to HTML becomes a numeric
character reference (`[` → `&#91;`). Character references are never syntax in Markdown and never
tags in HTML, so the text shows exactly as typed in `st.markdown`, captions, messages, widget labels
and inside our own HTML, while links, images, directives and tags in it do nothing. Widgets that
show plain text (select box options, tables, `st.text`) take the raw text instead.
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+\-.!|<>~$:&\"'=^@%/]")


def inert(text: object) -> str:
    """`text` (str() of it) with every Markdown or HTML special character as a character reference."""
    return _SPECIAL.sub(lambda match: f"&#{ord(match.group())};", str(text))
