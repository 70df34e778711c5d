"""Untrusted text made safe to quote inside the `<passage>` fences of a prompt.

A document must not close its own fence, however it spells the tag: `defenced` first normalises the
text as a reader (human or model) would see it (HTML entities decoded, NFKC, format characters such as
zero-width spaces removed), then looks for `<passage` / `</passage` with case, accents and look-alike
letters (Unicode's confusables: Cyrillic `р`, Greek `α`, …) folded away, and breaks each one it finds
by turning its `<` into `‹` (left as it is when found). The rest of the text stays as it reads.
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache

_TAG = re.compile(r"<\s*/?\s*passage")
_BROKEN = "‹"  # what a tag's "<" becomes; the one look-alike of "<" left as it is
_TARGETS = set("abcdefghijklmnopqrstuvwxyz</")
_ENTITY_ROUNDS = 3  # "&amp;lt;" is "&lt;" is "<"


@lru_cache(maxsize=1)
def _look_alikes() -> dict[str, str]:
    """{character: the ASCII letter, '<' or '/' it can be mistaken for} from Unicode's confusables."""
    from confusable_homoglyphs.confusables import confusables_data

    table: dict[str, str] = {}
    for char, glyphs in confusables_data.items():
        if len(char) == 1 and not char.isascii() and char != _BROKEN:
            ascii_glyph = next((g["c"].lower() for g in glyphs if g["c"].lower() in _TARGETS), None)
            if ascii_glyph:
                table[char] = ascii_glyph
    return table


def readable(text: str) -> str:
    """`text` as it reads: HTML entities decoded, NFKC-normalised, format characters (Cf) removed."""
    for _ in range(_ENTITY_ROUNDS):
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def skeleton(text: str) -> tuple[str, list[int]]:
    """`text` folded for matching (accents dropped, case folded, look-alikes mapped to ASCII), and for
    each folded character the index of the character of `text` it comes from."""
    look_alikes = _look_alikes()
    folded, origin = [], []
    for i, char in enumerate(text):
        for part in unicodedata.normalize("NFKD", char).casefold():
            if unicodedata.category(part) not in ("Mn", "Me", "Cf"):
                folded.append(look_alikes.get(part, part))
                origin.append(i)
    return "".join(folded), origin


def defenced(text: str) -> str:
    """`readable(text)` with every spelling of a `<passage>` / `</passage>` tag broken (`<` becomes `‹`)."""
    text = readable(text)
    folded, origin = skeleton(text)
    opening = {origin[match.start()] for match in _TAG.finditer(folded)}
    return "".join(_BROKEN if i in opening else char for i, char in enumerate(text))
