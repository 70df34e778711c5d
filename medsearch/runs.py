"""Training runs in the background, surviving a page reload or a closed browser tab.

`start_run` writes the triplets and config into `$MEDSEARCH_HOME/.runs/<run id>/` and starts
`python -m medsearch train --run-dir DIR` as a detached process (output in `log.txt`). The run
writes `status.json` and appends one JSON line per step to `progress.jsonl`; a `cancel` file asks it
to stop. A finished run compares base and tuned on the held-out pairs and registers the model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import medsearch
from medsearch.home import medsearch_home
from medsearch.jsonl import write_jsonl
from medsearch.records import MedSearchError
from medsearch.registry import default_name, ensure_free, register, validate_model_name
from medsearch.training import TrainConfig, TrainingCancelled, Triplet, check_triplets, fine_tune

ACTIVE = ("queued", "running")
_CHILDREN: dict[str, subprocess.Popen] = {}


@dataclass
class RunStatus:
    """Where a run stands; `losses` is [(step, loss)] and step/total/epoch/loss/eta_s the latest step."""

    run_id: str
    state: str
    message: str = ""
    model: str | None = None
    metrics: dict = field(default_factory=dict)
    warning: str = ""
    started: str | None = None
    finished: str | None = None
    pid: int | None = None
    step: int = 0
    total: int = 0
    epoch: int = 0
    loss: float | None = None
    eta_s: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    config: dict = field(default_factory=dict)


def runs_root(home: str | Path | None = None) -> Path:
    """The folder holding all runs."""
    return medsearch_home(home) / ".runs"


def run_dir(run_id: str, home: str | Path | None = None) -> Path:
    """The folder of one run; unknown ids raise."""
    folder = runs_root(home) / run_id
    if "/" in run_id or run_id.startswith(".") or not (folder / "config.json").is_file():
        raise MedSearchError(f"There is no training run '{run_id}'.")
    return folder


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _update_status(folder: Path, **changes: object) -> None:
    path = folder / "status.json"
    status = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    _write_json(path, {**status, **changes})


def start_run(triplets: Sequence[Triplet], config: TrainConfig, *, corpus: Sequence[str] | None = None,
              home: str | Path | None = None) -> str:
    """Save the run's inputs and start training in a detached process; return the run id."""
    triplets = check_triplets(triplets)
    name = config.name or default_name(config.base, config.loss, config.family)
    config = TrainConfig(**{**asdict(config), "name": name})
    ensure_free(validate_model_name(name), home, config.reranker)
    home = medsearch_home(home)
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    folder = runs_root(home) / run_id
    folder.mkdir(parents=True)
    write_jsonl(folder / "triplets.jsonl", triplets)
    if corpus:
        _write_json(folder / "corpus.json", {"texts": list(corpus)})
    _write_json(folder / "status.json", {"state": "queued", "message": "",
                                         "model": config.name, "created": _now()})
    _write_json(folder / "config.json", asdict(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(medsearch.__file__).parents[1]),
                                                                     os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "medsearch", "--home", str(home), "train", "--run-dir", str(folder)]
    with (folder / "log.txt").open("wb") as log:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, env=env)
    (folder / "pid").write_text(str(child.pid))
    _CHILDREN[run_id] = child
    return run_id


def execute(folder: str | Path, home: str | Path | None = None) -> int:
    """Do the run in `folder` (inside the detached process): train, compare, register; exit code."""
    folder = Path(folder)
    config = TrainConfig(**json.loads((folder / "config.json").read_text(encoding="utf-8")))
    with (folder / "triplets.jsonl").open(encoding="utf-8") as lines:
        triplets = [json.loads(line) for line in lines if line.strip()]
    corpus_file = folder / "corpus.json"
    corpus = json.loads(corpus_file.read_text(encoding="utf-8"))["texts"] if corpus_file.is_file() else None
    _update_status(folder, state="running", message="", started=_now(), pid=os.getpid())
    staging = folder / "model"
    try:
        with (folder / "progress.jsonl").open("a", encoding="utf-8") as log:
            def progress(step: dict) -> None:
                log.write(json.dumps(step) + "\n")
                log.flush()

            card = fine_tune(triplets, config, staging, corpus=corpus, progress=progress,
                             should_stop=(folder / "cancel").exists)
        register(staging, card, home, config.reranker)
    except TrainingCancelled as exc:
        shutil.rmtree(staging, ignore_errors=True)
        _update_status(folder, state="cancelled", message=str(exc), finished=_now())
        return 0
    except Exception as exc:  # noqa: BLE001 - any failure must end in state "failed", with the reason
        shutil.rmtree(staging, ignore_errors=True)
        reason = str(exc) if isinstance(exc, MedSearchError) else f"{type(exc).__name__}: {exc}"
        _update_status(folder, state="failed", message=reason.splitlines()[0] if reason else "failed", finished=_now())
        raise
    _update_status(folder, state="done", message="", finished=_now(),
                   metrics=card["metrics"], warning=card["warning"])
    return 0


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _losses(folder: Path) -> list[dict]:
    path = folder / "progress.jsonl"
    steps = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        try:
            steps.append(json.loads(line))
        except ValueError:
            continue  # a line being written right now
    return steps


def run_status(run_id: str, home: str | Path | None = None) -> RunStatus:
    """The state of a run; a running run whose process is gone is reported (and saved) as failed."""
    folder = run_dir(run_id, home)
    if run_id in _CHILDREN:
        _CHILDREN[run_id].poll()  # reaps our own finished child
    status = json.loads((folder / "status.json").read_text(encoding="utf-8"))
    pid_file = folder / "pid"
    pid = status.get("pid") or (int(pid_file.read_text()) if pid_file.is_file() else None)
    if status["state"] in ACTIVE and pid and not _alive(pid):
        status = json.loads((folder / "status.json").read_text(encoding="utf-8"))  # it may have just finished
        if status["state"] in ACTIVE:
            status.update(state="failed", message="died",
                          finished=_now())
            _update_status(folder, **{k: status[k] for k in ("state", "message", "finished")})
    steps = _losses(folder)
    last = steps[-1] if steps else {}
    return RunStatus(run_id=run_id, state=status["state"], message=status.get("message", ""),
                     model=status.get("model"), metrics=status.get("metrics") or {}, warning=status.get("warning", ""),
                     started=status.get("started"), finished=status.get("finished"), pid=pid,
                     step=last.get("step", 0), total=last.get("total", 0), epoch=last.get("epoch", 0),
                     loss=last.get("loss"), eta_s=last.get("eta_s"),
                     losses=[(s["step"], s["loss"]) for s in steps],
                     config=json.loads((folder / "config.json").read_text(encoding="utf-8")))


def cancel_run(run_id: str, home: str | Path | None = None) -> None:
    """Ask a run to stop: it ends in state `cancelled` within a step, with no model saved."""
    (run_dir(run_id, home) / "cancel").touch()


def list_runs(home: str | Path | None = None) -> list[RunStatus]:
    """All runs, newest first."""
    root = runs_root(home)
    ids = sorted((p.parent.name for p in root.glob("*/config.json")), reverse=True) if root.is_dir() else []
    return [run_status(run_id, home) for run_id in ids]
