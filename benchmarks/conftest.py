"""Shared benchmark data: generated TLC-like months, made once per session."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU with RAPIDS")


@pytest.fixture(scope="session")
def month_files(tmp_path_factory):
    """``{rows: path}`` of one generated month per size (RAPIDSEVAL_BENCH_ROWS, comma-separated)."""
    from rapidseval.data.synthetic import generate

    sizes = [int(s) for s in os.environ.get("RAPIDSEVAL_BENCH_ROWS", "1000000,6400000").split(",")]
    out = {}
    for n in sizes:
        d = tmp_path_factory.mktemp(f"m{n}")
        generate(d, "2020-01", "2020-01", n, seed=1)
        out[n] = d / "yellow_tripdata_2020-01.parquet"
    return out
