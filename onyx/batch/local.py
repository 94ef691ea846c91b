"""The local engine: a process pool, one Predictor per worker, a bounded number of shards in flight.

Workers write their shard's part themselves and send back counts only. A killed worker breaks a
``ProcessPoolExecutor`` for good (every pending future fails with ``BrokenProcessPool``), so the
engine builds a new pool and sends the shards whose parts are not on disk again; parts are renamed
into place whole, so no row is lost or written twice.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from onyx.batch import io
from onyx.batch.job import BatchError, BatchJob, pyarrow
from onyx.batch.predictor import ROW, Predictor

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")  # fmt: skip
MAX_RESTARTS = 3  # a shard in flight when the pool broke this many times is given up

_predictor: Predictor | None = None  # one per worker process, made by its first shard


def with_rows(table, first_row: int):
    """The shard's table with its rows' numbers in the dataset."""
    pa = pyarrow()
    return table.append_column(ROW, pa.array(np.arange(first_row, first_row + table.num_rows)))


def run_shard(job: BatchJob, shard: int, first_row: int, table) -> tuple[int, int, int]:
    """In a worker: predict one shard and write its part. (shard, rows, bad rows)"""
    global _predictor
    if _predictor is None or _predictor.job != job:
        _predictor = Predictor(job)
    out = _predictor(with_rows(table, first_row))
    return shard, table.num_rows, io.write_part(job, shard, out)


@contextlib.contextmanager
def thread_environment(threads: int):
    """Workers started inside see ``threads`` for every math library's thread pool."""
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_local(job: BatchJob, todo: Iterator, workers: int, done: Callable[[int, int], None]) -> int:
    """Run the shards of ``todo`` on ``workers`` processes; ``done(rows, bad)`` after each.

    One worker runs in this process (no pool to start, nothing to pickle). Returns the number of
    times the pool was rebuilt after a worker died.
    """
    if workers == 1:
        for shard, first_row, table in todo:
            _, rows, bad = run_shard(job, shard, first_row, table)
            done(rows, bad)
        return 0
    restarts = 0
    breaks: dict[int, int] = {}
    flying: dict[Future, tuple[int, int, object]] = {}
    retry: list[tuple[int, int, object]] = []
    limit = 2 * workers  # shards in flight: enough to keep every worker fed, few in memory
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    with thread_environment(job.threads):
        pool = ProcessPoolExecutor(workers, mp_context=context)
        try:
            source = iter(todo)
            exhausted = False
            while True:
                while len(flying) < limit and (retry or not exhausted):
                    if retry:
                        item = retry.pop(0)
                    else:
                        item = next(source, None)
                        if item is None:
                            exhausted = True
                            break
                    flying[pool.submit(run_shard, job, *item)] = item
                if not flying:
                    break
                finished, _ = wait(flying, return_when=FIRST_COMPLETED)
                broken = False
                for future in finished:
                    item = flying.pop(future)
                    try:
                        _, rows, bad = future.result()
                    except BrokenProcessPool:
                        broken = True
                        retry.append(item)
                        continue
                    done(rows, bad)
                if broken:
                    retry.extend(flying.values())
                    flying.clear()
                    retry.sort(key=lambda it: it[0])
                    retry = [it for it in retry if not _finished(job, it, done)]
                    for shard, first_row, table in retry:
                        breaks[shard] = breaks.get(shard, 0) + 1
                        if breaks[shard] >= MAX_RESTARTS:
                            last = first_row + table.num_rows - 1
                            raise BatchError(
                                f"shard {shard} (rows {first_row}..{last}) was running each of "
                                f"the {MAX_RESTARTS} times a worker died (workers that die at "
                                "start: a script that runs onyx.batch with several workers "
                                "needs `if __name__ == '__main__':` around it)"
                            )
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = ProcessPoolExecutor(workers, mp_context=context)
                    restarts += 1
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return restarts


def _finished(job: BatchJob, item, done: Callable[[int, int], None]) -> bool:
    """A shard whose worker died after renaming its part into place is done."""
    shard, _, table = item
    if not os.path.exists(io.part_path(job, shard)):
        return False
    import json

    meta = pyarrow().parquet.read_schema(io.part_path(job, shard)).metadata or {}
    done(table.num_rows, len(json.loads(meta.get(b"onyx.errors", b"[]"))))
    return True
