"""Dynamic micro-batching: items from concurrent requests share one model call.

A `MicroBatcher` owns one worker thread and a bounded queue of requests. Each request is a list of
items (texts); `submit` returns a `concurrent.futures.Future` of that request's results, in the
order of its items. The worker gathers the oldest queued items into a batch and calls
`run_batch(items) -> results` once for the whole batch, then hands each request its own slice:

    queue:  [r1: a b] [r2: c] [r3: d e f]          max_batch_size = 4
    batch:   a b c d            -> run_batch -> A B C D   r1 <- [A, B], r2 <- [C]
    batch:   e f                -> run_batch -> E F       r3 <- [D, E, F]

The window adapts to load. A request that arrives more than `max_wait` after the request before it
finds a quiet server and runs at once, so an idle request is never delayed. Otherwise requests are
coming close together, and a batch closes when it holds `max_batch_size` items, or `max_wait`
seconds after the arrival of its oldest item; under a steady load the oldest queued item has waited
longer than that by the time the worker is free, so batches follow one another without waiting
(a backlog runs at once). A request larger than the room left is split across batches and
reassembled in order. The model runs in the worker thread, off the caller's event loop; torch
releases the GIL inside its kernels, so the loop keeps parsing requests meanwhile (the batching idea
of Clipper, Crankshaw et al. 2017, sec. 4.3).

Batches are cut in arrival order, not from the queue sorted by length. Tried with 32 clients (about
144 texts in flight): batches cut from length-sorted drains of the queue carried fewer texts per
model call (46 against 62) and the server was no faster (-16%, -13% and +9% in three side-by-side
runs, where two identical servers differ by up to 11%); choosing each full batch as the
least-padded window of the sorted queue saved 1% of model time in-process. Too few texts are in
flight for sorting to pay (benchmarks/bench_serve.py, BENCHMARKS.md "Serving"). Within a batch,
`buckets` sorts the texts by token count anyway.

The queue is bounded in items: `submit` raises `QueueFull` when the items waiting (not yet handed to
`run_batch`) would exceed `max_queue`, so a server under overload answers "retry later" instead of
growing its memory and latency without bound.

One request's items must not fail another's: when a batch holding several requests raises, each
request's part is run again alone, so the error reaches only the request(s) whose items cause it
(a deterministic failure costs one extra call per request in that batch, once). `busy_for` says how
long the batch now running has run, so a server can report a model whose worker is stuck.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Callable, Generic, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class QueueFull(Exception):
    """The batcher's queue has no room for the request's items; try again later."""


class BatcherClosed(Exception):
    """The batcher is shutting down and takes no new requests."""


@dataclass
class BatcherStats:
    """Counters since start: requests accepted and refused, model calls, items run, largest batch."""

    requests: int = 0
    rejected: int = 0
    batches: int = 0
    items: int = 0
    largest_batch: int = 0


@dataclass(eq=False)
class _Request(Generic[Item, Result]):
    items: Sequence[Item]
    future: Future
    arrival: float  # time.monotonic() at submit
    alone: bool  # arrived more than max_wait after the request before it: runs without waiting
    taken: int = 0  # items already placed in a batch
    done: int = 0  # items whose results came back
    results: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.results = [None] * len(self.items)


@dataclass
class _Slice:
    request: _Request
    start: int
    stop: int


class MicroBatcher(Generic[Item, Result]):
    """Run `run_batch` over batches of items gathered from concurrent `submit` calls.

    Args:
        run_batch: items -> one result per item, in the same order; called in the worker thread only,
            so it needs no locking of its own. An exception fails only the requests whose items raise
            again when each request's part of the batch is run alone.
        max_batch_size: most items per `run_batch` call.
        max_wait: most seconds a batch waits for more items after its oldest item arrived; a request
            arriving more than `max_wait` after the one before it does not wait at all.
        max_queue: most items waiting to run; `submit` raises `QueueFull` beyond it.
        name: the worker thread's name (shown in tracebacks and thread dumps).
    """

    def __init__(self, run_batch: Callable[[list[Item]], Sequence[Result]], *, max_batch_size: int = 64,
                 max_wait: float = 0.005, max_queue: int = 1024, name: str = "micro-batcher") -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size={max_batch_size}: use 1 or more")
        if max_wait < 0:
            raise ValueError(f"max_wait={max_wait}: use 0 or more seconds")
        if max_queue < 1:
            raise ValueError(f"max_queue={max_queue}: use 1 or more")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.stats = BatcherStats()
        self._queue: deque[_Request] = deque()
        self._queued_items = 0  # items submitted and not yet handed to run_batch
        self._condition = threading.Condition()
        self._closing = False
        self._busy_since: float | None = None  # time.monotonic() when the batch now running began
        self._last_arrival = float("-inf")  # time.monotonic() of the latest submit
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)

    # --- caller side --------------------------------------------------------------------------

    def start(self) -> "MicroBatcher[Item, Result]":
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._closing

    @property
    def busy_for(self) -> float:
        """Seconds the batch now running has run; 0.0 while the worker waits for work."""
        since = self._busy_since  # one read: the worker may clear it meanwhile
        return 0.0 if since is None else time.monotonic() - since

    @property
    def queued(self) -> int:
        """Items waiting for the model now."""
        return self._queued_items

    def submit(self, items: Sequence[Item]) -> Future:
        """Queue `items`; the future's result is their results, in order.

        Raises:
            QueueFull: the queue cannot take `len(items)` more items now.
            BatcherClosed: `close` was called.
        """
        future: Future = Future()
        if not items:
            future.set_result([])
            return future
        with self._condition:
            if self._closing:
                raise BatcherClosed("the server is shutting down")
            if self._queued_items + len(items) > self.max_queue:
                self.stats.rejected += 1
                raise QueueFull(f"{self._queued_items} items are queued; the limit is {self.max_queue}")
            now = time.monotonic()
            alone, self._last_arrival = now - self._last_arrival > self.max_wait, now
            self._queue.append(_Request(items=items, future=future, arrival=now, alone=alone))
            self._queued_items += len(items)
            self.stats.requests += 1
            # Wake the worker only when it must act: it sleeps with no deadline on an empty queue,
            # and a full batch runs before its deadline. Waking it on every arrival cost GIL
            # handoffs between the event loop and the worker thread for nothing.
            if len(self._queue) == 1 or self._queued_items >= self.max_batch_size:
                self._condition.notify()
        return future

    def close(self, *, timeout: float | None = None) -> None:
        """Take no new requests, run every queued one (at once, without waiting out `max_wait`), stop."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- worker side --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)

    def _next_batch(self) -> list[_Slice] | None:
        """Block until a batch is due, then take it off the queue; None once closed and drained."""
        with self._condition:
            while True:
                while not self._queue and not self._closing:
                    self._condition.wait()
                if not self._queue:
                    return None  # closing, nothing left
                oldest = self._queue[0]
                deadline = oldest.arrival + (0.0 if oldest.alone else self.max_wait)
                while self._queued_items < self.max_batch_size and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._condition.wait(remaining)
                batch = self._take(self.max_batch_size)
                if batch:
                    return batch
                # every queued request had been cancelled: wait for the next one

    def _take(self, size: int) -> list[_Slice]:
        """Up to `size` items from the head of the queue, splitting the last request if needed."""
        batch: list[_Slice] = []
        room = size
        while room and self._queue:
            request = self._queue[0]
            if request.taken == 0 and not request.future.set_running_or_notify_cancel():
                self._drop(request)  # its caller went away (asyncio cancelled the wrapped future)
                continue
            if request.future.done():
                self._drop(request)  # an earlier part of it failed
                continue
            stop = min(len(request.items), request.taken + room)
            batch.append(_Slice(request, request.taken, stop))
            room -= stop - request.taken
            self._queued_items -= stop - request.taken
            request.taken = stop
            if stop == len(request.items):
                self._queue.popleft()
        return batch

    def _drop(self, request: _Request) -> None:
        self._queue.popleft()
        self._queued_items -= len(request.items) - request.taken

    def _run(self, batch: list[_Slice]) -> None:
        items = [item for part in batch for item in part.request.items[part.start : part.stop]]
        self.stats.batches += 1
        self.stats.items += len(items)
        self.stats.largest_batch = max(self.stats.largest_batch, len(items))
        try:
            results = self._call(items)
        except Exception as error:  # noqa: BLE001 - handed to the callers; the worker lives on
            if len(batch) == 1:  # one request's part (a request appears at most once in a batch)
                _settle(batch[0].request.future, error=error)
                return
            # Several requests shared the batch: run each one's part alone, so that a failing text
            # fails only its own request (the others' results are the same, batch-independent).
            for part in batch:
                self._run_alone(part)
            return
        position = 0
        for part in batch:
            count = part.stop - part.start
            self._deliver(part, results[position : position + count])
            position += count

    def _run_alone(self, part: _Slice) -> None:
        if part.request.future.done():  # an earlier part of the same request already failed
            return
        try:
            results = self._call(list(part.request.items[part.start : part.stop]))
        except Exception as error:  # noqa: BLE001
            _settle(part.request.future, error=error)
            return
        self._deliver(part, results)

    def _call(self, items: list) -> list:
        self._busy_since = time.monotonic()
        try:
            results = list(self.run_batch(items))
        finally:
            self._busy_since = None
        if len(results) != len(items):
            raise RuntimeError(f"run_batch returned {len(results)} results for {len(items)} items")
        return results

    def _deliver(self, part: _Slice, results: list) -> None:
        request = part.request
        request.results[part.start : part.stop] = results
        request.done += part.stop - part.start
        if request.done == len(request.items):
            _settle(request.future, result=request.results)


def _settle(future: Future, *, result=None, error: BaseException | None = None) -> None:
    """Complete `future` unless it already is (an earlier part of its request failed)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass
