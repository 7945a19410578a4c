"""One worker per stage of the reward server, whose every call serves all the requests queued since
the previous call started: concurrent requests share each critic batch and each forward pass."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Optional, Union


class SharedCalls:
    """Runs ``work(inputs) -> outputs`` (one output per input, in order) on the inputs of every request
    queued when a call starts, at most ``max_items`` at a time (a request is never split here: callers
    submit chunks), and at most ``parallel`` calls at once. With one call at a time, what a request
    submitted while a call runs waits for is that call, not the queue behind it; with more, a request
    starts its call at once while a slot is free (a backend that overlaps calls, such as vLLM's async
    engine, then batches them itself).

    Args:
        name: The worker thread's name.
        work: The batched function. An exception fails the requests of that call only.
        max_items: Most inputs per call (a single larger submission runs alone).
        context: Entered in the worker thread before its first call and left after its last, so
            what it holds (a vLLM engine) lives as long as the worker.
        start: Run in the thread, inside ``context``, before serving; :meth:`wait_ready` raises
            what it raised.
        parallel: Most calls running at once, or a function of what ``context`` yielded (the
            backend it built) that says so.
    """

    def __init__(self, name: str, work: Callable[[list], Sequence], max_items: int,
                 context: Callable[[], AbstractContextManager] = nullcontext,
                 start: Optional[Callable[[], Any]] = None,
                 parallel: Union[int, Callable[[Any], int]] = 1):
        self.work, self.max_items, self.context, self.start = work, max_items, context, start
        self.parallel = parallel
        self.calls = 0
        self.largest_call = 0
        self._pending: deque[tuple[list, Future]] = deque()
        self._condition = threading.Condition()
        self._closing = False
        self._ready: Future = Future()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def wait_ready(self) -> None:
        """Block until ``start`` has run; raise what it raised."""
        self._ready.result()

    def submit(self, inputs: list) -> Future:
        future: Future = Future()
        if not inputs:
            future.set_result([])
            return future
        with self._condition:
            if self._closing:
                raise RuntimeError(f"{self._thread.name} is shutting down")
            self._pending.append((list(inputs), future))
            self._condition.notify()
        return future

    async def call(self, inputs: list) -> list:
        return await asyncio.wrap_future(self.submit(inputs))

    def close(self) -> None:
        """Serve what is queued, then stop the thread (leaving ``context``)."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        self._thread.join()

    def _run(self) -> None:
        try:
            with self.context() as held:
                if self.start is not None:
                    self.start()
                slots = self.parallel(held) if callable(self.parallel) else self.parallel
                self._ready.set_result(None)
                free = threading.Semaphore(slots)
                # Leaving the pool waits for the calls still running, before the context closes.
                with ThreadPoolExecutor(slots, thread_name_prefix=self._thread.name) as pool:
                    while free.acquire() and (taken := self._take()) is not None:
                        pool.submit(self._serve, taken, free)
        except BaseException as err:  # a failed start, or the context failing to close
            if not self._ready.done():
                self._ready.set_exception(err)
            self._fail_pending(err)

    def _take(self) -> Optional[list[tuple[list, Future]]]:
        with self._condition:
            while not self._pending and not self._closing:
                self._condition.wait()
            if not self._pending:
                return None
            taken = [self._pending.popleft()]
            size = len(taken[0][0])
            while self._pending and size + len(self._pending[0][0]) <= self.max_items:
                size += len(self._pending[0][0])
                taken.append(self._pending.popleft())
            return taken

    def _serve(self, taken: list[tuple[list, Future]], free: threading.Semaphore) -> None:
        inputs = [x for entry, _ in taken for x in entry]
        with self._condition:
            self.calls += 1
            self.largest_call = max(self.largest_call, len(inputs))
        try:
            outputs = list(self.work(inputs))
        except Exception as err:
            for _, future in taken:
                future.set_exception(err)
            return
        finally:
            free.release()
        start = 0
        for entry, future in taken:
            future.set_result(outputs[start : start + len(entry)])
            start += len(entry)

    def _fail_pending(self, err: BaseException) -> None:
        with self._condition:
            self._closing = True
            while self._pending:
                self._pending.popleft()[1].set_exception(err)
