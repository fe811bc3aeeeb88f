"""Dynamic micro-batching: items from concurrent requests share model calls, in length-sorted batches.

A `MicroBatcher` owns one worker thread and a bounded queue of requests. Each request is a list of
items (texts); `submit` returns a `concurrent.futures.Future` of that request's results, in the
order of its items. When a batch is due, the worker drains the queue (whole requests, oldest first,
up to `drain_limit` items), sorts the drained items by length (`length`: characters of a text) and
cuts them into batches of at most `max_batch_size`, which it runs one after another, each with one
`run_batch(items) -> results` call. Each request gets its results once all its items have run:

    queue:  [r1: ccc a] [r2: bbbb] [r3: dd eeeee]      max_batch_size = 3
    drain:  a dd ccc | bbbb eeeee       (sorted by length, cut into batches of 3)
    calls:  run_batch([a, dd, ccc]) -> A DD CCC;  run_batch([bbbb, eeeee]) -> BBBB EEEEE
    r1 <- [CCC, A] (after the first call), r2 <- [BBBB], r3 <- [DD, EEEEE] (after the second)

Why sort the whole drain: an LSTM batch runs every row to its longest row, so a batch cut from
arrival order (texts of 2 to 128 tokens side by side) is mostly padding, or splits into many small
length buckets that each pay the per-step overhead (`buckets`). Under load the queue holds many
requests, and batches cut from their sorted texts are nearly as uniform as `predict`'s, which sorts
all its texts first. Requests drained together finish before any later request starts (the drains
run in order), so sorting never starves a long text.

When a drain is due (the window adapts to load): a request that arrives more than `max_wait` after
the request before it finds a quiet server and runs at once, so an idle request is never delayed.
Otherwise requests are coming close together, and the drain waits for company until the queue holds
a full batch, at most `max_wait` seconds after its oldest request arrived. Under a steady load the
queue fills while the previous drain runs and its oldest request has waited longer than that, so
drains follow one another without waiting; after a quiet spell, a burst is gathered for up to
`max_wait` from its second request on. The model runs in the worker thread, off the caller's event
loop; torch releases the GIL inside its kernels, so the loop keeps parsing requests meanwhile (the
batching idea of Clipper, Crankshaw et al. 2017, sec. 4.3).

The queue is bounded in items: `submit` raises `QueueFull` when the items waiting (not yet handed to
`run_batch`) would exceed `max_queue`, so a server under overload answers "retry later" instead of
growing its memory and latency without bound.

One request's items must not fail another's: when a batch holding several requests raises, each
request's part is run again alone, so the error reaches only the request(s) whose items cause it
(a deterministic failure costs one extra call per request in that batch, once); a failed request's
items in later batches are not run. `busy_for` says how long the batch now running has run, so a
server can report a model whose worker is stuck.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

DRAIN_BATCHES = 4  # default `drain_limit`: this many full batches (the sort's gain levels off past it)


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


def text_length(item: Any) -> int:
    """An item's sort key: the characters of a text, or of the text in a `(text, settings)` item; 0
    for anything else (such items keep their arrival order)."""
    if isinstance(item, str):
        return len(item)
    if isinstance(item, tuple) and item and isinstance(item[0], str):
        return len(item[0])
    return 0


@dataclass(eq=False)
class _Request(Generic[Item, Result]):
    items: Sequence[Item]
    future: Future
    arrival: float  # time.monotonic() at submit
    number: int  # arrival order
    alone: bool  # arrived more than max_wait after the request before it: runs without waiting
    left: int = 0  # items whose results have not come back
    results: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.left = len(self.items)
        self.results = [None] * len(self.items)


_Part = tuple[_Request, int]  # one item of a batch: its request and its index there


class MicroBatcher(Generic[Item, Result]):
    """Run `run_batch` over length-sorted batches of items gathered from concurrent `submit` calls.

    Args:
        run_batch: items -> one result per item, in the same order; called in the worker thread only,
            so it needs no locking of its own. An exception fails only the requests whose items raise
            again when each request's part of the batch is run alone.
        max_batch_size: most items per `run_batch` call.
        max_wait: most seconds a drain waits for a full batch after its oldest request arrived; a
            request arriving more than `max_wait` after the one before it does not wait at all.
        max_queue: most items waiting to run; `submit` raises `QueueFull` beyond it.
        name: the worker thread's name (shown in tracebacks and thread dumps).
        length: an item's sort key (default `text_length`); items of equal length keep their order.
        drain_limit: most items one drain takes (whole requests, at least one); default
            `DRAIN_BATCHES` full batches. Later requests wait for the next drain.
    """

    def __init__(self, run_batch: Callable[[list[Item]], Sequence[Result]], *, max_batch_size: int = 64,
                 max_wait: float = 0.005, max_queue: int = 1024, name: str = "micro-batcher",
                 length: Callable[[Item], int] = text_length, drain_limit: int | None = None) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size={max_batch_size}: use 1 or more")
        if max_wait < 0:
            raise ValueError(f"max_wait={max_wait}: use 0 or more seconds")
        if max_queue < 1:
            raise ValueError(f"max_queue={max_queue}: use 1 or more")
        drain_limit = DRAIN_BATCHES * max_batch_size if drain_limit is None else drain_limit
        if drain_limit < 1:
            raise ValueError(f"drain_limit={drain_limit}: use 1 or more")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.length = length
        self.drain_limit = drain_limit
        self.stats = BatcherStats()
        self._last_arrival = float("-inf")  # time.monotonic() of the latest submit
        self._queue: deque[_Request] = deque()  # submitted, not drained yet
        self._ready: deque[list[_Part]] = deque()  # batches of the last drain, not run yet
        self._queued_items = 0  # items submitted and not yet handed to run_batch (queue + ready)
        self._numbers = itertools.count()
        self._condition = threading.Condition()
        self._closing = False
        self._busy_since: float | None = None  # time.monotonic() when the batch now running began
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
            alone = now - self._last_arrival > self.max_wait
            self._last_arrival = now
            self._queue.append(_Request(items=items, future=future, arrival=now, number=next(self._numbers), alone=alone))
            self._queued_items += len(items)
            self.stats.requests += 1
            # Wake the worker only when it must act: it sleeps with no deadline on an empty queue, and
            # a full batch runs before its deadline. Waking it on every arrival cost GIL handoffs
            # between the event loop and the worker thread for nothing.
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

    def _next_batch(self) -> list[_Part] | None:
        """Block until a batch is due, then hand it out; None once closed and drained."""
        with self._condition:
            while True:
                if self._ready:
                    batch = self._ready.popleft()
                    self._queued_items -= len(batch)
                    return batch
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
                self._drain()  # every drained request may have been cancelled: then wait again

    def _drain(self) -> None:
        """Move the oldest requests (up to `drain_limit` items) into `_ready`, as length-sorted batches."""
        parts: list[_Part] = []
        while self._queue and (not parts or len(parts) + len(self._queue[0].items) <= self.drain_limit):
            request = self._queue.popleft()
            if not request.future.set_running_or_notify_cancel():
                self._queued_items -= len(request.items)  # its caller went away (asyncio cancelled the future)
                continue
            parts.extend((request, index) for index in range(len(request.items)))
        if not parts:
            return
        parts.sort(key=lambda part: self.length(part[0].items[part[1]]))  # stable: ties keep arrival order
        size = self.max_batch_size
        self._ready.extend(parts[start : start + size] for start in range(0, len(parts), size))

    def _run(self, batch: list[_Part]) -> None:
        live = [part for part in batch if not part[0].future.done()]  # a failed request's items are not run
        if not live:
            return
        self.stats.batches += 1
        self.stats.items += len(live)
        self.stats.largest_batch = max(self.stats.largest_batch, len(live))
        try:
            results = self._call([request.items[index] for request, index in live])
        except Exception as error:  # noqa: BLE001 - handed to the callers; the worker lives on
            requests = sorted({request for request, _ in live}, key=lambda request: request.number)
            if len(requests) == 1:
                _settle(requests[0].future, error=error)
                return
            # Several requests shared the batch: run each one's part alone, so that a failing text
            # fails only its own request (the others' results are the same, batch-independent).
            for request in requests:
                self._run_alone([part for part in live if part[0] is request])
            return
        self._deliver(live, results)

    def _run_alone(self, parts: list[_Part]) -> None:
        request = parts[0][0]
        try:
            results = self._call([request.items[index] for _, index in parts])
        except Exception as error:  # noqa: BLE001
            _settle(request.future, error=error)
            return
        self._deliver(parts, results)

    def _call(self, items: list) -> list:
        self._busy_since = time.monotonic()
        try:
            results = list(self.run_batch(items))
        finally:
            self._busy_since = None
        if len(results) != len(items):
            raise RuntimeError(f"run_batch returned {len(results)} results for {len(items)} items")
        return results

    def _deliver(self, parts: list[_Part], results: list) -> None:
        for (request, index), result in zip(parts, results):
            request.results[index] = result
            request.left -= 1
            if request.left == 0:
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
