"""Background training runs: followed to the end, cancelled, noticed dead; the registry of tuned models."""

import os
import signal
import time

import pytest

from medsearch.collection import BuildOptions, Collection
from medsearch.records import Document, MedSearchError
from medsearch.registry import delete_model, list_models, model_path, trained_card
from medsearch.rerank import list_rerankers, load_reranker
from medsearch.runs import cancel_run, list_runs, run_status, start_run
from medsearch.training import TrainConfig
from tests.test_training import ZH, ZH_PAIRS
from tests.tiny_models import tiny_bert


def wait(run_id: str, home, until, timeout: float = 90.0):
    """Poll a run's status until `until(status)` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run_status(run_id, home)
        if until(status):
            return status
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} stuck: {run_status(run_id, home)}; log: "
                         f"{(home / '.runs' / run_id / 'log.txt').read_text()[-2000:]}")


def test_run_is_followed_to_a_registered_model_usable_in_a_collection(tmp_path):
    config = TrainConfig(base="static", epochs=8, batch_size=8, static_dim=64, held_out=0.2, name="zh-run")
    run_id = start_run(ZH_PAIRS, config, corpus=[p for _, p in ZH], home=tmp_path)
    assert run_status(run_id, tmp_path).state in ("queued", "running")
    status = wait(run_id, tmp_path, lambda s: s.state not in ("queued", "running"))
    assert status.state == "done", status.message
    assert status.model == "zh-run" and status.total == status.step == len(status.losses) > 0
    assert status.losses[-1][1] < status.losses[0][1] and set(status.metrics) == {"base", "tuned"}
    assert [r.run_id for r in list_runs(tmp_path)] == [run_id]

    [card] = list_models(tmp_path)
    assert card["name"] == "zh-run" and card["baseline"] == "bm25" and card["n_held_out"] == 5
    for key in ("base", "loss", "params", "n_train", "metrics", "wins", "losses", "ties", "warning", "seconds",
                "created", "languages"):
        assert key in card
    folder = str(model_path("zh-run", tmp_path))
    docs = [Document(f"d{i}", p) for i, (_, p) in enumerate(ZH)]
    collection = Collection.create("zh", docs, BuildOptions(models=[]), home=tmp_path).add_model(folder)
    hits = collection.search(ZH[0][0], 3, "dense", folder)
    assert hits and hits[0].doc_id == "d0"
    delete_model("zh-run", tmp_path)
    assert list_models(tmp_path) == []


@pytest.mark.parametrize("family", ["cross-encoder", "colbert"])
def test_reranker_runs_join_the_servers_rerankers(tmp_path, family):
    """A reranker family trains in the background too, is compared with BM25 on the held-out queries (it reorders
    BM25's top hits there) and lands among the server's rerankers, which Search and Compare offer."""
    words = [w for q, p in ZH for w in (q, p)]
    base = tiny_bert(tmp_path / "base", words)
    config = TrainConfig(base=str(base), family=family, epochs=2, batch_size=8, learning_rate=1e-3, held_out=0.2,
                         name=f"zh-{family}")
    run_id = start_run(ZH_PAIRS, config, home=tmp_path)
    status = wait(run_id, tmp_path, lambda s: s.state not in ("queued", "running"), timeout=180)
    assert status.state == "done", status.message
    assert set(status.metrics) == {"base", "tuned"} and status.total == status.step > 0
    assert list_rerankers(tmp_path) == [f"zh-{family}"] and list_models(tmp_path) == []
    card = trained_card(f"zh-{family}", tmp_path, reranker=True)
    assert card["baseline"] == "bm25" and card["note"] == "reranker_vs_bm25" and card["family"] == family
    assert card["loss"] == ("bce" if family == "cross-encoder" else "mnrl-maxsim") and card["n_held_out"] == 5
    reranker = load_reranker(f"zh-{family}", tmp_path)
    assert (type(reranker).__name__ == "ColbertReranker") == (family == "colbert")
    with pytest.raises(MedSearchError, match="A reranker named"):
        start_run(ZH_PAIRS, config, home=tmp_path)


@pytest.fixture(autouse=True)
def stop_runs(tmp_path):
    """Cancel whatever run a failed test left behind."""
    yield
    for status in list_runs(tmp_path):
        cancel_run(status.run_id, tmp_path)


def test_cancelled_run_registers_nothing(tmp_path):
    config = TrainConfig(base="static", epochs=2000, batch_size=4, static_dim=64, name="never")
    run_id = start_run(ZH_PAIRS, config, home=tmp_path)
    wait(run_id, tmp_path, lambda s: s.step > 0)
    cancel_run(run_id, tmp_path)
    status = wait(run_id, tmp_path, lambda s: s.state != "running", timeout=10)
    assert status.state == "cancelled" and "cancelled" in status.message
    assert list_models(tmp_path) == [] and not (tmp_path / ".runs" / run_id / "model").exists()


def test_dead_training_process_is_reported(tmp_path):
    run_id = start_run(ZH_PAIRS, TrainConfig(base="static", epochs=2000, batch_size=4, name="dies"), home=tmp_path)
    status = wait(run_id, tmp_path, lambda s: s.step > 0)
    os.kill(status.pid, signal.SIGKILL)
    status = wait(run_id, tmp_path, lambda s: s.state != "running", timeout=10)
    assert status.state == "failed" and "died" in status.message


def test_names_are_checked(tmp_path):
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(MedSearchError):
            model_path(bad, tmp_path)
    with pytest.raises(MedSearchError, match="no fine-tuned model"):
        delete_model("missing", tmp_path)
    with pytest.raises(MedSearchError, match="no training run"):
        run_status("nope", tmp_path)
