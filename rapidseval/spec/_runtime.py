"""Where a job runs and writes: the cluster and output sections."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ._base import Section
from ._checks import MlflowSpec

__all__ = ["CLUSTER_KINDS", "TLSSpec", "ClusterSpec", "OutputSpec"]

CLUSTER_KINDS = ("local", "local-cuda", "scheduler", "threads")


def _memory_size(v, field: str, *, allow_auto: bool) -> str:
    """A memory size as Dask reads it: ``'auto'``, bytes (``'4GB'``, ``4e9``) or a fraction ``(0, 1]``."""
    from dask.utils import parse_bytes  # dask loads only when a job gives a size

    text = str(v).strip() if isinstance(v, (str, int, float)) and not isinstance(v, bool) else None
    if text is None:
        raise ValueError(f"{field} must be a size such as '4GB' or a fraction such as '0.5', got {v!r}")
    if allow_auto and text == "auto":
        return text
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and 0 < number <= 1:
        return text
    try:
        size = parse_bytes(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{field} {v!r} is not a size ('4GB', '512MiB', bytes) or a fraction in (0, 1]"
                         + (" or 'auto'" if allow_auto else "")) from exc
    if not 1 << 20 <= size <= 1 << 50:
        raise ValueError(f"{field} {v!r} is {size:,} bytes; give between 1 MiB and 1 PiB")
    return text


class TLSSpec(Section):
    """Paths of the TLS files for ``tls://`` schedulers (paths only: never the keys themselves).

    Left out, TLS comes from Dask's own configuration
    (``distributed.comm.tls.*`` in ``~/.config/dask/*.yaml`` or
    ``DASK_DISTRIBUTED__COMM__TLS__...`` variables), as for any Dask client.
    """

    ca_file: str = Field(..., description="CA certificate that signed the scheduler's certificate")
    cert: str = Field(..., description="this client's certificate (PEM file)")
    key: str | None = Field(None, description="this client's private key (PEM file); may be inside `cert`")

    @field_validator("ca_file", "cert", "key")
    @classmethod
    def _path_not_pem(cls, v: str | None) -> str | None:
        if v is not None and ("-----BEGIN" in v or "\n" in v):
            raise ValueError("give the path of a PEM file; certificates and keys never go in a job file")
        return v


class ClusterSpec(Section):
    """Where the job's tasks run.

    ``local``: a LocalCluster of worker processes on this machine (a
    LocalCUDACluster, one worker per GPU, on the gpu backend);
    ``local-cuda``: LocalCUDACluster explicitly (needs the gpu backend), with
    an RMM pool and device-to-host spilling; ``scheduler``: an existing Dask
    cluster at ``address``; ``threads``: a thread pool in this process.
    """

    kind: Literal[CLUSTER_KINDS] = "local"
    n_workers: int = Field(2, ge=1, le=1024,
                           description="local on CPU: worker processes (on GPUs: one worker per visible GPU)")
    threads_per_worker: int = Field(1, ge=1, le=1024)
    memory_limit: str = Field("auto", description="per worker: 'auto', bytes ('4GB', 4e9) or a fraction of the RAM ('0.5')")
    address: str | None = Field(None, description="scheduler address: tcp://host:8786 or tls://host:8786")
    timeout: float = Field(30.0, gt=0, le=86_400, description="seconds to wait for a scheduler (and its first worker)")
    tls: TLSSpec | None = None
    rmm_pool_size: str | None = Field(None, description="local-cuda: RMM pool per GPU (e.g. '24GB' or '0.9')")
    device_memory_limit: str | None = Field("0.8", description="local-cuda: spill device memory to host above this (bytes, '20GB' or a fraction)")

    @field_validator("memory_limit", mode="before")
    @classmethod
    def _memory_limit(cls, v):
        return _memory_size(v, "memory_limit", allow_auto=True)

    @field_validator("rmm_pool_size", "device_memory_limit", mode="before")
    @classmethod
    def _device_memory(cls, v, info):
        return None if v is None else _memory_size(v, info.field_name, allow_auto=False)

    @field_validator("address")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if re.search(r"://[^/@\s]+@", v):
            raise ValueError("a scheduler address carries no credentials (user:password@)")
        if "://" not in v:
            v = f"tcp://{v}"
        scheme = v.split("://", 1)[0]
        if scheme not in ("tcp", "tls", "inproc", "ucx", "ws", "wss"):
            raise ValueError(f"unknown scheduler protocol {scheme!r}; use tcp://host:8786 or tls://host:8786")
        return v

    @model_validator(mode="after")
    def _address(self):
        if self.kind == "scheduler" and not self.address:
            raise ValueError("cluster.kind 'scheduler' needs cluster.address (tcp://host:8786)")
        if self.kind != "scheduler" and self.address:
            raise ValueError(f"cluster.address is only used with kind 'scheduler', not {self.kind!r}")
        if self.tls is not None and not (self.address or "").startswith("tls://"):
            raise ValueError("cluster.tls needs a tls:// scheduler address")
        return self


class OutputSpec(Section):
    """Where the run directory goes: a local path or an ``s3://`` prefix.

    ``dir`` may use ``{name}`` (the job name) only; the result must stay
    inside the part of ``dir`` before the placeholder (checked with the run
    directory's rules by :func:`rapidseval.jobs.checks.check_job`, as are
    credentials in ``storage_options``).
    """

    dir: str = "runs/{name}"
    report: bool = True
    storage_options: dict[str, Any] = Field(default_factory=dict, description="for s3:// outputs (endpoint_url, ...; never credentials)")
    mlflow: MlflowSpec | None = Field(None, description="also log the run to MLflow (the mlflow extra)")
