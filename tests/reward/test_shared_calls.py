"""The reward server's worker threads: concurrent requests share each call, within its size."""

import threading
import time

import pytest

from lightning_critrm.reward.shared_calls import SharedCalls


def test_requests_queued_during_a_call_share_the_next_one_within_max_items():
    calls, gate = [], threading.Event()

    def work(inputs):
        calls.append(list(inputs))
        gate.wait(10)
        return [x * 10 for x in inputs]

    shared = SharedCalls("test", work, max_items=5)
    first = shared.submit([1])  # runs at once and blocks on the gate...
    while not calls:
        pass
    queued = [shared.submit([2, 3]), shared.submit([4, 5]), shared.submit([6]), shared.submit([7, 8, 9])]
    gate.set()  # ...while four requests queue behind it
    assert first.result(10) == [10]
    assert [f.result(10) for f in queued] == [[20, 30], [40, 50], [60], [70, 80, 90]]
    # the queue is taken in order, up to 5 items a call: [2, 3, 4, 5, 6], then [7, 8, 9]
    assert calls == [[1], [2, 3, 4, 5, 6], [7, 8, 9]]
    assert (shared.calls, shared.largest_call) == (3, 5)
    shared.close()


def test_a_failing_call_fails_its_own_requests_only():
    def work(inputs):
        if -1 in inputs:
            raise ValueError("bad input")
        return inputs

    shared = SharedCalls("test", work, max_items=1)
    bad, good = shared.submit([-1]), shared.submit([2])
    with pytest.raises(ValueError, match="bad input"):
        bad.result(10)
    assert good.result(10) == [2]
    shared.close()


def test_a_failed_start_is_raised_by_wait_ready_and_refuses_work():
    def start():
        raise RuntimeError("no engine")

    shared = SharedCalls("test", lambda inputs: inputs, max_items=4, start=start)
    with pytest.raises(RuntimeError, match="no engine"):
        shared.wait_ready()
    with pytest.raises(RuntimeError, match="shutting down"):
        shared.submit([1])
    shared.close()


def test_close_serves_what_is_queued_and_leaves_the_context_in_the_worker_thread():
    from contextlib import contextmanager

    where = []

    @contextmanager
    def context():
        where.append(("enter", threading.current_thread().name))
        yield
        where.append(("exit", threading.current_thread().name))

    shared = SharedCalls("worker", lambda inputs: inputs, max_items=4, context=context)
    futures = [shared.submit([i]) for i in range(6)]
    shared.close()
    assert [f.result(0) for f in futures] == [[i] for i in range(6)]
    assert where == [("enter", "worker"), ("exit", "worker")]


def test_parallel_calls_start_at_once_and_their_number_can_come_from_the_context():
    from contextlib import contextmanager

    running, peak, lock, gate = [0], [0], threading.Lock(), threading.Event()

    def work(inputs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        gate.wait(10)
        with lock:
            running[0] -= 1
        return inputs

    @contextmanager
    def context():
        yield "three calls"

    shared = SharedCalls("test", work, max_items=10, context=context,
                         parallel=lambda held: 3 if held == "three calls" else 1)
    futures = []
    for i in range(3):  # each request starts its own call while the others run
        futures.append(shared.submit([i]))
        while shared.calls < i + 1:
            time.sleep(0.001)
    late = shared.submit([3])  # no slot free: it waits for one, then runs alone
    gate.set()
    assert [f.result(10) for f in [*futures, late]] == [[0], [1], [2], [3]]
    assert peak[0] == 3 and shared.calls == 4
    shared.close()
