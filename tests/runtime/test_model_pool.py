"""The shared model pool: batching across sessions and fault isolation.

The ASR engine here is a fake on purpose: it injects delays and failures.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from streamserver.core.asr import AsrJob
from streamserver.runtime import ModelPool


class FaultyAsr:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.fail_next = False
        self.lock = threading.Lock()

    def transcribe_batch(self, items: list[tuple[np.ndarray, str]]) -> list[list[Any]]:
        with self.lock:
            self.batches.append(len(items))
            fail, self.fail_next = self.fail_next, False
        time.sleep(0.05)
        if fail:
            raise RuntimeError("injected model failure")
        return [[f"words-{a.size}"] for a, _ in items]


class FakeEngines:
    def __init__(self) -> None:
        self.asr = FaultyAsr()

    def run_job(self, job: Any) -> Any:
        return []


def job(i: int) -> AsrJob:
    return AsrJob(i, 0, 100 * i, np.zeros(100 * i, dtype=np.float32), "", False)


def test_waiting_jobs_are_batched_into_one_call() -> None:
    engines = FakeEngines()
    pool = ModelPool(engines, workers=1)  # type: ignore[arg-type]

    async def go() -> list[Any]:
        first = asyncio.create_task(pool.run(job(1)))
        await asyncio.sleep(0.01)  # the first batch is running now
        rest = [asyncio.create_task(pool.run(job(i))) for i in (2, 3, 4)]
        return await asyncio.gather(first, *rest)

    results = asyncio.run(go())
    pool.shutdown()
    assert engines.asr.batches == [1, 3]
    # Each session gets its own result back.
    assert results == [["words-100"], ["words-200"], ["words-300"], ["words-400"]]


def test_a_failing_batch_fails_its_jobs_and_the_pool_carries_on() -> None:
    engines = FakeEngines()
    pool = ModelPool(engines, workers=1)  # type: ignore[arg-type]
    engines.asr.fail_next = True

    async def go() -> tuple[list[Any], Any]:
        failed = await asyncio.gather(pool.run(job(1)), return_exceptions=True)
        ok = await pool.run(job(2))
        return failed, ok

    failed, ok = asyncio.run(go())
    pool.shutdown()
    assert isinstance(failed[0], RuntimeError)
    assert ok == ["words-200"]


def test_cancelled_session_does_not_break_the_batch() -> None:
    engines = FakeEngines()
    pool = ModelPool(engines, workers=1)  # type: ignore[arg-type]

    async def go() -> Any:
        blocker = asyncio.create_task(pool.run(job(1)))
        await asyncio.sleep(0.01)
        gone = asyncio.create_task(pool.run(job(2)))
        kept = asyncio.create_task(pool.run(job(3)))
        await asyncio.sleep(0)
        gone.cancel()
        await blocker
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept

    assert asyncio.run(go()) == ["words-300"]
    pool.shutdown()


def test_has_room_only_while_a_slot_is_free_and_nothing_waits() -> None:
    engines = FakeEngines()
    pool = ModelPool(engines, workers=1)  # type: ignore[arg-type]

    async def go() -> list[bool]:
        seen = [pool.has_room]
        first = asyncio.create_task(pool.run(job(1)))
        await asyncio.sleep(0.01)
        seen.append(pool.has_room)  # the only slot is busy
        await first
        seen.append(pool.has_room)
        return seen

    assert asyncio.run(go()) == [True, False, True]
    pool.shutdown()


def test_a_freed_worker_pulls_early_passes_from_idle_sessions_into_its_batch() -> None:
    engines = FakeEngines()
    pool = ModelPool(engines, workers=1, max_batch=3)  # type: ignore[arg-type]
    asked: list[str] = []
    pulled: list[str] = []  # one pass each: then they wait for their results

    def source(name: str, size: int | None) -> Any:
        def pull() -> Any:
            asked.append(name)
            if size is None or name in pulled:  # nothing new enough to transcribe
                return None
            pulled.append(name)
            fut = asyncio.get_running_loop().create_future()
            return job(size), fut
        return pull

    async def go() -> list[Any]:
        futures: list[Any] = []
        for name, size in (("idle", None), ("a", 5), ("b", 6), ("c", 7)):
            src = source(name, size)

            def keep(src: Any = src) -> Any:
                item = src()
                if item is not None:
                    futures.append(item[1])
                return item
            pool.add_pass_source(hash(name), keep)
        first = await pool.run(job(1))  # a worker was free: this one ran alone first
        return [first, *await asyncio.gather(*futures)]

    results = asyncio.run(go())
    pool.shutdown()
    # Starting the first batch already asked every source; the batch had room for
    # two more (a, b). When it finished, the freed worker pulled c: nobody waited.
    assert engines.asr.batches[0] == 3
    assert results[0] == ["words-100"]
    assert sorted(r[0] for r in results[1:]) == ["words-500", "words-600", "words-700"]
    assert pool.pulled_passes == 3


def test_pulling_is_round_robin_so_no_session_waits_behind_the_others() -> None:
    engines = FakeEngines()
    pool = ModelPool(engines, workers=1, max_batch=1)  # type: ignore[arg-type]
    pulled: list[int] = []
    futures: list[Any] = []

    def source(i: int) -> Any:
        def pull() -> Any:
            if pulled.count(i) == 2:  # two passes each, then idle
                return None
            pulled.append(i)
            futures.append(asyncio.get_running_loop().create_future())
            return job(i), futures[-1]
        return pull

    async def go() -> None:
        for i in (1, 2, 3):
            pool.add_pass_source(i, source(i))
        pool._start_batches(asyncio.get_running_loop())  # a worker is free
        while len(pulled) < 6 or not all(f.done() for f in futures):
            await asyncio.sleep(0.01)

    asyncio.run(go())
    pool.shutdown()
    # One pass per batch; each freed worker asks the session after the last one
    # it served first, so the three take turns.
    assert pulled == [1, 2, 3, 1, 2, 3]
    assert engines.asr.batches == [1] * 6
