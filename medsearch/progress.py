"""Progress of long work as a list of steps, for callers without tqdm (the app): what is done, how long each
step took, and an estimate of the time left in the current one. Numbers only: the app renders them."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Step:
    """One stage ('tokenize', 'encode MODEL', …): `done` of `total`, from `started` to `ended` (None: running)."""

    stage: str
    started: float
    first: int
    done: int = 0
    total: int = 0
    ended: float | None = None
    updated: float = 0.0

    def seconds(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.started

    def left(self) -> float | None:
        """Seconds left at the pace so far; None until there is a pace, or once ended."""
        if self.ended is not None or self.done <= self.first or self.done >= self.total:
            return None
        return (self.updated - self.started) / (self.done - self.first) * (self.total - self.done)


class Steps:
    """Turns (stage, done, total) calls into steps: a new stage ends the one before it; an unfinished stage that
    comes back (encoding paused while its model loads) moves after the interruption and starts its pace anew."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.started = time.monotonic()

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.steps or self.steps[-1].stage != stage:
            if self.steps and self.steps[-1].ended is None:
                self.steps[-1].ended = now
            self.steps = [s for s in self.steps if s.stage != stage or s.done >= s.total]
            self.steps.append(Step(stage, now, done))
        step = self.steps[-1]
        step.done, step.total, step.updated = done, total, now
        if total and done >= total:
            step.ended = now

    @property
    def current(self) -> Step | None:
        return self.steps[-1] if self.steps else None
