"""Run directories: the completion marker, atomic replacement, paths that cannot escape,
``report`` on an incomplete directory, and ``s3://`` outputs through transient S3 errors
(a loopback proxy in front of a real moto server answers the first requests with 503)."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import rapidseval
from rapidseval import SourceError, SpecError
from rapidseval.cli import app
from rapidseval.data.synthetic import generate
from rapidseval import load_job
from rapidseval.io.rundir import COMPLETE_MARKER, IncompleteRunDir, check_complete, resolve_run_dir, write_run_dir

from _compare import assert_tables_equal
from _jobs import override
from _servers import DUMMY_KEY_ID, DUMMY_SECRET

TABLES = ("monthly", "replay", "shift")


@pytest.fixture(scope="module")
def months(tmp_path_factory):
    out = tmp_path_factory.mktemp("rundir-tlc")
    generate(out, "2020-01", "2020-02", 6_000, scenario="march2020", seed=5)
    return out


def _job(source, out, **extra):
    job = {
        "name": "rd", "seed": 1, "backend": "cpu",
        "data": {"source": str(source), "start": "2020-01", "end": "2020-02", "partition_rows": 10_000},
        "model": {"params": {"n_estimators": 5, "max_depth": 5}},
        "evaluation": {"train": ["2020-01"], "test": ["2020-02"], "score": [],
                       "replay": {"months": ["2020-02"], "window": "D"},
                       "shift": {"reference": "2020-01", "compare": ["2020-02"]}},
        "cluster": {"kind": "threads", "n_workers": 2},
        "output": {"dir": str(out), "report": False},
    }
    return override(job, extra)


@pytest.fixture(scope="module")
def local_run(months, tmp_path_factory):
    return rapidseval.run(_job(months / "yellow_tripdata_{month}.parquet", tmp_path_factory.mktemp("rd") / "local"))


def _assert_same_files(a: Path, b) -> None:
    for t in TABLES:
        other = pq.read_table(str(b / f"{t}.parquet")) if isinstance(b, Path) else pq.read_table(b / f"{t}.parquet")
        assert_tables_equal(pq.read_table(a / f"{t}.parquet"), other)


# ---------------------------------------------------------------------------------------
# the completion marker
# ---------------------------------------------------------------------------------------
def test_marker_lists_every_table_and_report_accepts_it(local_run):
    marker = check_complete(local_run.run_dir)
    written = {p.name for p in local_run.run_dir.glob("*.parquet")} | {"manifest.json"}
    assert set(marker["files"]) == written  # every table, whichever the job produced
    assert written >= {"monthly.parquet", "replay.parquet", "shift.parquet", "attribution.parquet", "manifest.json"}
    for name, meta in marker["files"].items():
        assert (local_run.run_dir / name).stat().st_size == meta["bytes"]
    res = CliRunner().invoke(app, ["report", str(local_run.run_dir)])
    assert res.exit_code == 0, res.output
    assert (local_run.run_dir / "report.html").exists()
    check_complete(local_run.run_dir)  # rebuilding the report does not make it incomplete


@pytest.mark.parametrize("damage", ["no marker", "table missing", "table changed"])
def test_report_says_when_a_run_directory_is_incomplete(local_run, tmp_path, damage):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(local_run.run_dir, d)
    if damage == "no marker":
        (d / COMPLETE_MARKER).unlink()
    elif damage == "table missing":
        (d / "replay.parquet").unlink()
    else:
        pd.DataFrame({"x": [1]}).to_parquet(d / "shift.parquet")
    with pytest.raises(IncompleteRunDir, match="incomplete run directory"):
        check_complete(d)
    (d / "report.html").unlink(missing_ok=True)
    res = CliRunner().invoke(app, ["report", str(d)])
    assert res.exit_code == 2
    assert "incomplete run directory" in res.output and "re-run" in res.output and "Traceback" not in res.output
    assert not (d / "report.html").exists()  # no report is built from tables that cannot be trusted


def test_a_failed_write_leaves_the_old_run_directory_and_no_debris(local_run, months, tmp_path, monkeypatch):
    out = tmp_path / "run"
    first = rapidseval.run(_job(months / "yellow_tripdata_{month}.parquet", out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(self, path, **kw):
        if "shift" in str(path):
            raise OSError("disk full (simulated)")
        return original(self, path, **kw)

    original = pd.DataFrame.to_parquet
    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        write_run_dir(first.spec, first.manifest, {"monthly": first.monthly, "replay": first.replay, "shift": first.shift})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old, complete directory is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no .partial directory left behind
    check_complete(out)


# ---------------------------------------------------------------------------------------
# paths cannot escape
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../x", "..", "a/b", "/etc", ".hidden", "x\0y"])
def test_job_name_cannot_name_another_directory(name, tmp_path):
    with pytest.raises(SpecError, match="name"):
        load_job({"name": name, "output": {"dir": str(tmp_path / "{name}")}})


@pytest.mark.parametrize("template", [
    "runs/{name.__class__}", "runs/{0}", "runs/{}", "runs/{name", "runs/{user}/{name}", "runs/{name!r}",
])
def test_output_dir_takes_only_the_name_placeholder(template):
    with pytest.raises(SpecError, match="output.dir"):
        load_job({"output": {"dir": template}})


@pytest.mark.parametrize("template", [
    "runs/{name}/../../elsewhere", "runs/x{name}/../..", "s3://bucket/runs/{name}/../../x", "s3://bucket/{name}/..",
])
def test_templated_dir_cannot_leave_its_prefix(template):
    with pytest.raises(SpecError, match="leaves"):
        resolve_run_dir(template, "job")


def test_paths_that_stay_inside_are_fine(tmp_path):
    assert resolve_run_dir(str(tmp_path / "runs" / "{name}"), "a.b-c_d") == str(tmp_path / "runs" / "a.b-c_d")
    assert resolve_run_dir(str(tmp_path / "{name}-out"), "j") == str(tmp_path / "j-out")
    assert resolve_run_dir("s3://bucket/runs/{name}", "j") == "s3://bucket/runs/j"
    assert resolve_run_dir(str(tmp_path / "fixed"), "j") == str(tmp_path / "fixed")  # no placeholder: the user's choice


def test_finish_writes_into_the_directory_before_the_marker_unlisted(tmp_path):
    """The jobs layer writes report.html through ``finish``: after the tables and the manifest,
    before the marker, which does not list it (a report may be rebuilt later)."""
    spec = load_job(_job("unused_{month}.parquet", tmp_path / "f"))
    seen = []

    def finish(directory):
        seen.append(sorted(p.name for p in directory.iterdir()))
        (directory / "report.html").write_text("<html></html>")

    out = write_run_dir(spec, {"rapidseval_manifest": 1}, {"monthly": pd.DataFrame({"a": [1]})}, finish=finish)
    assert seen == [["manifest.json", "monthly.parquet"]]
    assert (out / "report.html").exists() and "report.html" not in check_complete(out)["files"]
    out = write_run_dir(spec, {"rapidseval_manifest": 1}, {"monthly": pd.DataFrame({"a": [1]})})
    assert not (out / "report.html").exists()  # the io layer writes no report of its own


@pytest.mark.parametrize("table", ["../x", "a/b", "..", ""])
def test_table_names_cannot_escape(local_run, table, tmp_path):
    spec = load_job(_job("unused_{month}.parquet", tmp_path / "t"))
    with pytest.raises(SpecError, match="plain file name"):
        write_run_dir(spec, local_run.manifest, {table: local_run.monthly})
    assert not (tmp_path / "t").exists() and not (tmp_path / "x.parquet").exists()


# ---------------------------------------------------------------------------------------
# s3:// outputs and transient S3 errors
# ---------------------------------------------------------------------------------------
class FlakyProxy:
    """Forwards HTTP to ``upstream``; answers the first ``fail[method]`` requests with 503 SlowDown."""

    def __init__(self, upstream: str, fail: dict[str, int]):
        self.upstream = urlsplit(upstream)
        self.fail = dict(fail)
        self.log: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()

    def handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self):
                body = self._body()
                with proxy.lock:
                    failing = proxy.fail.get(self.command, 0) > 0
                    if failing:
                        proxy.fail[self.command] -= 1
                if failing:
                    payload = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                               b"<Message>Please reduce your request rate.</Message></Error>")
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    proxy.log.append((self.command, self.path, 503))
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
                headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data) if self.command != "HEAD" else resp.getheader("Content-Length") or 0))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()
                proxy.log.append((self.command, self.path, resp.status))

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        return Handler


@contextlib.contextmanager
def flaky_proxy(upstream: str, **fail: int):
    proxy = FlakyProxy(upstream, fail)
    server = ThreadingHTTPServer(("127.0.0.1", 0), proxy.handler())
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _upload(months, client, bucket):
    for f in sorted(months.glob("*.parquet")):
        client.upload_file(str(f), bucket, f"in/{f.name}")


def test_s3_output_is_complete_and_the_marker_goes_last(local_run, months, s3_bucket, s3_endpoint, tmp_path):
    bucket, client = s3_bucket
    with flaky_proxy(s3_endpoint) as proxy:
        opts = {"endpoint_url": proxy.url}
        res = rapidseval.run(_job(months / "yellow_tripdata_{month}.parquet", f"s3://{bucket}/runs/{{name}}",
                                  **{"output.storage_options": opts, "output.report": True}))
        puts = [path for method, path, status in proxy.log if method == "PUT" and status == 200]
    assert str(res.run_dir) == f"s3://{bucket}/runs/rd"
    assert puts[-1].endswith(f"/runs/rd/{COMPLETE_MARKER}")
    assert (res.run_dir / COMPLETE_MARKER).exists() and res.report_path.exists()
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="runs/rd/")["Contents"]}
    assert keys == {f"runs/rd/{n}" for n in ("monthly.parquet", "replay.parquet", "shift.parquet", "explain.parquet",
                                              "attribution.parquet", "manifest.json", "report.html", COMPLETE_MARKER)}
    local = tmp_path / "downloaded"
    local.mkdir()
    for k in keys:
        client.download_file(bucket, k, str(local / k.rsplit("/", 1)[1]))
    check_complete(local)
    _assert_same_files(local_run.run_dir, local)
    for f in local.iterdir():
        assert DUMMY_SECRET.encode() not in f.read_bytes() and DUMMY_KEY_ID.encode() not in f.read_bytes(), f.name


def test_s3_output_refuses_a_prefix_that_is_not_a_run(months, s3_bucket, s3_endpoint):
    bucket, client = s3_bucket
    client.put_object(Bucket=bucket, Key="precious/notes.txt", Body=b"keep me")
    with pytest.raises(rapidseval.RapidsEvalError, match="not a run directory"):
        rapidseval.run(_job(months / "yellow_tripdata_{month}.parquet", f"s3://{bucket}/precious",
                            **{"output.storage_options": {"endpoint_url": s3_endpoint}}))
    assert client.get_object(Bucket=bucket, Key="precious/notes.txt")["Body"].read() == b"keep me"


def test_transient_s3_errors_are_retried_on_reads_and_writes(local_run, months, s3_bucket, s3_endpoint):
    bucket, client = s3_bucket
    _upload(months, client, bucket)
    with flaky_proxy(s3_endpoint, GET=2, HEAD=1, PUT=2) as proxy:
        opts = {"endpoint_url": proxy.url}
        res = rapidseval.run(_job(f"s3://{bucket}/in/yellow_tripdata_{{month}}.parquet", f"s3://{bucket}/out/{{name}}",
                                  **{"data.storage_options": opts, "output.storage_options": opts}))
        failed = sum(1 for *_, status in proxy.log if status == 503)
    assert failed == 5 and proxy.fail == {"GET": 0, "HEAD": 0, "PUT": 0}  # every injected failure was met and retried
    for t in TABLES:
        obj = client.get_object(Bucket=bucket, Key=f"out/rd/{t}.parquet")["Body"].read()
        assert_tables_equal(pq.read_table(local_run.run_dir / f"{t}.parquet"), pq.read_table(pa_buffer(obj)))
    assert json.loads(client.get_object(Bucket=bucket, Key=f"out/rd/{COMPLETE_MARKER}")["Body"].read())["complete"]
    del res


def test_without_retries_a_transient_error_fails_clearly(months, s3_bucket, s3_endpoint, tmp_path):
    bucket, client = s3_bucket
    _upload(months, client, bucket)
    with flaky_proxy(s3_endpoint, HEAD=50, GET=50) as proxy:
        opts = {"endpoint_url": proxy.url, "max_attempts": 1}
        with pytest.raises(SourceError, match=r"2020-01: cannot inspect s3://.*yellow_tripdata_2020-01.parquet") as err:
            rapidseval.run(_job(f"s3://{bucket}/in/yellow_tripdata_{{month}}.parquet", tmp_path / "x",
                                **{"data.storage_options": opts}))
    assert DUMMY_SECRET not in str(err.value)
    from rapidseval.io.sources import storage_options_for

    assert storage_options_for("s3://b/k", {"max_attempts": 6})[1]["config_kwargs"]["retries"]["max_attempts"] == 6
    with pytest.raises(SpecError, match="max_attempts"):
        storage_options_for("s3://b/k", {"max_attempts": 0})
    with pytest.raises(SpecError, match="s3:// URIs only"):
        storage_options_for("https://example.org/k", {"max_attempts": 3})


def pa_buffer(data: bytes):
    import pyarrow as pa

    return pa.BufferReader(data)
