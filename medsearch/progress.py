"""Progress text with an estimate of the time left, for callers without tqdm (the app)."""

from __future__ import annotations

import time


class Eta:
    """Turns (stage, done, total) calls into 'stage: done/total · about 12 s left'."""

    def __init__(self) -> None:
        self.started: dict[str, tuple[float, int]] = {}

    def __call__(self, stage: str, done: int, total: int) -> str:
        now = time.monotonic()
        start, first = self.started.setdefault(stage, (now, done))
        text = f"{stage}: {done}/{total}"
        if done > first and done < total:
            left = (now - start) / (done - first) * (total - done)
            text += f" · about {left:.0f} s left" if left < 120 else f" · about {left / 60:.0f} min left"
        return text
