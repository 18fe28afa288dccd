"""Local network servers for tests: an S3-compatible store and a plain HTTP server.

Both bind 127.0.0.1 on a free port, run in daemon threads and stop when the
context (or fixture) ends, so tests exercise the real s3fs / HTTP code paths
with no network access.

Use them as context managers::

    with moto_s3_server() as endpoint: ...          # "http://127.0.0.1:PORT"
    with http_file_server(directory) as server: ... # server.url, server.requests

or as pytest fixtures, by importing them into a test module (or a conftest)::

    from _servers import aws_env, http_server, s3_endpoint, s3_bucket  # noqa: F401

``aws_env`` sets dummy credentials (:data:`DUMMY_KEY_ID`, :data:`DUMMY_SECRET`)
through ``monkeypatch`` and hides any real AWS configuration, so nothing can
reach a real account.
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import re
import socket
import threading
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

__all__ = [
    "DUMMY_KEY_ID",
    "DUMMY_SECRET",
    "HTTPFileServer",
    "RequestLog",
    "aws_env",
    "free_port",
    "http_file_server",
    "http_server",
    "moto_s3_server",
    "s3_bucket",
    "s3_endpoint",
]

#: dummy credentials the S3 fixtures put in the environment; tests assert that
#: the secret never shows up in an error message
DUMMY_KEY_ID = "AKIARAPIDSEVALTESTKEY"
DUMMY_SECRET = "rapidseval-test-secret-do-not-print-9f3c"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# S3 (moto)
# ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def moto_s3_server() -> Iterator[str]:
    """Run ``moto``'s S3-compatible server on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


_AWS_VARS_TO_HIDE = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@pytest.fixture
def aws_env(monkeypatch, tmp_path) -> dict[str, str]:
    """Dummy AWS credentials in the environment; real config files hidden."""
    for var in _AWS_VARS_TO_HIDE:
        monkeypatch.delenv(var, raising=False)
    values = {
        "AWS_ACCESS_KEY_ID": DUMMY_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Endpoint URL of a moto S3 server shared by the whole test session."""
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint, aws_env):
    """A fresh, empty bucket on the moto server: ``(bucket_name, boto3_client)``."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=DUMMY_KEY_ID,
        aws_secret_access_key=DUMMY_SECRET,
    )
    name = f"rapidseval-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name, client


# ---------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------
@dataclass
class RequestLog:
    """Thread-safe record of the requests a :class:`HTTPFileServer` answered."""

    entries: list[tuple[str, str, str | None, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, method: str, path: str, range_header: str | None, status: int) -> None:
        with self._lock:
            self.entries.append((method, path, range_header, status))

    def count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for e in self.entries if method is None or e[0] == method)

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _RangeRequestHandler(BaseHTTPRequestHandler):
    """Serves files of one directory with HEAD, GET and single byte ranges.

    ``Content-Length`` on every answer and ``206 Partial Content`` for
    ``Range: bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` are what fsspec's
    ``HTTPFileSystem`` needs for random access (Parquet footers, row groups).
    Files whose name starts with ``forbidden`` answer 403.
    """

    protocol_version = "HTTP/1.1"
    root: Path
    log: RequestLog

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def _resolve(self) -> Path | None:
        rel = self.path.split("?", 1)[0].lstrip("/")
        target = (self.root / rel).resolve()
        if self.root not in target.parents and target != self.root:
            return None
        return target

    def _send_empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.log.add(self.command, self.path, self.headers.get("Range"), status)

    def _serve(self, body: bool) -> None:
        target = self._resolve()
        if target is not None and target.name.startswith("forbidden"):
            return self._send_empty(HTTPStatus.FORBIDDEN)
        if target is None or not target.is_file():
            return self._send_empty(HTTPStatus.NOT_FOUND)
        size = target.stat().st_size
        start, end = 0, size - 1
        status = HTTPStatus.OK
        rng = self.headers.get("Range")
        if rng:
            m = _RANGE.match(rng.strip())
            if not m or (m[1] == "" and m[2] == ""):
                return self._send_empty(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            if m[1] == "":  # suffix: last n bytes
                start = max(size - int(m[2]), 0)
            else:
                start = int(m[1])
                if m[2] != "":
                    end = min(int(m[2]), size - 1)
            if start >= size or start > end:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.log.add(self.command, self.path, rng, 416)
                return None
            status = HTTPStatus.PARTIAL_CONTENT
        length = max(end - start + 1, 0)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", email.utils.formatdate(target.stat().st_mtime, usegmt=True))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        self.log.add(self.command, self.path, rng, int(status))
        if body and length:
            with open(target, "rb") as f:
                f.seek(start)
                self.wfile.write(f.read(length))
        return None

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self._serve(body=False)

    def do_GET(self):  # noqa: N802
        self._serve(body=True)


@dataclass
class HTTPFileServer:
    """A running :func:`http_file_server`: its base URL, directory and request log."""

    url: str
    root: Path
    requests: RequestLog

    def url_for(self, name: str) -> str:
        return f"{self.url}/{name}"


@contextlib.contextmanager
def http_file_server(directory: str | os.PathLike) -> Iterator[HTTPFileServer]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (threaded, byte ranges supported)."""
    root = Path(directory).resolve()
    log = RequestLog()
    handler = type("Handler", (_RangeRequestHandler,), {"root": root, "log": log})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-http-server", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield HTTPFileServer(url=f"http://{host}:{port}", root=root, requests=log)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_server(tmp_path) -> Iterator[HTTPFileServer]:
    """An HTTP server for a fresh directory (``http_server.root``); put files there."""
    root = tmp_path / "http-root"
    root.mkdir()
    with http_file_server(root) as server:
        yield server
