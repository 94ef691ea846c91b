"""Batch inference: a dataset in, the same rows with the model's outputs out, as Parquet.

    import onyx.batch
    summary = onyx.batch.run("model.onnx", "images.parquet", "out.parquet", batch_size=64)
    summary = onyx.batch.run(..., engine="ray", ray_address="auto")   # on a Ray cluster

The local engine (the default) runs on this machine with workers x runs x threads filling the
cores: by default one session in this process running a batch per core at once, each on one
thread (a small job pays no process start-up; parts are written while the next shard runs), and
on machines with many cores and jobs with many rows, a pool of worker processes forked from a
preloaded server, each running its batches so; the Ray engine runs the same job with Ray
Data's ``map_batches`` on actors (``gpus_per_worker`` GPUs each). Both write the same file: the
input's other columns, then one column per model output, one row per input row (null outputs
for a bad row, whose number and reason go to ``OUTPUT``'s ``.errors.jsonl``). Shards finished by an interrupted run are not redone.
Needs the ``batch`` extra (pyarrow); the Ray engine the ``ray`` extra.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence

from onyx.batch.job import (
    BadRowError,
    BatchError,
    BatchJob,
    Progress,
    Summary,
    cores,
    plan_workers,
    pyarrow,
)

__all__ = ["BadRowError", "BatchError", "BatchJob", "Progress", "Summary", "cores", "run"]

ENGINES = ("local", "ray")


def run(
    model: str | os.PathLike,
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    batch_size: int = 256,
    columns: Mapping[str, str] | None = None,
    outputs: Sequence[str] = (),
    workers: int | None = None,
    runs: int | None = None,
    threads: int | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    strict: bool = False,
    shard_size: int | None = None,
    providers: Sequence[str | tuple[str, dict]] = (),
    gpus_per_worker: float = 0,
    progress: Callable[[Progress], None] | None = None,
) -> Summary:
    """Run ``model`` over every row of ``source`` and write ``output`` (Parquet); a Summary.

    ``columns`` maps model inputs to dataset columns (default: the column of the input's name,
    or the only column). Each of ``workers`` runs ``runs`` batches at once (threads sharing its
    session), each run on ``threads`` threads; what is not given fills this machine's cores
    (for Ray: ``workers`` actors of ``runs`` x ``threads`` CPUs each). ``strict`` stops at the
    first bad row with a BadRowError naming it. ``providers`` are the session's, as for ``InferenceSession``
    (names, or (name, options) pairs: ``[("TorchExecutionProvider", {"device": "cuda"})]``).
    ``gpus_per_worker`` is the GPUs Ray reserves for each actor (engine "ray"; may be a
    fraction). ``progress`` is called after every shard.
    """
    pyarrow()  # the extra is there, or an error that names it
    from onyx.batch import io
    from onyx.batch.codec import input_specs
    from onyx.serde import load

    if engine not in ENGINES:
        raise BatchError(f"engine {engine!r}: expected one of {ENGINES}")
    if batch_size < 1:
        raise BatchError(f"batch_size={batch_size}: expected a positive number")
    if gpus_per_worker < 0 or (gpus_per_worker and engine != "ray"):
        raise BatchError(
            f"gpus_per_worker={gpus_per_worker}: expected a number >= 0, and GPUs are reserved "
            "by the Ray engine only; the local engine runs on its providers' device, e.g. "
            "providers=[('TorchExecutionProvider', {'device': 'cuda'})]"
        )
    providers = tuple(_provider(p) for p in providers)
    model, source, output = os.fspath(model), os.fspath(source), os.fspath(output)
    if not os.path.isfile(model):
        raise BatchError(f"model {model!r} is not a file (workers load the model from a path)")
    data = io.open_source(source)
    graph = load(model).graph
    columns = _columns(graph, data.columns, dict(columns or {}))
    used = set(columns.values())
    names = list(outputs) or [v.name for v in graph.outputs]
    clash = [n for n in names if n in data.columns and n not in used]
    if clash:
        raise BatchError(f"output {clash[0]!r} has the name of a column of {source!r}; rename one")
    input_specs(graph, columns)  # fails here, once, on inputs that cannot be fed
    shard_size = shard_size or batch_size * max(1, 4096 // batch_size)
    if shard_size % batch_size:
        raise BatchError(f"shard_size={shard_size}: expected a multiple of batch_size={batch_size}")
    if runs is None and providers and _provider_name(providers[0]) == "TorchExecutionProvider":
        runs = 1  # torch runs a batch on all of its own threads (or on the GPU)
    asked = (runs, threads)
    rows = data.rows if engine == "local" else None
    planned, runs, threads = plan_workers(workers, runs, threads, rows)
    if data.rows is not None and planned > -(-data.rows // shard_size):  # a shard each at most
        planned, runs, threads = plan_workers(-(-data.rows // shard_size), *asked)
    workers = planned
    job = BatchJob(
        model=os.path.abspath(model), source=os.path.abspath(source),
        output=os.path.abspath(output),
        columns=tuple(sorted(columns.items())), outputs=tuple(outputs), batch_size=batch_size,
        shard_size=shard_size, runs=runs, threads=threads, strict=strict,
        providers=tuple(providers),
    )  # fmt: skip
    os.makedirs(os.path.dirname(job.output) or ".", exist_ok=True)
    finished = io.prepare_parts(job, _fingerprint(job))

    start = time.perf_counter()
    counts = {"rows": 0, "bad": 0, "shards": 0}

    def done(rows: int, bad: int) -> None:
        counts["rows"] += rows
        counts["bad"] += bad
        if progress is not None:
            progress(
                Progress(counts["rows"], data.rows, counts["bad"], time.perf_counter() - start)
            )

    def todo():
        shards = io.shards(data, shard_size)
        for shard, first_row, table in io.prefetch(shards) if engine == "local" else shards:
            counts["shards"] = shard + 1
            if shard in finished:
                done(table.num_rows, 0)
            else:
                yield shard, first_row, table

    if engine == "local":
        from onyx.batch.local import run_local

        # (a session built before the first shard is read, unless every shard is done)
        shards = None if data.rows is None else -(-data.rows // shard_size)
        build_early = shards is None or not finished.issuperset(range(shards))
        restarts = run_local(job, todo(), workers, done, build_early)
    else:
        from onyx.batch.ray_engine import run_ray

        restarts = run_ray(job, todo(), workers, done, ray_address, gpus_per_worker)
    if counts["shards"] == 0:
        raise BatchError(f"source {source!r} has no rows")
    rows, bad = io.merge(job, counts["shards"])
    return Summary(
        output=job.output, rows=rows, bad_rows=bad, errors_path=job.errors_path if bad else None,
        shards=counts["shards"], shards_skipped=len(finished & set(range(counts["shards"]))),
        restarts=restarts, engine=engine, workers=workers, runs=runs, threads=threads,
        seconds=time.perf_counter() - start,
    )  # fmt: skip


def _columns(graph, available: list[str], given: dict[str, str]) -> dict[str, str]:
    """Each model input's column: as given, else the column of its name, else the only column."""
    initialized = set(graph.initializers.values())
    inputs = [v.name for v in graph.inputs if v not in initialized]
    for name, column in given.items():
        if name not in inputs:
            raise BatchError(
                f"--column {name}={column}: the model has no input {name!r}; it has {inputs}"
            )
        if column not in available:
            raise BatchError(
                f"--column {name}={column}: the source has no column {column!r}; it has {available}"
            )
    columns = dict(given)
    for name in inputs:
        if name in columns:
            continue
        if name in available:
            columns[name] = name
        elif len(inputs) == 1 and len(available) == 1:
            columns[name] = available[0]
        elif len(inputs) == 1 and "image" in available:
            columns[name] = "image"
        else:
            raise BatchError(
                f"model input {name!r} has no column of its name in the source (columns "
                f"{available}); map one with columns={{{name!r}: COLUMN}} or --column {name}=COLUMN"
            )
    return columns


def _provider(entry):
    """A provider as a name, or (name, options) with the options as sorted pairs (hashable)."""
    if isinstance(entry, str):
        return entry
    if (isinstance(entry, tuple | list) and len(entry) == 2 and isinstance(entry[0], str)
            and isinstance(entry[1], Mapping)):  # fmt: skip
        return (entry[0], tuple(sorted(entry[1].items())))
    raise BatchError(f"provider {entry!r}: expected a name or a (name, options dict) pair")


def _provider_name(entry) -> str:
    return entry if isinstance(entry, str) else entry[0]


def _fingerprint(job: BatchJob) -> dict:
    """What must be the same for finished parts to be reused: the job and its files' stamps."""

    def stamp(path: str) -> list:
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns]

    fields = {k: v for k, v in vars(job).items() if k not in ("runs", "threads")}
    fields["columns"] = [list(c) for c in job.columns]
    fields["outputs"] = list(job.outputs)
    fields["providers"] = list(job.providers)
    fields["stamps"] = [stamp(job.model), stamp(job.source)]
    return json.loads(json.dumps(fields, default=str))  # as it reads back from job.json
