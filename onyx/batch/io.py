"""Sources in, shards out, parts on disk, one merged Parquet file at the end.

Parts are Arrow IPC files: written as they are in memory and read back mapped, so only the
merged output pays Parquet's encoding (parts in Parquet encoded every row twice and decoded it
once between).

Sources: a Parquet file or folder of them, a CSV file, a .npy array ([rows, ...], one column named
after the file), an .npz archive (one column per array), or a folder of images (columns ``path``
and ``image``, the encoded bytes, decoded in the workers). Shard ``k`` is rows
``[k * shard_size, (k + 1) * shard_size)``, the same in every run, so a finished part is never
redone. A part is written under a temporary name and renamed, so a part on disk is complete.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterator

import numpy as np

from onyx.batch.arrow import to_numpy
from onyx.batch.job import BatchError, BatchJob, pyarrow

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
_READ_ROWS = 8192


@dataclasses.dataclass
class Source:
    """A dataset to read in order: its columns, its row count (None when unknown up front)."""

    path: str
    kind: str
    columns: list[str]
    rows: int | None

    def batches(self) -> Iterator:
        """pyarrow record batches or tables, in row order."""
        pa = pyarrow()
        if self.kind == "parquet":
            for file in _parquet_files(self.path):
                yield from pa.parquet.ParquetFile(file).iter_batches(_READ_ROWS)
        elif self.kind == "csv":
            from pyarrow import csv

            yield from csv.open_csv(self.path)
        elif self.kind in ("npy", "npz"):
            arrays = _arrays(self.path)
            rows = len(next(iter(arrays.values())))
            for start in range(0, rows, _READ_ROWS):
                yield _table({k: a[start : start + _READ_ROWS] for k, a in arrays.items()})
        else:  # images
            files = _image_files(self.path)
            for start in range(0, len(files), 256):
                chunk = files[start : start + 256]
                data = []
                for f in chunk:
                    with open(os.path.join(self.path, f), "rb") as fh:
                        data.append(fh.read())
                yield pa.table(
                    {"path": pa.array(chunk, pa.string()), "image": pa.array(data, pa.binary())}
                )


def open_source(path: str) -> Source:
    """The dataset at ``path``, by its suffix (or, for a folder, by the files in it)."""
    pa = pyarrow()
    if not os.path.exists(path):
        raise BatchError(f"source {path!r} does not exist")
    suffix = os.path.splitext(path)[1].lower()
    try:
        if os.path.isdir(path):
            if _image_files(path):
                return Source(path, "images", ["path", "image"], len(_image_files(path)))
            if not _parquet_files(path):
                raise BatchError(f"source folder {path!r} has no .parquet files and no images")
            suffix = ".parquet"
        if suffix in (".parquet", ".pq"):
            files = _parquet_files(path)
            schema = pa.parquet.read_schema(files[0])
            rows = sum(pa.parquet.ParquetFile(f).metadata.num_rows for f in files)
            return Source(path, "parquet", schema.names, rows)
        if suffix == ".csv":
            from pyarrow import csv

            reader = csv.open_csv(path)
            return Source(path, "csv", reader.schema.names, None)
        if suffix in (".npy", ".npz"):
            arrays = _arrays(path)
            lengths = {k: len(a) for k, a in arrays.items()}
            if len(set(lengths.values())) != 1:
                raise BatchError(f"source {path!r}: arrays of different lengths {lengths}")
            return Source(path, suffix[1:], list(arrays), next(iter(lengths.values())))
    except (OSError, ValueError, pa.ArrowException) as e:
        raise BatchError(f"source {path!r} cannot be read: {e}") from None
    raise BatchError(
        f"source {path!r}: expected .parquet, .csv, .npy, .npz, or a folder of Parquet files "
        "or of images"
    )


def _parquet_files(path: str) -> list[str]:
    if not os.path.isdir(path):
        return [path]
    return [
        os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith((".parquet", ".pq"))
    ]


def _image_files(path: str) -> list[str]:
    return sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_SUFFIXES))


def _arrays(path: str) -> dict[str, np.ndarray]:
    if path.lower().endswith(".npy"):
        a = np.load(path, mmap_mode="r", allow_pickle=False)
        name = os.path.splitext(os.path.basename(path))[0]
        arrays = {name: a}
    else:
        arrays = dict(np.load(path, allow_pickle=False))
    for k, a in arrays.items():
        if a.ndim == 0:
            raise BatchError(f"source {path!r}: array {k!r} is a scalar, expected [rows, ...]")
    return arrays


def _table(arrays: dict[str, np.ndarray]):
    from onyx.batch.codec import encode

    pa = pyarrow()
    return pa.table({k: encode(np.asarray(a)) for k, a in arrays.items()})


def shards(source: Source, size: int) -> Iterator[tuple[int, int, object]]:
    """(shard id, first row, table of ``size`` rows, the last one shorter) in order."""
    pa = pyarrow()
    pending, count, shard = [], 0, 0
    for batch in source.batches():
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        pending.append(table)
        count += table.num_rows
        while count >= size:
            whole = pa.concat_tables(pending)
            yield shard, shard * size, whole.slice(0, size).combine_chunks()
            rest = whole.slice(size)
            pending, count, shard = [rest], rest.num_rows, shard + 1
    if count:
        yield shard, shard * size, pa.concat_tables(pending).combine_chunks()


def prefetch(items: Iterator, ahead: int = 1) -> Iterator:
    """``items`` read by a thread ``ahead`` items in advance, so that reading the next shard
    (pyarrow releases the interpreter lock while it reads and decodes) overlaps running this
    one. An error in the thread is raised here, at the item where it happened."""
    import queue
    import threading

    box: queue.Queue = queue.Queue(ahead)
    stop = threading.Event()
    end = object()

    def read() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put((end, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            box.put((end, e))

    thread = threading.Thread(target=read, name="onyx-batch-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, error = box.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()


# --- parts -------------------------------------------------------------------------------------
def part_path(job: BatchJob, shard: int) -> str:
    return os.path.join(job.parts_dir, f"part-{shard:06d}.arrow")


def prepare_parts(job: BatchJob, fingerprint: dict) -> set[int]:
    """Make the parts folder; the shards already finished there by the same job (else none)."""
    manifest = os.path.join(job.parts_dir, "job.json")
    if os.path.isdir(job.parts_dir):
        try:
            with open(manifest) as f:
                same = json.load(f) == fingerprint
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(job.parts_dir)
    os.makedirs(job.parts_dir, exist_ok=True)
    if not os.path.exists(manifest):
        with open(manifest + ".tmp", "w") as f:
            json.dump(fingerprint, f)
        os.replace(manifest + ".tmp", manifest)
    return {
        int(f[5:11])
        for f in os.listdir(job.parts_dir)
        if f.startswith("part-") and f.endswith(".arrow")
    }


def write_part(job: BatchJob, shard: int, table) -> int:
    """Write a shard's output rows as its part (bad rows go into the part's metadata); bad count."""
    from onyx.batch.predictor import ERROR, INTERNAL

    errors = table.column(ERROR)
    notes = []
    if errors.null_count < len(errors):
        rows = to_numpy(table.column("_row"))
        bad = np.flatnonzero(to_numpy(errors.is_valid()))
        notes = [[int(rows[i]), errors[int(i)].as_py()] for i in bad]
    keep = [c for c in table.column_names if c not in INTERNAL]
    table = table.select(keep)
    table = table.replace_schema_metadata({"onyx.errors": json.dumps(notes)})
    final = part_path(job, shard)
    tmp = f"{final}.{os.getpid()}.tmp"
    write_arrow(tmp, table)
    os.replace(tmp, final)
    return len(notes)


def write_arrow(path: str, table) -> None:
    """``table`` as an Arrow IPC file (its buffers as they are in memory): parts, and shards
    handed to worker processes."""
    pa = pyarrow()
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read_arrow(path: str):
    """The table of an Arrow IPC file, memory-mapped: its buffers are read as they are used."""
    pa = pyarrow()
    with pa.memory_map(path) as source:
        return pa.ipc.open_file(source).read_all()


def part_errors(path: str) -> list:
    """The [row, error] notes of a part's bad rows."""
    pa = pyarrow()
    with pa.memory_map(path) as source:
        metadata = pa.ipc.open_file(source).schema.metadata or {}
    return json.loads(metadata.get(b"onyx.errors", b"[]"))


def _dictionary_columns(schema) -> list[str]:
    """The columns worth Parquet's dictionary encoding: all but those of floats (a model's
    float outputs seldom repeat a value: a dictionary tried on them only slows the write)."""
    pa = pyarrow()
    names = []
    for field in schema:
        leaf = field.type
        while pa.types.is_list(leaf) or pa.types.is_large_list(leaf):
            leaf = leaf.value_type
        if not pa.types.is_floating(leaf):
            names.append(field.name)
    return names


def merge(job: BatchJob, shard_count: int) -> tuple[int, int]:
    """Concatenate the parts in shard order into the output, write the errors file; (rows, bad)."""
    pa = pyarrow()
    paths = [part_path(job, k) for k in range(shard_count)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise BatchError(f"{len(missing)} shards have no part (first {missing[0]!r}); run again")
    notes = [note for p in paths for note in part_errors(p)]
    try:
        schema = pa.unify_schemas([read_arrow(p).schema.remove_metadata() for p in paths])
    except pa.ArrowException as e:
        raise BatchError(f"parts of {job.output!r} disagree on their columns: {e}") from None
    tmp = job.output + ".tmp"
    rows = 0
    with pa.parquet.ParquetWriter(
        tmp, schema, use_dictionary=_dictionary_columns(schema)
    ) as writer:
        for p in paths:  # a part at a time: memory stays at one shard's outputs
            table = read_arrow(p).replace_schema_metadata(None)
            writer.write_table(table if table.schema == schema else table.cast(schema))
            rows += table.num_rows
            del table  # (its file stays mapped while it lives: the folder is removed below)
    os.replace(tmp, job.output)
    if notes:
        with open(job.errors_path + ".tmp", "w") as f:
            f.writelines(
                json.dumps({"row": row, "error": error}) + "\n" for row, error in sorted(notes)
            )
        os.replace(job.errors_path + ".tmp", job.errors_path)
    elif os.path.exists(job.errors_path):
        os.remove(job.errors_path)
    shutil.rmtree(job.parts_dir)
    return rows, len(notes)
