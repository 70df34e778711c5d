from medsearch.progress import Eta


def test_eta_estimates_time_left(monkeypatch):
    clock = iter([0.0, 10.0, 20.0])
    monkeypatch.setattr("medsearch.progress.time.monotonic", lambda: next(clock))
    eta = Eta()
    assert eta("encode", 0, 100) == "encode: 0/100"
    assert eta("encode", 10, 100) == "encode: 10/100 · about 90 s left"
    assert eta("encode", 20, 100) == "encode: 20/100 · about 80 s left"
