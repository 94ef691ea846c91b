"""One loaded model that maps a table of rows to the same rows with the model's outputs.

Ray Data's callable-class shape (load in ``__init__``, one batch per ``__call__``); the local
process pool holds one per worker process too.
"""

from __future__ import annotations

import numpy as np

from onyx import dtypes
from onyx.batch import codec
from onyx.batch.arrow import from_numpy, to_numpy
from onyx.batch.job import BadRowError, BatchError, BatchJob, pyarrow
from onyx.errors import OnyxError
from onyx.ir import TensorType

ROW = "_row"  # the row's number in the whole dataset (from 0), added by the engines
SHARD = "_shard"  # the shard the row belongs to
ERROR = "_error"  # why the row could not run (null when it ran)
INTERNAL = (ROW, SHARD, ERROR)


class Predictor:
    """A session over ``job.model``, mapping a ``pyarrow.Table`` of rows to the output rows: a
    table of several batches runs ``job.runs`` of them at once, on threads sharing the
    session."""

    def __init__(self, job: BatchJob):
        from onyx.runtime.session import InferenceSession, SessionOptions

        options = SessionOptions()
        if hasattr(options, "intra_op_num_threads"):  # a session-owned pool, where there is one
            options.intra_op_num_threads = job.threads
        self.job = job
        providers = [p if isinstance(p, str) else (p[0], dict(p[1])) for p in job.providers]
        self.session = InferenceSession(job.model, options, providers=providers or None)
        self._runs = None
        if job.runs > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._runs = ThreadPoolExecutor(job.runs, thread_name_prefix="onyx-batch-run")
        graph = self.session.model.graph
        self.specs = codec.input_specs(graph, dict(job.columns))
        declared = {v.name: v for v in graph.outputs}
        self.outputs = list(job.outputs) or list(declared)
        self.types = {}
        for name in self.outputs:
            v = declared.get(name)
            if v is None:
                raise BatchError(f"model has no output {name!r}; it has {list(declared)}")
            if not isinstance(v.type, TensorType):
                raise BatchError(
                    f"model output {name!r} has type {v.type}; onyx.batch writes tensors"
                )
            rank = None if v.type.shape is None else max(len(v.type.shape) - 1, 0)
            self.types[name] = codec.arrow_type(dtypes.to_numpy(v.type.dtype), rank)

    def __call__(self, table):
        """The rows of ``table`` with their input columns replaced by the model's outputs.

        The table's columns are decoded and its outputs encoded once; its good rows run in
        batches of ``job.batch_size`` rows (of one sample shape each), ``job.runs`` at once."""
        pa = pyarrow()
        n = table.num_rows
        rows = to_numpy(table.column(ROW)) if ROW in table.column_names else np.arange(n)
        columns = [codec.decode(table.column(s.column), s) for s in self.specs]
        bad: dict[int, str] = {}
        for spec, col in zip(self.specs, columns):
            for i, why in col.bad.items():
                bad.setdefault(i, f"input {spec.name!r} (column {spec.column!r}): {why}")
        if bad and self.job.strict:
            i = min(bad)
            raise BadRowError(f"row {rows[i]}: {bad[i]}")
        good = np.array([i not in bad for i in range(n)], bool) if bad else np.ones(n, bool)
        size = self.job.batch_size
        batches = [  # (table rows, sample shapes) of each batch, grouped by shape
            (group[i : i + size], shapes)
            for group, shapes in self._groups(columns, good)
            for i in range(0, len(group), size)
        ]

        def run(batch) -> list[tuple[np.ndarray, list]]:  # (batch rows, outputs) per run
            group, shapes = batch
            feeds = {
                s.name: codec.gather(c, group, shp)
                for s, c, shp in zip(self.specs, columns, shapes)
            }
            try:
                return [(group, self.session.run(self.outputs, feeds))]
            except OnyxError as e:
                return self._one_by_one(group, columns, shapes, rows, bad, e)

        if self._runs is not None and len(batches) > 1:
            done = list(self._runs.map(run, batches))  # (in order; the first error raised)
        else:
            done = [run(batch) for batch in batches]
        results = [result for batch_results in done for result in batch_results]
        out = table.drop_columns([s.column for s in self.specs if s.column in table.column_names])
        order = np.concatenate([g for g, _ in results] + [np.array(sorted(bad), np.int64)])
        in_order = np.array_equal(order, np.arange(n))
        inverse = None if in_order else from_numpy(np.argsort(order, kind="stable"))
        for k, name in enumerate(self.outputs):
            arrays = [codec.encode(values[k]) for _, values in results]
            target = arrays[0].type if arrays else self.types[name]
            arrays = [a if a.type == target else a.cast(target) for a in arrays]
            arrays.append(pa.nulls(len(bad), target))
            column = pa.concat_arrays(arrays)
            out = out.append_column(name, column if in_order else column.take(inverse))
        if bad:
            errors = pa.array([bad.get(i) for i in range(n)], pa.string())
        else:
            errors = pa.nulls(n, pa.string())
        return out.append_column(ERROR, errors)

    def _groups(self, columns, good):
        """Good rows grouped by the shapes of their samples (one group unless lists are ragged)."""
        if not good.any():
            return
        key = np.concatenate([c.shapes for c in columns], axis=1)
        sizes = [c.shapes.shape[1] for c in columns]
        idx = np.flatnonzero(good)
        keys, inverse = np.unique(key[idx], axis=0, return_inverse=True)
        for j, k in enumerate(keys):
            split = np.split(k, np.cumsum(sizes)[:-1])
            yield idx[inverse.reshape(-1) == j], [tuple(int(d) for d in s) for s in split]

    def _one_by_one(self, group, columns, shapes, rows, bad, error):
        """After a failing batch: run its rows alone, so only the rows that fail are bad (into
        ``bad``, which the batches running at once share: each adds its own rows)."""
        done = []
        for i in group:
            feeds = {
                s.name: codec.gather(c, np.array([i]), shp)
                for s, c, shp in zip(self.specs, columns, shapes)
            }
            try:
                done.append((np.array([i]), self.session.run(self.outputs, feeds)))
            except OnyxError as e:
                if self.job.strict:
                    raise BadRowError(f"row {rows[i]}: {type(e).__name__}: {e}") from None
                bad[int(i)] = f"{type(e).__name__}: {e}"
        return done
