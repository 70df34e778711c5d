"""Decode text files whose encoding is unknown (UTF-8, GB18030/GBK, UTF-16...)."""

from __future__ import annotations

import codecs
import unicodedata
from pathlib import Path

from charset_normalizer import from_bytes

from medsearch.ingest.common import fail, file_bytes

SAMPLE = 200_000  # characters looked at to tell text from noise
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _control_ratio(text: str) -> float:
    """Share of characters that are control characters other than whitespace."""
    if not text:
        return 0.0
    bad = sum(1 for c in text if (ord(c) < 32 and c not in "\t\n\r\f\v") or c == "\ufffd")
    return bad / len(text)


def _looks_chinese(text: str) -> bool:
    """True if most non-ASCII characters are common GB2312 hanzi or CJK punctuation."""
    non_ascii = [c for c in text[:200_000] if ord(c) > 127][:20_000]
    if not non_ascii:
        return False
    common = 0
    for c in non_ascii:
        try:
            b = c.encode("gb2312")
        except UnicodeEncodeError:
            continue
        if len(b) == 2 and (0xA1 <= b[0] <= 0xA3 or 0xB0 <= b[0] <= 0xD7):
            common += 1
    return common / len(non_ascii) >= 0.8


def _odd_two_byte(text: str) -> bool:
    """True for text with few non-ASCII characters, no CJK, and some in the IPA-Arabic
    range: short GBK text (e.g. "头痛") can be valid UTF-8 that decodes to such
    characters. Longer GBK text is practically never valid UTF-8, so it is not checked."""
    non_ascii = [ord(c) for c in text if ord(c) > 127]
    if len(non_ascii) > 32 or any(c >= 0x2E80 for c in non_ascii):
        return False
    return any(0x250 <= c < 0x800 for c in non_ascii)


def _noise(text: str) -> str | None:
    """Why decoded bytes are no text, or None: a long run of one or two characters (a file of one repeated
    byte), or unassigned and private-use characters (random bytes read in some encoding)."""
    sample = [c for c in text[:SAMPLE] if not c.isspace()]
    if len(sample) >= 64 and len(set(sample)) <= 2:
        return f"{len(text):,} characters of only {''.join(sorted(set(sample)))!r}"
    odd = sum(1 for c in sample if unicodedata.category(c) in ("Cn", "Co", "Cs"))
    return f"{odd} unassigned or private-use characters" if odd > len(sample) * 0.01 else None


def decode_bytes(data: bytes, name: str = "") -> str:
    """Decode `data` to text, raising MedSearchError if it is empty, not text, or noise (`_noise`)."""
    text = _decode(data, name or "input")
    why = _noise(text)
    if why:
        raise fail(name or "input", "not_text", why=why)
    return text


def _decode(data: bytes, label: str) -> str:
    """`data` decoded in the encoding it most likely has."""
    if not data:
        raise fail(label, "empty")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding).lstrip("\ufeff")
            except UnicodeDecodeError as e:
                raise fail(label, "bad_encoding", encoding=encoding, why=e.reason) from e
    try:
        utf8 = data.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = ""
    if utf8 and _control_ratio(utf8) <= 0.01 and not _odd_two_byte(utf8):
        return utf8
    text = data.decode("gb18030", errors="replace")
    if text.count("\ufffd") <= max(1, len(text) // 1000) and _looks_chinese(text):
        if _control_ratio(text.replace("\ufffd", "")) <= 0.01:
            return text
    if utf8 and _control_ratio(utf8) <= 0.01:
        return utf8
    best = from_bytes(data).best()
    if best is not None:
        text = str(best).lstrip("\ufeff")
        if text.strip() and _control_ratio(text) <= 0.01:
            return text
    raise fail(label, "no_encoding")


def read_text(path_or_bytes: str | Path | bytes, name: str = "") -> str:
    """Read a text file or bytes with automatic encoding detection; BOMs are stripped."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        return decode_bytes(bytes(path_or_bytes), name)
    path = Path(path_or_bytes)
    label = name or path.name
    return decode_bytes(file_bytes(path, label), label)
