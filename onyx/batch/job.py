"""The batch job description, its summary, its errors, and the lazy imports of the extras."""

from __future__ import annotations

import dataclasses
import os
from types import ModuleType

from onyx.errors import FeedError, OnyxError, UnsupportedError


class BatchError(OnyxError):
    """A batch job cannot run: a bad source, output or column map, or a worker that keeps dying."""


class BadRowError(FeedError):
    """A row of the dataset does not fit the model (raised only with ``strict=True``)."""


@dataclasses.dataclass(frozen=True)
class BatchJob:
    """What to run over which data, written where: small, picklable, the same for every engine.

    ``columns`` maps each model input to the dataset column that feeds it; ``outputs`` names the
    model outputs to write (all when empty). Each worker runs ``runs`` batches at once (on
    threads sharing its session), each run on ``threads`` threads: workers x runs x threads
    should not exceed the cores. Shards are ``shard_size`` rows (a multiple of
    ``batch_size``); each is written as one part, so an interrupted job resumes at shard
    granularity.
    """

    model: str
    source: str
    output: str
    columns: tuple[tuple[str, str], ...]
    outputs: tuple[str, ...] = ()
    batch_size: int = 256
    shard_size: int = 4096
    runs: int = 1
    threads: int = 1
    strict: bool = False
    providers: tuple = ()  # names, or (name, sorted option pairs)

    @property
    def parts_dir(self) -> str:
        """Where finished shards wait, one Parquet part each, until the merge."""
        return self.output + ".parts"

    @property
    def errors_path(self) -> str:
        """The JSON-lines file of bad rows (``{"row": N, "error": "..."}``), next to the output."""
        return os.path.splitext(self.output)[0] + ".errors.jsonl"


@dataclasses.dataclass
class Progress:
    """How far a job is: rows written so far (skipped shards included) of ``rows_total``."""

    rows_done: int
    rows_total: int | None
    bad_rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows_done / self.seconds if self.seconds > 0 else 0.0


@dataclasses.dataclass
class Summary:
    """What a finished job did."""

    output: str
    rows: int
    bad_rows: int
    errors_path: str | None
    shards: int
    shards_skipped: int
    restarts: int
    engine: str
    workers: int
    runs: int
    threads: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        text = (
            f"{self.rows:,} rows in {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s), "
            f"engine {self.engine}, {self.workers} worker(s) x {self.runs} run(s) at once x "
            f"{self.threads} thread(s); "
            f"{self.shards} shards ({self.shards_skipped} already done)"
        )
        if self.restarts:
            text += f", {self.restarts} worker pool restart(s)"
        text += f"\nwrote {self.output}"
        if self.bad_rows:
            text += f"\n{self.bad_rows:,} bad rows, listed in {self.errors_path}"
        return text


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Batches run side by side, one thread each, beat one batch at a time on a session's threads:
# on 2 cores a whole job (bench_batch.py, 20,000 rows: "1 worker" against "1 worker, 1 run of 2
# threads") took 0.79-0.82x the time for a small transformer and 0.88-0.95x for a small CNN. A batch alone runs as fast either way (bench_batch.py
# --per-batch); side by side, one run's Python (its steps, a batch's decoding) overlaps the
# other's kernels. The runs of a process share its interpreter lock, so past a few cores more
# processes take them (a guess: not measured on more than 2 cores).
CORES_PER_WORKER = 4
# A worker process costs seconds before its first row (importing onyx and pyarrow, building the
# session, loading compiled kernels): a job gets more than one only with this many rows each.
ROWS_PER_WORKER = 50_000


def plan_workers(workers: int | None, runs: int | None, threads: int | None,
                 rows: int | None = None) -> tuple[int, int, int]:  # fmt: skip
    """Workers x runs at once per worker x threads per run that keep every core busy without
    oversubscribing them.

    By default one process runs a batch per core at once, each on one thread; a machine with
    more than ``CORES_PER_WORKER`` cores gets a worker per that many, as long as each has
    ``ROWS_PER_WORKER`` rows of the ``rows`` to do. What is given is kept; the rest fills the
    cores.
    """
    n = cores()
    for name, value in (("workers", workers), ("runs", runs), ("threads", threads)):
        if value is not None and value < 1:
            raise BatchError(f"{name}={value}: expected a positive number")
    if workers is None:
        both = runs is not None and threads is not None
        workers = max(1, n // (runs * threads if both else min(n, CORES_PER_WORKER)))
        if rows is not None:
            workers = max(1, min(workers, rows // ROWS_PER_WORKER))
    per_worker = max(1, n // workers)
    if threads is None:
        threads = max(1, per_worker // runs) if runs is not None else 1
    if runs is None:
        runs = max(1, per_worker // threads)
    return workers, runs, threads


def pyarrow() -> ModuleType:
    """The pyarrow module, or an error naming the extra that brings it."""
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError:
        raise UnsupportedError(
            "onyx.batch reads and writes datasets with pyarrow, which is not installed; "
            'install the batch extra: pip install "onyx[batch]"'
        ) from None
    return pyarrow


def ray() -> ModuleType:
    """The ray module with Ray Data, or an error naming the extra that brings it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise UnsupportedError(
            'engine="ray" needs Ray Data, which is not installed; install the ray extra: '
            'pip install "onyx[ray]"'
        ) from None
    return ray
