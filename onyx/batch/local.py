"""The local engine: one Predictor in this process, or a process pool with one per worker and a
bounded number of shards in flight.

Workers start from a forkserver that has imported onyx and pyarrow once; they read their shard
from a file this process writes (mapped, not pickled), write its part themselves and send back
counts only. A killed worker breaks a
``ProcessPoolExecutor`` for good (every pending future fails with ``BrokenProcessPool``), so the
engine builds a new pool and sends the shards whose parts are not on disk again; parts are renamed
into place whole, so no row is lost or written twice.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from onyx.batch import io
from onyx.batch.arrow import from_numpy
from onyx.batch.job import BatchError, BatchJob
from onyx.batch.predictor import ROW, Predictor

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")  # fmt: skip
MAX_RESTARTS = 3  # a shard in flight when the pool broke this many times is given up

_predictor: Predictor | None = None  # one per worker process, made by its first shard


def with_rows(table, first_row: int):
    """The shard's table with its rows' numbers in the dataset."""
    rows = from_numpy(np.arange(first_row, first_row + table.num_rows, dtype=np.int64))
    return table.append_column(ROW, rows)


def predict_shard(job: BatchJob, first_row: int, table):
    """This process's Predictor for ``job`` (made at its first shard) over one shard's rows."""
    global _predictor
    if _predictor is None or _predictor.job != job:
        _predictor = None  # the old session goes before the new one is built
        _predictor = Predictor(job)
    return _predictor(with_rows(table, first_row))


def run_shard(job: BatchJob, shard: int, first_row: int, path: str) -> tuple[int, int, int]:
    """In a worker: predict one shard, handed over as an Arrow IPC file at ``path`` (read
    mapped), and write its part. (shard, rows, bad rows)"""
    table = io.read_arrow(path)
    out = predict_shard(job, first_row, table)
    return shard, table.num_rows, io.write_part(job, shard, out)


def handed_path(job: BatchJob, shard: int) -> str:
    return os.path.join(job.parts_dir, "inputs", f"shard-{shard:06d}.arrow")


def hand_over(job: BatchJob, shard: int, table) -> str:
    """A shard for a worker, written as an Arrow IPC file beside the parts (a pickled shard
    went through a pipe, copied on each side: a CNN's 4,096 images are 50 MB)."""
    path = handed_path(job, shard)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    io.write_arrow(path, table)
    return path


def run_here(job: BatchJob, todo: Iterator, done: Callable[[int, int], None],
             build_early: bool = False) -> None:  # fmt: skip
    """Run the shards of ``todo`` in this process, writing each part while the next one runs.

    Parquet encoding releases the interpreter lock, so a writer thread fills the gaps the
    session leaves (its Python steps between kernels). ``done`` runs here, in shard order, once
    a part is on disk; at most one part waits to be written. With ``build_early`` the session
    is built by that thread while the first shards are read (its build, mostly numba's
    start-up, takes about 0.4 s on the 2-core machine: ``bench_batch.py --per-batch``).
    """
    from concurrent.futures import ThreadPoolExecutor

    predictor = None  # built for the first shard to run (none when all are done), freed at the end
    with ThreadPoolExecutor(1, thread_name_prefix="onyx-batch-writer") as writer:
        building = writer.submit(Predictor, job) if build_early else None
        pending: tuple[Future, int] | None = None
        try:
            for shard, first_row, table in todo:
                if predictor is None:
                    predictor = building.result() if building is not None else Predictor(job)
                out = predictor(with_rows(table, first_row))
                if pending is not None:
                    done(pending[1], pending[0].result())
                pending = writer.submit(io.write_part, job, shard, out), table.num_rows
            if pending is not None:
                done(pending[1], pending[0].result())
        except BaseException:
            if pending is not None:
                pending[0].cancel()
            raise


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


def run_local(job: BatchJob, todo: Iterator, workers: int, done: Callable[[int, int], None],
              build_early: bool = False) -> int:  # fmt: skip
    """Run the shards of ``todo`` on ``workers`` processes; ``done(rows, bad)`` after each.

    One worker runs in this process (no pool to start, nothing to pickle; ``build_early``: see
    ``run_here``). Returns the number of times the pool was rebuilt after a worker died.
    """
    if workers == 1:
        run_here(job, todo, done, build_early)
        return 0
    restarts = 0
    breaks: dict[int, int] = {}
    flying: dict[Future, tuple[int, int, object]] = {}
    retry: list[tuple[int, int, object]] = []
    limit = 2 * workers  # shards in flight: enough to keep every worker fed, few in memory
    context = _context()
    with thread_environment(job.threads):
        pool = _pool(workers, context, job.threads)
        try:
            source = iter(todo)
            exhausted = False
            while True:
                broken = False
                while len(flying) < limit and (retry or not exhausted):
                    if retry:
                        item = retry.pop(0)
                    else:
                        item = next(source, None)
                        if item is None:
                            exhausted = True
                            break
                    shard, first_row, table = item
                    path = hand_over(job, shard, table)
                    try:
                        flying[pool.submit(run_shard, job, shard, first_row, path)] = item
                    except BrokenProcessPool:  # (a worker died since the last wait)
                        retry.append(item)
                        broken = True
                        break
                if not flying and not broken:
                    break
                finished = () if broken else wait(flying, return_when=FIRST_COMPLETED)[0]
                for future in finished:
                    item = flying.pop(future)
                    try:
                        _, rows, bad = future.result()
                    except BrokenProcessPool:
                        broken = True
                        retry.append(item)
                        continue
                    os.remove(handed_path(job, item[0]))
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
                    pool = _pool(workers, context, job.threads)
                    restarts += 1
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            shutil.rmtree(os.path.join(job.parts_dir, "inputs"), ignore_errors=True)
    return restarts


def _context():
    """Workers forked from a server that has imported onyx and pyarrow once ("forkserver"), so
    each starts in milliseconds rather than importing them again; "spawn" where there is no
    forkserver (Windows). Never a fork of this process, whose threads could hold locks."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # what every worker needs, imported once (used when this process starts its server)
    context.set_forkserver_preload([__name__, "onyx.runtime.session", "onyx.batch.predictor",
                                    "pyarrow.parquet", "pyarrow.compute"])  # fmt: skip
    return context


def _pool(workers: int, context, threads: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                               initargs=(threads,))  # fmt: skip


def _start_worker(threads: int) -> None:
    """In a new worker: ``threads`` for every math library (a forkserver's environment is the
    one it started with, maybe for another job)."""
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(threads)


def _finished(job: BatchJob, item, done: Callable[[int, int], None]) -> bool:
    """A shard whose worker died after renaming its part into place is done."""
    shard, _, table = item
    if not os.path.exists(io.part_path(job, shard)):
        return False
    done(table.num_rows, len(io.part_errors(io.part_path(job, shard))))
    return True
