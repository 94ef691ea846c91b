"""The Ray engine writes the same file as the local engine, on a local cluster the test starts."""

from __future__ import annotations

import pytest
from batch_helpers import pq, samples

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import onyx.batch


@pytest.fixture(scope="module")
def cluster():
    ray.init(
        num_cpus=2,
        num_gpus=1,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )  # a GPU Ray counts, not one it runs on
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_engine_equals_local_engine_row_for_row(tmp_path, mlp, cluster):
    xs = samples(600)
    rows = [v.tolist() for v in xs]
    rows[123] = None
    import pyarrow as pa

    pq.write_table(pa.table({"id": list(range(600)), "x": rows}), tmp_path / "in.parquet")
    onyx.batch.run(mlp, tmp_path / "in.parquet", tmp_path / "local.parquet", batch_size=32,
                           shard_size=64, workers=1)  # fmt: skip
    # each actor reserves half of the cluster's one (logical) GPU
    remote = onyx.batch.run(mlp, tmp_path / "in.parquet", tmp_path / "ray.parquet", batch_size=32,
                            shard_size=64, workers=2, engine="ray", gpus_per_worker=0.5)  # fmt: skip
    assert (remote.rows, remote.bad_rows, remote.engine) == (600, 1, "ray")
    a, b = pq.read_table(tmp_path / "local.parquet"), pq.read_table(tmp_path / "ray.parquet")
    assert a.schema == b.schema
    assert a.column("id").to_pylist() == b.column("id").to_pylist() == list(range(600))
    assert a.equals(b)  # same kernels on the same batches: the same bits
    with open(remote.errors_path) as f:
        assert '"row": 123' in f.read()
