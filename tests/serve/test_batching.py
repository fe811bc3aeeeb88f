"""The micro-batcher alone: results back in order, batches up to the maximum, the adaptive window, a
full queue, errors, close. No assertion reads a clock: where a test checks that nothing waited out
`max_wait`, the window is 60 s and the result is due long before."""

import threading

import pytest

from nlp_lstm.serve.batching import BatcherClosed, MicroBatcher, QueueFull


class Recorder:
    """A batch function that remembers every batch it ran; results are `f"<{item}>"`."""

    def __init__(self, *, gate: threading.Event | None = None):
        self.batches: list[list] = []
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, items):
        self.batches.append(list(items))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        return [f"<{item}>" for item in items]


@pytest.fixture
def batchers():
    made = []

    def make(run, **settings):
        batcher = MicroBatcher(run, **settings).start()
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.close(timeout=10)


def test_concurrent_requests_each_get_their_own_results_in_order(batchers):
    recorder = Recorder()
    batcher = batchers(recorder, max_batch_size=8, max_wait=0.05)
    requests = [[f"r{r}-t{t}" for t in range(1 + r % 5)] for r in range(40)]  # 1..5 items each
    results: dict[int, list] = {}
    barrier = threading.Barrier(len(requests))

    def client(index):
        barrier.wait()
        results[index] = batcher.submit(requests[index]).result(timeout=30)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for index, items in enumerate(requests):
        assert results[index] == [f"<{item}>" for item in items]
    ran = [item for batch in recorder.batches for item in batch]
    assert sorted(ran) == sorted(item for items in requests for item in items)  # each item ran exactly once
    assert max(len(batch) for batch in recorder.batches) <= 8
    assert len(recorder.batches) < len(requests)  # concurrent requests shared model calls


def test_queued_requests_fill_batches_up_to_the_maximum_splitting_the_last(batchers):
    gate = threading.Event()
    recorder = Recorder(gate=gate)
    batcher = batchers(recorder, max_batch_size=4, max_wait=0.0)
    first = batcher.submit(["a"])
    assert recorder.entered.wait(10)  # the worker is busy with ["a"]: the rest queue up behind it
    second, third, fourth = batcher.submit(["b", "c"]), batcher.submit(["d", "e", "f"]), batcher.submit(["g"])
    gate.set()
    assert first.result(10) == ["<a>"]
    assert second.result(10) == ["<b>", "<c>"]
    assert third.result(10) == ["<d>", "<e>", "<f>"]  # split over two batches, reassembled in order
    assert fourth.result(10) == ["<g>"]
    assert recorder.batches == [["a"], ["b", "c", "d", "e"], ["f", "g"]]


def test_a_request_larger_than_a_batch_runs_in_several(batchers):
    recorder = Recorder()
    batcher = batchers(recorder, max_batch_size=3, max_wait=0.0)
    items = list(range(8))
    assert batcher.submit(items).result(10) == [f"<{i}>" for i in items]
    assert recorder.batches == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_an_idle_lone_request_runs_at_once_not_after_max_wait(batchers):
    recorder = Recorder()
    batcher = batchers(recorder, max_batch_size=64, max_wait=60.0)
    assert batcher.submit(["x", "y"]).result(timeout=20) == ["<x>", "<y>"]  # far sooner than the 60 s window
    assert recorder.batches == [["x", "y"]]


def test_a_request_close_behind_another_waits_for_a_full_batch(batchers):
    recorder = Recorder()
    batcher = batchers(recorder, max_batch_size=4, max_wait=60.0)
    assert batcher.submit(["a"]).result(20) == ["<a>"]  # the first after a quiet spell: at once
    second, third = batcher.submit(["b", "c"]), batcher.submit(["d"])  # within 60 s of the one before
    assert not second.done() and not third.done()  # waiting for company (a full batch, or 60 s)
    fourth = batcher.submit(["e"])  # 4 items queued: a full batch runs now
    assert [second.result(20), third.result(20), fourth.result(20)] == [["<b>", "<c>"], ["<d>"], ["<e>"]]
    assert recorder.batches == [["a"], ["b", "c", "d", "e"]]


def test_a_full_queue_refuses_requests_until_it_drains(batchers):
    gate = threading.Event()
    recorder = Recorder(gate=gate)
    batcher = batchers(recorder, max_batch_size=8, max_wait=0.0, max_queue=3)
    running = batcher.submit(["a"])
    assert recorder.entered.wait(10)  # taken off the queue: it no longer counts
    queued = [batcher.submit(["b", "c"]), batcher.submit(["d"])]
    assert batcher.queued == 3
    with pytest.raises(QueueFull):
        batcher.submit(["e"])
    assert batcher.stats.rejected == 1 and batcher.stats.requests == 3
    gate.set()
    assert running.result(10) == ["<a>"] and [f.result(10) for f in queued] == [["<b>", "<c>"], ["<d>"]]
    assert batcher.submit(["e", "f", "g"]).result(10) == ["<e>", "<f>", "<g>"]  # room again


def test_an_error_fails_only_its_batch_and_the_worker_goes_on(batchers):
    def run(items):
        if "bad" in items:
            raise ValueError("cannot run 'bad'")
        return [item.upper() for item in items]

    batcher = batchers(run, max_batch_size=2, max_wait=0.0)
    with pytest.raises(ValueError, match="cannot run 'bad'"):
        batcher.submit(["ok", "bad", "later", "parts"]).result(10)  # first part fails: the whole request fails
    assert batcher.submit(["fine"]).result(10) == ["FINE"]


def test_a_failed_requests_later_batches_are_not_run(batchers):
    calls = []

    def run(items):
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("cannot run 'bad'")
        return [item.upper() for item in items]

    batcher = batchers(run, max_batch_size=2, max_wait=0.0)
    with pytest.raises(ValueError, match="cannot run 'bad'"):
        batcher.submit(["bad", "ok", "longer", "longest"]).result(10)
    assert batcher.submit(["fine"]).result(10) == ["FINE"]
    assert calls == [["bad", "ok"], ["fine"]]  # "longer", "longest" (the next batch) were never run


def test_a_wrong_number_of_results_is_an_error_not_a_silent_mismatch(batchers):
    batcher = batchers(lambda items: items[:-1], max_batch_size=4, max_wait=0.0)
    with pytest.raises(RuntimeError, match="1 results for 2 items"):
        batcher.submit(["a", "b"]).result(10)


def test_a_cancelled_request_is_never_run(batchers):
    gate = threading.Event()
    recorder = Recorder(gate=gate)
    batcher = batchers(recorder, max_batch_size=8, max_wait=0.0)
    batcher.submit(["a"])
    assert recorder.entered.wait(10)
    abandoned = batcher.submit(["gone"])
    assert abandoned.cancel()  # what asyncio.wrap_future does when the awaiting request is cancelled
    kept = batcher.submit(["kept"])
    gate.set()
    assert kept.result(10) == ["<kept>"]
    assert recorder.batches == [["a"], ["kept"]]


def test_close_runs_what_is_queued_at_once_then_refuses_new_work():
    gate = threading.Event()
    recorder = Recorder(gate=gate)
    batcher = MicroBatcher(recorder, max_batch_size=8, max_wait=60.0, name="closing-batcher").start()
    first = batcher.submit(["a"])
    assert recorder.entered.wait(10)
    second, third = batcher.submit(["b"]), batcher.submit(["c"])
    closing = threading.Thread(target=batcher.close, kwargs={"timeout": 30})
    closing.start()
    gate.set()
    closing.join(30)
    assert first.result(0) == ["<a>"] and second.result(0) == ["<b>"] and third.result(0) == ["<c>"]  # drained, not dropped
    assert recorder.batches == [["a"], ["b", "c"]]
    assert "closing-batcher" not in [thread.name for thread in threading.enumerate()]
    assert not batcher.running
    with pytest.raises(BatcherClosed):
        batcher.submit(["d"])


def test_close_wakes_a_batch_waiting_out_its_window():
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch_size=8, max_wait=60.0, name="waiting-batcher").start()
    assert batcher.submit(["first"]).result(20) == ["<first>"]
    second = batcher.submit(["second"])  # close behind the first: waits for company
    batcher.close(timeout=30)  # far sooner than the 60 s window
    assert second.result(0) == ["<second>"]
    assert not batcher.running


def test_an_empty_request_needs_no_model_call(batchers):
    recorder = Recorder()
    batcher = batchers(recorder)
    assert batcher.submit([]).result(0) == []
    assert recorder.batches == []


@pytest.mark.parametrize("settings", [{"max_batch_size": 0}, {"max_wait": -1.0}, {"max_queue": 0}])
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValueError):
        MicroBatcher(lambda items: items, **settings)
