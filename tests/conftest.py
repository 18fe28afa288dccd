"""Shared fixtures: one moto S3 server and HTTP servers for the whole session (see _servers.py)."""

from _servers import aws_env, http_server, s3_bucket, s3_endpoint  # noqa: F401
