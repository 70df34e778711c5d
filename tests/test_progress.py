from medsearch.progress import Steps


def test_steps_time_each_stage_and_estimate_the_time_left(monkeypatch):
    clock = iter([0.0, 1.0, 4.0, 10.0, 20.0, 30.0])
    monkeypatch.setattr("medsearch.progress.time.monotonic", lambda: next(clock))
    steps = Steps()  # 0.0
    steps("tokenize", 0, 50)  # 1.0
    steps("encode", 0, 100)  # 4.0: tokenizing ended when encoding began
    assert steps.steps[0].seconds(99) == 3.0 and steps.steps[0].ended == 4.0
    assert steps.current.left() is None  # no pace yet
    steps("encode", 10, 100)  # 10.0
    assert steps.current.left() == 54.0  # 6 s for 10, 90 to go
    steps("encode", 100, 100)  # 20.0
    assert steps.current.ended == 20.0 and steps.current.left() is None and len(steps.steps) == 2


def test_a_stage_interrupted_by_another_resumes_after_it(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 12.0, 14.0])
    monkeypatch.setattr("medsearch.progress.time.monotonic", lambda: next(clock))
    steps = Steps()
    steps("encode", 0, 100)  # 1.0
    steps("load model", 0, 1)  # 2.0
    steps("load model", 1, 1)  # 12.0
    steps("encode", 10, 100)  # 14.0
    assert [s.stage for s in steps.steps] == ["load model", "encode"] and steps.steps[0].seconds(99) == 10.0
    assert steps.current.started == 14.0 and steps.current.left() is None  # its pace starts after the load
