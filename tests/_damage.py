"""Damaged inputs for the bounds tests: planted values and overwritten bytes in a Parquet month,
and a tiny job over them (train on a clean month, score, replay and compare a damaged one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = 3_000
TRAIN, DAMAGED = "2020-01", "2020-02"
#: daily windows of the damaged month (29) and the one day its trips may spill into
PERIOD_WINDOWS = 30


def month_file(root: Path, month: str) -> Path:
    return Path(root) / f"yellow_tripdata_{month}.parquet"


def rewrite(src: Path, dst: Path, *, compression: str = "zstd", use_dictionary: bool = True,
            values: Sequence[tuple[str, int, Any]] = ()) -> Path:
    """Copy a month, setting ``(column, row, value)`` first (timestamps as datetime64 or int µs)."""
    table = pq.read_table(src)
    for column, row, value in values:
        i = table.schema.get_field_index(column)
        arr = table.column(i).to_numpy(zero_copy_only=False).copy()
        if arr.dtype.kind == "M":
            arr = arr.astype("datetime64[us]")
            arr[row % len(arr)] = np.datetime64(int(value), "us") if isinstance(value, (int, np.integer)) else value
            new = pa.array(arr, type=pa.timestamp("us"))
        else:
            arr = arr.astype("float64")
            arr[row % len(arr)] = value
            new = pa.array(arr, type=pa.float64())
        table = table.set_column(i, table.schema.field(i).with_type(new.type), new)
    dst.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, dst, compression=compression, use_dictionary=use_dictionary)
    return dst


def overwrite_bytes(path: Path, edits: Sequence[tuple[str, float, int]]) -> None:
    """Apply ``(op, where as a fraction of the file, length)`` edits: op zero | flip | ones."""
    data = bytearray(path.read_bytes())
    for op, where, length in edits:
        start = min(int(where * len(data)), len(data) - 1)
        stop = min(start + length, len(data))
        if op == "zero":
            data[start:stop] = bytes(stop - start)
        elif op == "ones":
            data[start:stop] = b"\xff" * (stop - start)
        else:
            data[start:stop] = bytes(b ^ 0xFF for b in data[start:stop])
    path.write_bytes(bytes(data))


def damage_column(path: Path, column: str, op: str = "flip", n: int = 5_000) -> None:
    """Overwrite ``n`` bytes in the middle of ``column``'s first column chunk (its data pages)."""
    meta = pq.ParquetFile(path).metadata
    i = meta.schema.to_arrow_schema().get_field_index(column)
    chunk = meta.row_group(0).column(i)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    size, middle = path.stat().st_size, start + chunk.total_compressed_size // 2
    n = min(n, chunk.total_compressed_size // 2)
    overwrite_bytes(path, [(op, (middle - n // 2) / size, n)])


def zero_middle(path: Path, n: int = 5_000) -> None:
    """Zero ``n`` bytes in the middle of the file (the issue's damaged month)."""
    size = path.stat().st_size
    overwrite_bytes(path, [("zero", max(0.0, 0.5 - n / 2 / size), n)])


def job(data_dir: Path, out: Path, **extra: Any) -> dict[str, Any]:
    """Train on the clean month; test, replay (daily) and compare (daily) the damaged one."""
    spec: dict[str, Any] = {
        "name": "bounds",
        "seed": 1,
        "backend": "cpu",
        "data": {"source": str(Path(data_dir) / "yellow_tripdata_{month}.parquet"), "start": TRAIN, "end": DAMAGED,
                 "partition_rows": 10_000},
        "model": {"kind": "random_forest", "params": {"n_estimators": 5, "max_depth": 4}},
        "evaluation": {
            "train": [TRAIN], "test": [DAMAGED], "score": [],
            "replay": {"months": [DAMAGED], "window": "D", "bands": None},
            "shift": {"reference": TRAIN, "compare": [DAMAGED], "window": "D"},
        },
        "cluster": {"kind": "threads", "n_workers": 1},
        "output": {"dir": str(out), "report": False},
    }
    spec.update(extra)
    return spec
