"""Progress text with an estimate of the time left, for callers without tqdm (the app)."""

from __future__ import annotations

import time

from medsearch.i18n import Texts

_TEXTS = Texts({"s": (" · about {n:.0f} s left", " · 约剩 {n:.0f} 秒"),
                "min": (" · about {n:.0f} min left", " · 约剩 {n:.0f} 分钟")})


class Eta:
    """Turns (stage, done, total) calls into 'stage: done/total · about 12 s left' (or Chinese)."""

    def __init__(self, lang: str = "en") -> None:
        self.lang = lang
        self.started: dict[str, tuple[float, int]] = {}

    def __call__(self, stage: str, done: int, total: int) -> str:
        now = time.monotonic()
        start, first = self.started.setdefault(stage, (now, done))
        text = f"{stage}: {done}/{total}"
        if done > first and done < total:
            left = (now - start) / (done - first) * (total - done)
            text += _TEXTS("s", self.lang, n=left) if left < 120 else _TEXTS("min", self.lang, n=left / 60)
        return text
