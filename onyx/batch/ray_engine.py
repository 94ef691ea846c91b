"""The Ray engine: the same job on Ray Data, ``map_batches`` over actors that hold a Predictor.

Ray Data does not keep row order, so every row carries its shard and row number; rows are
gathered per shard, put back in order and written as the same parts the local engine writes.
Actors get their thread count in the environment (Ray sets OMP_NUM_THREADS to 1 by default).
The model path must be readable from every node of the cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from onyx.batch import io
from onyx.batch.job import BadRowError, BatchJob, pyarrow, ray
from onyx.batch.local import THREAD_VARIABLES, with_rows
from onyx.batch.predictor import ERROR, ROW, SHARD, Predictor


def run_ray(job: BatchJob, todo: Iterator, workers: int, done: Callable[[int, int], None],
            address: str | None = None, gpus: float = 0) -> int:  # fmt: skip
    """Run the shards of ``todo`` with ``workers`` Ray actors of ``job.runs`` x ``job.threads``
    CPUs and ``gpus`` GPUs each (Ray sets each actor's CUDA_VISIBLE_DEVICES to the GPUs it
    got); an actor is handed ``job.runs`` batches at a time, which its Predictor runs at once."""
    ray_ = ray()
    pa = pyarrow()
    started = not ray_.is_initialized()
    if started:
        ray_.init(address=address, include_dashboard=False, log_to_driver=False,
                  configure_logging=False)  # fmt: skip
    try:
        refs, sizes = [], {}
        for shard, first_row, table in todo:
            table = with_rows(table, first_row)
            table = table.append_column(SHARD, pa.array(np.full(table.num_rows, shard, np.int64)))
            refs.append(ray_.put(table))
            sizes[shard] = table.num_rows
        if not refs:
            return 0
        context = ray_.data.DataContext.get_current()
        context.enable_progress_bars = False
        env = dict.fromkeys(THREAD_VARIABLES, str(job.threads))
        data = ray_.data.from_arrow_refs(refs).map_batches(
            Predictor, fn_constructor_kwargs={"job": job}, batch_size=job.batch_size * job.runs,
            batch_format="pyarrow", concurrency=workers, num_cpus=job.runs * job.threads,
            num_gpus=gpus or None, runtime_env={"env_vars": env},
        )  # fmt: skip
        pending: dict[int, list] = {}
        for batch in data.iter_batches(batch_format="pyarrow", batch_size=None):
            if job.strict and batch.column(ERROR).null_count < batch.num_rows:
                errors = np.asarray(batch.column(ERROR).is_valid())
                i = int(np.flatnonzero(errors)[0])
                raise BadRowError(
                    f"row {batch.column(ROW)[i].as_py()}: {batch.column(ERROR)[i].as_py()}"
                )
            shard_ids = np.asarray(batch.column(SHARD))
            for shard in np.unique(shard_ids):
                part = batch.filter(pa.array(shard_ids == shard))
                pending.setdefault(int(shard), []).append(part)
                got = pending[int(shard)]
                if sum(t.num_rows for t in got) == sizes[int(shard)]:
                    table = pa.concat_tables(got).sort_by(ROW)
                    del pending[int(shard)]
                    done(table.num_rows, io.write_part(job, int(shard), table))
        return 0
    finally:
        if started:
            ray_.shutdown()
