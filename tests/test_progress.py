from medsearch.progress import Eta


def test_eta_estimates_time_left(monkeypatch):
    clock = iter([0.0, 10.0, 20.0])
    monkeypatch.setattr("medsearch.progress.time.monotonic", lambda: next(clock))
    eta = Eta()
    assert eta("encode", 0, 100) == "encode: 0/100"
    assert eta("encode", 10, 100) == "encode: 10/100 · about 90 s left"
    assert eta("encode", 20, 100) == "encode: 20/100 · about 80 s left"


def test_eta_speaks_chinese(monkeypatch):
    clock = iter([0.0, 10.0, 30.0])
    monkeypatch.setattr("medsearch.progress.time.monotonic", lambda: next(clock))
    eta = Eta("zh")
    eta("encode", 0, 300)
    assert eta("encode", 100, 300) == "encode: 100/300 · 约剩 20 秒"
    assert eta("encode", 120, 2000) == "encode: 120/2000 · 约剩 8 分钟"
