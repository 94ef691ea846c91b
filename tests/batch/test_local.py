"""The local engine against a plain onnxruntime loop; killed workers; resume; bad rows; sources."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import numpy as np
import pytest
from batch_helpers import cnn_model, column, ort_loop, pa, pq, samples, write_parquet

import onyx.batch
from onyx.batch import BadRowError, BatchError


def check_against_ort(model, out_path, xs, batch_size=32):
    out = pq.read_table(out_path)
    y, s = ort_loop(model, {"x": xs}, batch_size)
    assert out.column_names == ["id", "y", "s"]
    assert out.column("id").to_pylist() == list(range(len(xs)))  # every row once, in order
    np.testing.assert_allclose(column(out, "y"), y.astype(np.float64), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(column(out, "s"), s.astype(np.float64), rtol=1e-5, atol=1e-5)
    return out


@pytest.mark.parametrize(
    "workers, runs", [(1, 1), (1, 3), pytest.param(2, 2, marks=pytest.mark.slow)]
)
def test_local_engine_equals_onnxruntime_loop(tmp_path, mlp, workers, runs):
    xs = samples(1000)
    src = write_parquet(tmp_path / "in.parquet", xs)
    out = tmp_path / "out.parquet"
    summary = onyx.batch.run(mlp, src, out, batch_size=32, shard_size=128, workers=workers,
                             runs=runs)  # fmt: skip
    assert (summary.rows, summary.bad_rows, summary.shards, summary.workers, summary.runs) == (
        1000,
        0,
        8,
        workers,
        runs,
    )
    table = check_against_ort(mlp, out, xs)
    column_encodings = pq.ParquetFile(out).metadata.row_group(0).column
    assert "RLE_DICTIONARY" in column_encodings(0).encodings  # id: as pyarrow writes it
    assert "RLE_DICTIONARY" not in column_encodings(1).encodings  # y's floats: plain
    assert pa.types.is_list(table.schema.field("y").type)
    assert table.schema.field("s").type == pa.float32()  # a per-sample scalar is a number
    assert not os.path.exists(str(out) + ".parts")
    assert not os.path.exists(tmp_path / "out.errors.jsonl")


@pytest.mark.slow
@pytest.mark.parametrize("noticed", [False, True])
def test_killed_worker_is_replaced_and_no_row_is_lost_or_doubled(tmp_path, mlp, noticed):
    """A worker killed mid-run: its shards run again on a new pool. ``noticed``: the pool has
    seen the death before the next shard is handed to it (its submit then raises, which once
    failed the run: a race CI hit)."""
    xs = samples(2000)
    src = write_parquet(tmp_path / "in.parquet", xs)
    out = tmp_path / "out.parquet"
    killed = []

    def kill_one(progress):
        if progress.rows_done >= 200 and not killed:
            child = multiprocessing.active_children()[0]
            os.kill(child.pid, signal.SIGKILL)
            killed.append(child.pid)
            if noticed:
                time.sleep(1.0)  # (the executor's manager thread marks the pool broken)

    summary = onyx.batch.run(mlp, src, out, batch_size=16, shard_size=16, workers=2,
                             progress=kill_one)  # fmt: skip
    assert killed and summary.restarts >= 1
    assert summary.rows == 2000
    check_against_ort(mlp, out, xs, batch_size=16)


def test_interrupted_run_resumes_without_redoing_finished_shards(tmp_path, mlp):
    xs = samples(1000)
    src = write_parquet(tmp_path / "in.parquet", xs)
    out = tmp_path / "out.parquet"

    def stop(progress):
        if progress.rows_done >= 300:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        onyx.batch.run(mlp, src, out, batch_size=50, shard_size=100, workers=1, progress=stop)
    parts = sorted(os.listdir(str(out) + ".parts"))
    assert parts == ["job.json"] + [f"part-{k:06d}.arrow" for k in range(3)]
    assert not out.exists()
    computed = []
    summary = onyx.batch.run(mlp, src, out, batch_size=50, shard_size=100, workers=1,
                             progress=lambda p: computed.append(p.rows_done))  # fmt: skip
    assert (summary.shards, summary.shards_skipped, summary.rows) == (10, 3, 1000)
    check_against_ort(mlp, out, xs, batch_size=50)


def test_the_session_is_built_beside_the_first_read_and_not_when_all_is_done(tmp_path, mlp,
                                                                            monkeypatch):  # fmt: skip
    """One session, built in the writer thread while the reader reads the first shard; a
    resume whose shards are all on disk (interrupted before the merge) builds none."""
    from onyx.batch import local

    built = []
    plain = local.Predictor

    def counted(job):
        import threading

        built.append(threading.current_thread().name)
        return plain(job)

    monkeypatch.setattr(local, "Predictor", counted)
    xs = samples(400)
    src = write_parquet(tmp_path / "in.parquet", xs)
    out = tmp_path / "out.parquet"

    def stop(progress):
        if progress.rows_done == 400:  # every part written, the merge not yet
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        onyx.batch.run(mlp, src, out, batch_size=50, shard_size=100, workers=1, progress=stop)
    assert len(built) == 1 and built[0].startswith("onyx-batch-writer")
    summary = onyx.batch.run(mlp, src, out, batch_size=50, shard_size=100, workers=1)
    assert (summary.shards_skipped, len(built)) == (4, 1)
    check_against_ort(mlp, out, xs)


def test_a_changed_job_does_not_reuse_parts(tmp_path, mlp):
    xs = samples(400)
    src = write_parquet(tmp_path / "in.parquet", xs)
    out = tmp_path / "out.parquet"

    def stop(progress):
        if progress.rows_done >= 200:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        onyx.batch.run(mlp, src, out, batch_size=50, shard_size=100, workers=1, progress=stop)
    summary = onyx.batch.run(mlp, src, out, batch_size=25, shard_size=100, workers=1)
    assert summary.shards_skipped == 0
    check_against_ort(mlp, out, xs)


def test_bad_rows_are_reported_with_their_numbers_and_the_rest_runs(tmp_path, mlp):
    xs = samples(300)
    rows = [v.tolist() for v in xs]
    rows[5] = [[1.0, 2.0]]  # 1 x 2, expected 2 x 3
    rows[7] = [[1.0, 2.0, 3.0], [1.0, 2.0]]  # ragged
    rows[9] = None
    rows[250] = [[1.0, None, 3.0], [1.0, 2.0, 3.0]]
    pq.write_table(pa.table({"id": np.arange(300), "x": rows}), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    summary = onyx.batch.run(mlp, tmp_path / "in.parquet", out, batch_size=32, workers=1)
    assert summary.bad_rows == 4 and summary.rows == 300
    with open(summary.errors_path) as f:
        errors = [json.loads(line) for line in f]
    assert [e["row"] for e in errors] == [5, 7, 9, 250]
    assert "dim 0 is 1" in errors[0]["error"] and "ragged" in errors[1]["error"]
    assert "null" in errors[2]["error"] and "null" in errors[3]["error"]
    table = pq.read_table(out)
    y = column(table, "y")
    bad = [5, 7, 9, 250]
    assert np.isnan(y[bad]).all()
    good = np.setdiff1d(np.arange(300), bad)
    (ref, _) = ort_loop(mlp, {"x": xs[good]}, 32)
    np.testing.assert_allclose(y[good], ref.astype(np.float64), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("runs", [1, 3])
def test_strict_stops_at_the_first_bad_row(tmp_path, mlp, runs):
    xs = samples(100)
    rows = [v.tolist() for v in xs]
    rows[42] = [[1.0, 2.0, 3.0]]
    rows[70] = None  # a second bad row, in a later batch: the first one is named
    pq.write_table(pa.table({"x": rows}), tmp_path / "in.parquet")
    with pytest.raises(BadRowError, match="row 42: input 'x'"):
        onyx.batch.run(mlp, tmp_path / "in.parquet", tmp_path / "o.parquet", batch_size=16,
                       workers=1, runs=runs, strict=True)  # fmt: skip


def test_wrong_value_type_is_a_bad_row_per_column(tmp_path, mlp):
    pq.write_table(pa.table({"x": [["a", "b"]] * 3}), tmp_path / "in.parquet")
    summary = onyx.batch.run(mlp, tmp_path / "in.parquet", tmp_path / "o.parquet", workers=1)
    assert summary.bad_rows == 3
    with open(summary.errors_path) as f:
        assert "values of type string, expected float32[2, 3]" in f.readline()


def test_flat_lists_are_reshaped_and_csv_cells_hold_json(tmp_path, mlp):
    xs = samples(50)
    pq.write_table(pa.table({"id": np.arange(50), "x": [v.reshape(-1).tolist() for v in xs]}),
                   tmp_path / "flat.parquet")  # fmt: skip
    onyx.batch.run(mlp, tmp_path / "flat.parquet", tmp_path / "a.parquet", batch_size=16, workers=1)
    check_against_ort(mlp, tmp_path / "a.parquet", xs, 16)
    with open(tmp_path / "in.csv", "w") as f:
        f.write("id,x\n" + "".join(f'{i},"{json.dumps(v.tolist())}"\n' for i, v in enumerate(xs)))
    onyx.batch.run(mlp, tmp_path / "in.csv", tmp_path / "b.parquet", batch_size=16, workers=1)
    check_against_ort(mlp, tmp_path / "b.parquet", xs, 16)


def test_numpy_sources(tmp_path, mlp):
    xs = samples(70)
    np.save(tmp_path / "x.npy", xs)
    onyx.batch.run(mlp, tmp_path / "x.npy", tmp_path / "a.parquet", batch_size=16, workers=1)
    out = pq.read_table(tmp_path / "a.parquet")
    assert out.column_names == ["y", "s"]
    np.testing.assert_allclose(
        column(out, "y"), ort_loop(mlp, {"x": xs}, 16)[0], rtol=1e-5, atol=1e-5
    )
    np.savez(tmp_path / "d.npz", id=np.arange(70), x=xs)
    onyx.batch.run(mlp, tmp_path / "d.npz", tmp_path / "b.parquet", batch_size=16, workers=1)
    check_against_ort(mlp, tmp_path / "b.parquet", xs, 16)


def test_image_folder(tmp_path):
    image = pytest.importorskip("PIL.Image")
    model = cnn_model(tmp_path / "cnn.onnx", channels=3)
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    for i, p in enumerate(pixels):
        image.fromarray(p).save(folder / f"{i:02d}.png")
    (folder / "99.png").write_bytes(b"not an image")
    summary = onyx.batch.run(model, folder, tmp_path / "o.parquet", batch_size=5, workers=1)
    assert summary.bad_rows == 1
    out = pq.read_table(tmp_path / "o.parquet")
    assert out.column("path").to_pylist()[:2] == ["00.png", "01.png"]
    feeds = {"img": pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255}
    np.testing.assert_allclose(
        column(out, "logits")[:12], ort_loop(model, feeds, 5)[0], rtol=1e-4, atol=1e-5
    )


def test_ragged_rows_of_a_symbolic_dim_run_in_groups(tmp_path):
    from onyx.build import GraphBuilder

    b = GraphBuilder(opset=18)
    x = b.input("tokens", "int64", ["N", "S"])
    b.output(b.op.ReduceSum(x, np.array([1], np.int64), keepdims=0), "total", "int64", ["N"])
    b.output(b.op.Mul(x, np.int64(2)), "twice", "int64", ["N", "S"])
    path = str(tmp_path / "m.onnx")
    onyx.save(b.model(), path)
    rows = [[1, 2, 3], [4, 5], [6, 7, 8], [9]]
    pq.write_table(pa.table({"tokens": rows}), tmp_path / "in.parquet")
    onyx.batch.run(path, tmp_path / "in.parquet", tmp_path / "o.parquet", batch_size=4, workers=1)
    out = pq.read_table(tmp_path / "o.parquet")
    assert out.column("total").to_pylist() == [sum(r) for r in rows]
    assert out.column("twice").to_pylist() == [[2 * v for v in r] for r in rows]


def test_job_errors_name_the_place(tmp_path, mlp):
    src = write_parquet(tmp_path / "in.parquet", samples(10))
    with pytest.raises(BatchError, match="no column 'nope'"):
        onyx.batch.run(mlp, src, tmp_path / "o.parquet", columns={"x": "nope"})
    with pytest.raises(BatchError, match="has no input 'q'"):
        onyx.batch.run(mlp, src, tmp_path / "o.parquet", columns={"q": "x"})
    with pytest.raises(BatchError, match="does not exist"):
        onyx.batch.run(mlp, tmp_path / "missing.parquet", tmp_path / "o.parquet")
    with pytest.raises(BatchError, match="expected .parquet"):
        onyx.batch.run(mlp, mlp, tmp_path / "o.parquet")
    with pytest.raises(BatchError, match="engine 'spark'"):
        onyx.batch.run(mlp, src, tmp_path / "o.parquet", engine="spark")


def test_missing_pyarrow_names_the_extra(monkeypatch):
    import sys

    from onyx.batch.job import pyarrow
    from onyx.errors import UnsupportedError

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(UnsupportedError, match=r"onyx\[batch\]"):
        pyarrow()


def test_missing_ray_names_the_extra(monkeypatch):
    import sys

    from onyx.batch.job import ray
    from onyx.errors import UnsupportedError

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UnsupportedError, match=r"onyx\[ray\]"):
        ray()


def test_workers_runs_and_threads_fill_the_cores(monkeypatch):
    from onyx.batch import job

    monkeypatch.setattr(job, "cores", lambda: 8)
    big = 10 * job.ROWS_PER_WORKER
    per = job.CORES_PER_WORKER
    plan = job.plan_workers
    assert plan(None, None, None) == (8 // per, per, 1)  # a process per few cores, a run per core
    assert plan(None, None, None, big) == (8 // per, per, 1)
    assert plan(None, None, None, job.ROWS_PER_WORKER) == (1, 8, 1)  # small: one, in here
    assert plan(2, None, None) == (2, 4, 1)
    assert plan(None, None, 4) == (2, 1, 4)  # runs on their own threads: fewer at once
    assert plan(None, 1, None) == (2, 1, 4)
    assert plan(None, 2, 1, big) == (4, 2, 1)  # both given: the workers fill the cores
    assert plan(None, 1, 1, 100) == (1, 1, 1)  # as asked, even if cores are left idle
    assert plan(3, None, 3) == (3, 1, 3)  # as asked, even if that oversubscribes
    monkeypatch.setattr(job, "cores", lambda: 2)
    assert plan(None, None, None, big) == (1, 2, 1)
    for bad in ((0, None, None), (None, 0, None), (None, None, -1)):
        with pytest.raises(BatchError, match="expected a positive number"):
            plan(*bad)


def test_default_small_job_runs_in_this_process_a_batch_per_core(tmp_path, mlp):
    from onyx.batch import job

    src = write_parquet(tmp_path / "in.parquet", samples(100))
    summary = onyx.batch.run(mlp, src, tmp_path / "o.parquet", batch_size=32)
    assert (summary.workers, summary.runs, summary.threads) == (1, job.cores(), 1)
    assert not multiprocessing.active_children()


def test_cli_batch(tmp_path, mlp, capsys):
    from onyx.cli import main

    xs = samples(64)
    src = write_parquet(tmp_path / "in.parquet", xs)
    out = tmp_path / "out.parquet"
    assert main(["batch", mlp, src, str(out), "--batch-size", "16", "--workers", "1",
                 "--runs", "3", "--threads", "1", "--column", "x=x"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "64 rows" in printed and "1 worker(s) x 3 run(s) at once x 1 thread(s)" in printed
    check_against_ort(mlp, out, xs, 16)
    assert main(["batch", mlp, src, str(out), "--column", "x"]) == 1
    assert "expected INPUT=COLUMN" in capsys.readouterr().err


@pytest.mark.slow  # imports torch
def test_torch_provider_through_providers(tmp_path, mlp):
    pytest.importorskip("torch")
    xs = samples(100)
    src = write_parquet(tmp_path / "in.parquet", xs)
    for k, providers in enumerate(
        (["TorchExecutionProvider"], [("TorchExecutionProvider", {"device": "cpu"})])
    ):
        out = tmp_path / f"o{k}.parquet"
        summary = onyx.batch.run(mlp, src, out, batch_size=32, workers=1, providers=providers)
        check_against_ort(mlp, out, xs)
        # a batch at a time, on all of torch's threads
        assert (summary.runs, summary.threads) == (1, onyx.batch.cores())
    from onyx.batch.predictor import Predictor

    job = onyx.batch.BatchJob(mlp, src, str(out), (("x", "x"),), providers=(
        ("TorchExecutionProvider", (("device", "cpu"),)),))  # fmt: skip
    assert Predictor(job).session.get_providers()[0] == "TorchExecutionProvider"


def test_provider_and_gpu_settings_are_checked(tmp_path, mlp):
    src = write_parquet(tmp_path / "in.parquet", samples(10))
    with pytest.raises(BatchError, match="Ray engine only"):
        onyx.batch.run(mlp, src, tmp_path / "o.parquet", gpus_per_worker=1)
    with pytest.raises(BatchError, match="expected a name or a"):
        onyx.batch.run(mlp, src, tmp_path / "o.parquet", providers=[("Cpu", "x", 1)])


def test_resume_with_provider_options_reuses_parts(tmp_path, mlp):
    xs = samples(400)
    src = write_parquet(tmp_path / "in.parquet", xs)
    out = tmp_path / "out.parquet"
    providers = [("CPUExecutionProvider", {})]

    def stop(progress):
        if progress.rows_done >= 200:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        onyx.batch.run(mlp, src, out, batch_size=50, shard_size=100, workers=1,
                       providers=providers, progress=stop)  # fmt: skip
    summary = onyx.batch.run(mlp, src, out, batch_size=50, shard_size=100, workers=1,
                             providers=providers)  # fmt: skip
    assert summary.shards_skipped == 2
    check_against_ort(mlp, out, xs)


@pytest.mark.slow  # a fresh interpreter imports onyx and pyarrow
def test_conversions_skip_pandas(tmp_path, mlp):
    """A job converts its numbers through buffers: pyarrow's conversions import pandas (0.3-1 s
    of a worker's start-up)."""
    import subprocess
    import sys

    src = write_parquet(tmp_path / "in.parquet", samples(50))
    code = (
        "import sys, onyx.batch; "
        f"onyx.batch.run({mlp!r}, {src!r}, {str(tmp_path / 'o.parquet')!r}, batch_size=16); "
        "print('pandas' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                            text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"


def test_arrow_buffers_round_trip():
    from onyx.batch.arrow import from_numpy, to_numpy

    for values in (np.arange(-5, 20, dtype=np.int16), np.linspace(-1, 1, 13, dtype=np.float32),
                   np.arange(11) % 3 == 0):  # fmt: skip
        array = from_numpy(values)
        assert array.to_pylist() == values.tolist()
        np.testing.assert_array_equal(to_numpy(array.slice(3, 7)), values[3:10])
    with_nulls = pa.array([1.5, None, 3.0, None, 5.0], pa.float64()).slice(1)
    np.testing.assert_array_equal(to_numpy(with_nulls, fill=-1), [-1, 3.0, -1, 5.0])
    np.testing.assert_array_equal(to_numpy(with_nulls.is_valid()), [False, True, False, True])
    chunked = pa.chunked_array([pa.array([1, 2], pa.int32()), pa.array([3], pa.int32())])
    assert to_numpy(chunked).tolist() == [1, 2, 3]
    assert to_numpy(pa.array(["a", None])).tolist() == ["a", None]  # other types: pyarrow's way


def test_ray_actors_get_their_cpus_and_gpus(monkeypatch, tmp_path, mlp):
    """What the Ray engine asks of Ray Data, on a stand-in for Ray (no cluster needed)."""
    import types

    from onyx.batch import ray_engine
    from onyx.batch.job import BatchJob

    asked = {}

    class Data:
        def map_batches(self, fn, **kwargs):
            asked.update(kwargs, fn=fn)
            return self

        def iter_batches(self, **kwargs):
            return iter(())

    data = types.SimpleNamespace(
        DataContext=types.SimpleNamespace(get_current=lambda: types.SimpleNamespace()),
        from_arrow_refs=lambda refs: Data(),
    )
    fake = types.SimpleNamespace(is_initialized=lambda: True, put=lambda t: t, data=data)
    monkeypatch.setattr(ray_engine, "ray", lambda: fake)
    job = BatchJob(mlp, "in.parquet", str(tmp_path / "o.parquet"), (("x", "x"),),
                   batch_size=16, runs=2, threads=3)  # fmt: skip
    table = pa.table({"x": [[[0.0] * 3] * 2]})
    ray_engine.run_ray(job, iter([(0, 0, table)]), 2, lambda rows, bad: None, gpus=0.5)
    assert (asked["concurrency"], asked["num_cpus"], asked["num_gpus"]) == (2, 6, 0.5)
    assert asked["batch_size"] == 32  # an actor's runs at once, handed over together
    assert asked["fn_constructor_kwargs"] == {"job": job}
    ray_engine.run_ray(job, iter([(0, 0, table)]), 2, lambda rows, bad: None)
    assert asked["num_gpus"] is None


def test_prefetch_keeps_order_and_hands_over_errors():
    from onyx.batch.io import prefetch

    def items():
        yield from range(5)
        raise BatchError("source broke at row 5")

    got = []
    with pytest.raises(BatchError, match="row 5"):
        got.extend(prefetch(items()))  # appends each item as it comes
    assert got == [0, 1, 2, 3, 4]
    early = prefetch(iter(range(100)))
    assert [next(early), next(early)] == [0, 1]
    early.close()  # a consumer that stops early stops the reader
