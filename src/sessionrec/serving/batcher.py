"""A dynamic batcher: concurrent requests share one forward pass (asyncio, bounded wait).

Requests queue up while a forward pass runs on the single model thread; the next pass takes
every queued request (up to `max_batch` sessions). With `max_wait_ms > 0` the batcher also
waits up to that long after the first queued request for more to arrive; with
`max_batch = 1` every request gets its own forward pass (batching off).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

TopK = list[list[tuple[int, float]]]
ForwardFn = Callable[[list[list[int]], int, list[list[int]]], TopK]


@dataclass
class _Job:
    sessions: list[list[int]]
    k: int
    exclude: list[list[int]]
    future: asyncio.Future
    arrived: float


@dataclass
class BatcherStats:
    """Counts since start: forward passes, requests and sessions they served."""

    batches: int = 0
    requests: int = 0
    sessions: int = 0
    largest: int = 0
    forward_seconds: float = 0.0  # time inside the forward passes (model thread)
    sizes: dict[int, int] = field(default_factory=dict)


class DynamicBatcher:
    """Merge concurrent `submit` calls into calls of `forward(sessions, k, exclude)`."""

    def __init__(
        self,
        forward: ForwardFn,
        max_batch: int = 64,
        max_wait_ms: float = 0.0,
        threaded: bool = True,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_ms >= 0")
        self.forward, self.max_batch, self.max_wait = forward, max_batch, max_wait_ms / 1000
        self.threaded = threaded
        self.on_batch = on_batch  # told each pass's session count (GET /metrics)
        self.stats = BatcherStats()
        self._jobs: deque[_Job] = deque()
        self._pending = 0
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._passing = False  # a forward pass is running or its results are being handed out

    async def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._ready, self._full = asyncio.Event(), asyncio.Event()
        if self.threaded:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="sessionrec-forward")
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop; requests still queued fail with RuntimeError."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    async def drain(self) -> None:
        """Answer everything already submitted, then stop (a hot reload's old batcher)."""
        while self._jobs or self._passing:
            await asyncio.sleep(0.002)
        await self.stop()

    async def submit(
        self, sessions: list[list[int]], k: int, exclude: Sequence[list[int]] | None = None
    ) -> TopK:
        """Top-k internal (item, score) pairs for each of `sessions` (prepared, non-empty)."""
        if self._task is None:
            raise RuntimeError("the batcher is not running (call start() first)")
        loop = asyncio.get_running_loop()
        exclude = list(exclude or [])
        exclude += [[] for _ in range(len(sessions) - len(exclude))]
        job = _Job(sessions, k, exclude, loop.create_future(), loop.time())
        self._jobs.append(job)
        self._pending += len(sessions)
        self._ready.set()
        if self._pending >= self.max_batch:
            self._full.set()
        return await job.future

    def _take(self) -> list[_Job]:
        """The jobs of the next forward pass: at least one, at most `max_batch` sessions."""
        jobs = [self._jobs.popleft()]
        n = len(jobs[0].sessions)
        while self._jobs and n + len(self._jobs[0].sessions) <= self.max_batch:
            jobs.append(self._jobs.popleft())
            n += len(jobs[-1].sessions)
        self._pending -= n
        if self._pending < self.max_batch:
            self._full.clear()
        if not self._jobs:
            self._ready.clear()
        return jobs

    def _run(self, jobs: list[_Job]) -> list[TopK]:
        """One forward pass for all `jobs` (on the model thread), split back per job."""
        sessions = [s for j in jobs for s in j.sessions]
        exclude = [e for j in jobs for e in j.exclude]
        t0 = time.perf_counter()
        top = self.forward(sessions, max(j.k for j in jobs), exclude)
        self.stats.forward_seconds += time.perf_counter() - t0
        out, start = [], 0
        for j in jobs:
            out.append([row[: j.k] for row in top[start : start + len(j.sessions)]])
            start += len(j.sessions)
        return out

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._executor is None:  # inline: let requests read meanwhile reach the queue
                for _ in range(3):
                    await asyncio.sleep(0)
            await self._ready.wait()
            if self.max_wait > 0 and self._pending < self.max_batch:
                remaining = self._jobs[0].arrived + self.max_wait - loop.time()
                if remaining > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._full.wait(), remaining)
            jobs = self._take()
            self._passing = True
            try:
                results = await self._call(jobs)
            except Exception as e:
                results = await self._one_by_one(jobs, e)
            for job, result in zip(jobs, results, strict=True):
                if result is not None and not job.future.done():
                    job.future.set_result(result)
            self._passing = False
            self._record(jobs)

    async def _call(self, jobs: list[_Job]) -> list[TopK]:
        if self._executor is None:  # inline: the event loop waits for the pass
            return self._run(jobs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, jobs)

    async def _one_by_one(self, jobs: list[_Job], error: Exception) -> list[TopK | None]:
        """After a failed merged pass, run each job alone so one bad request fails alone."""
        out: list[TopK | None] = []
        for job in jobs:
            try:
                if len(jobs) == 1:
                    raise error
                out.append((await self._call([job]))[0])
            except Exception as e:
                if not job.future.done():
                    job.future.set_exception(e)
                out.append(None)
        return out

    def _record(self, jobs: list[_Job]) -> None:
        n = sum(len(j.sessions) for j in jobs)
        s = self.stats
        s.batches += 1
        s.requests += len(jobs)
        s.sessions += n
        s.largest = max(s.largest, n)
        s.sizes[n] = s.sizes.get(n, 0) + 1
        if self.on_batch is not None:
            self.on_batch(n)
