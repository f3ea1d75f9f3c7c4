"""Paths that may be URIs (``hdfs://nn/raksha/models``, ``s3a://bucket/x``, ``file:/x``) or local paths.

pathlib is for local paths only: ``Path("hdfs://nn/models")`` is ``hdfs:/nn/models``. Everything
that can name shared storage joins with ``join`` and asks ``local_path`` whether the OS can open it.
"""

from __future__ import annotations

from urllib.parse import urlparse


def local_path(path: str) -> str | None:
    """The OS path of a local path or ``file:`` URI; None for any other filesystem."""
    parsed = urlparse(path)
    if parsed.scheme in ("", "file"):
        return parsed.path if parsed.scheme else path
    return None


def join(root: str, *parts: str) -> str:
    """``root/part/...`` without touching the scheme or authority of ``root``."""
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])
