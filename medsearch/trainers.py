"""What every training run shares, whatever the model family: sentence-transformers' own trainer on CPU, its
batches free of duplicates, progress / time left / cancel through a `TrainerCallback`, and an atomic save
of the model with its `medsearch.json` card.

Triplets are dicts {"query", "positive", "negative"} (the negative may be empty: a pair).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medsearch.home import replace_folder
from medsearch.records import MedSearchError

Progress = Callable[[dict], None]


class TrainingCancelled(MedSearchError):
    """The user stopped a training run; nothing was saved."""


def borrowed_negative(triplets: Sequence[dict], i: int) -> str | None:
    """A negative for row `i` that has none: the positive of the next row whose positive is none of this query's."""
    own = {t["positive"] for t in triplets if t["query"] == triplets[i]["query"]}
    others = (triplets[(i + step) % len(triplets)]["positive"] for step in range(1, len(triplets)))
    return next((p for p in others if p not in own), None)


def labelled_pairs(triplets: Sequence[dict]) -> list[tuple[str, str, float]]:
    """(query, passage, label): each positive 1, each hard negative 0; a row without one borrows one
    (`borrowed_negative`)."""
    pairs = []
    for i, t in enumerate(triplets):
        pairs.append((t["query"], t["positive"], 1.0))
        negative = t.get("negative") or borrowed_negative(triplets, i)
        if negative:
            pairs.append((t["query"], negative, 0.0))
    return pairs


def _callback(progress: Progress | None, should_stop: Callable[[], bool] | None):
    from transformers import TrainerCallback

    class StepReport(TrainerCallback):
        """Asks `should_stop` before every step; after each, reports step, total, epoch, loss and time left."""

        started = time.monotonic()

        def on_step_begin(self, args, state, control, **kwargs):  # TrainerCallback's signature
            if should_stop and should_stop():
                raise TrainingCancelled("Training was cancelled; no model was saved.")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if progress and logs and "loss" in logs:
                step, total = state.global_step, state.max_steps
                elapsed = time.monotonic() - self.started
                progress({"step": step, "total": total, "epoch": max(1, math.ceil(state.epoch or 1)),
                          "loss": round(float(logs["loss"]), 5), "eta_s": round(elapsed / step * (total - step), 1)})

    return StepReport()


def run_trainer(trainer_class: type, args_class: type, model: Any, dataset: Any, loss: Any, *, epochs: int,
                batch_size: int, learning_rate: float, seed: int, progress: Progress | None = None,
                should_stop: Callable[[], bool] | None = None, **arguments: Any) -> tuple[list[float], int]:
    """Train `model` with a sentence-transformers trainer and its training arguments class (on CPU, nothing
    reported or checkpointed, scratch in a temporary folder, batches without a text twice: `NO_DUPLICATES`);
    `arguments` go to the arguments class (prompts, router_mapping, …). Returns (loss of each step, steps)."""
    from sentence_transformers.base.sampler import BatchSamplers
    from transformers import PrinterCallback

    with tempfile.TemporaryDirectory(prefix="medsearch-train-") as scratch:
        args = args_class(
            output_dir=scratch, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
            learning_rate=learning_rate, seed=seed, data_seed=seed, use_cpu=True, fp16=False, bf16=False,
            report_to="none", save_strategy="no", logging_strategy="steps", logging_steps=1,
            dataloader_num_workers=0, disable_tqdm=True, batch_sampler=BatchSamplers.NO_DUPLICATES, **arguments)
        trainer = trainer_class(model=model, args=args, train_dataset=dataset, loss=loss,
                                callbacks=[_callback(progress, should_stop)])
        trainer.remove_callback(PrinterCallback)  # the caller shows progress; no log lines on stdout
        trainer.train()
    model.eval()
    return [row["loss"] for row in trainer.state.log_history if "loss" in row], trainer.state.max_steps


def loss_summary(losses: Sequence[float]) -> dict[str, float]:
    """The mean loss of the first and of the last ten steps."""
    return {"loss_start": round(float(np.mean(losses[:10])), 4), "loss_end": round(float(np.mean(losses[-10:])), 4)}


def save_with_card(save_model: Callable[[str], object], card: dict, out: str | Path) -> None:
    """Save a model (`save_model(folder)`) and its card (`medsearch.json`) at `out`, replacing it whole."""

    def save(folder: Path) -> None:
        save_model(str(folder))
        (folder / "medsearch.json").write_text(json.dumps(card, ensure_ascii=False, indent=2), encoding="utf-8")

    replace_folder(Path(out), save)
