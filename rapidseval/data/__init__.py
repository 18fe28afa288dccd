"""Data layer: TLC schema eras, sources (local, S3, HTTP), readers and the synthetic generator."""

from __future__ import annotations
