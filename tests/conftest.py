"""Shared fixtures: one moto S3 server and HTTP servers for the whole session (see _servers.py)."""

from _servers import aws_env, http_server, s3_bucket, s3_endpoint  # noqa: F401

import pytest


def pytest_collection_modifyitems(config, items):
    """A ``cupy`` or ``rapids`` test is a ``gpu`` test too (``-m gpu`` selects every device test)."""
    for item in items:
        if item.get_closest_marker("gpu") is None and (item.get_closest_marker("cupy") or item.get_closest_marker("rapids")):
            item.add_marker(pytest.mark.gpu)


@pytest.fixture(scope="session")
def cp():
    """CuPy on a visible GPU, or a clean skip saying which is missing."""
    from rapidseval.backend import cupy_available

    ok, why = cupy_available()
    if not ok:
        pytest.skip(why)
    import cupy

    return cupy
