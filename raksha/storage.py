"""Filesystem operations through Hadoop's FileSystem API, so local paths and cluster URIs
(hdfs://, s3a://, ...) behave the same. Driver-side only.

``exchange`` swaps two directories in one step where the filesystem can (a local Linux
filesystem: ``renameat2(RENAME_EXCHANGE)``), so a reader of either path sees the old folder or
the new one, never neither; elsewhere it reports that it could not, and the caller falls back
to two renames.
"""

from __future__ import annotations

import ctypes
import errno
import os
from urllib.parse import urlparse

from pyspark.sql import SparkSession

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def local_path(path: str) -> str | None:
    """The OS path of a local path or ``file:`` URI; None for any other filesystem."""
    parsed = urlparse(path)
    if parsed.scheme in ("", "file"):
        return parsed.path if parsed.scheme else path
    return None


def _renameat2_exchange(a: str, b: str) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP):
        return False  # the filesystem or kernel cannot: fall back
    raise OSError(code, f"could not exchange {a} and {b}: {os.strerror(code)}")


class Storage:
    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _path(self, path: str):
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def _fs(self, path: str):
        return self._path(path).getFileSystem(self._conf)

    def exists(self, path: str) -> bool:
        return bool(self._fs(path).exists(self._path(path)))

    def is_dir(self, path: str) -> bool:
        return bool(self._fs(path).isDirectory(self._path(path)))

    def mkdirs(self, path: str) -> None:
        self._fs(path).mkdirs(self._path(path))

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` (whose parent is created); ``dst`` must not exist."""
        parent = self._path(dst).getParent()
        fs = self._fs(src)
        fs.mkdirs(parent)
        if not fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"could not move {src} to {dst}")

    def exchange(self, a: str, b: str) -> bool:
        """Swap two existing directories atomically; False when this filesystem cannot."""
        la, lb = local_path(a), local_path(b)
        if la is None or lb is None:
            return False
        return _renameat2_exchange(la, lb)

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create ``path`` holding ``data``; False if it exists already (atomic test-and-create)."""
        local = local_path(path)
        if local is not None:
            os.makedirs(os.path.dirname(local), exist_ok=True)
            try:
                fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            return True
        fs = self._fs(path)
        try:
            stream = fs.create(self._path(path), False)  # overwrite=False: fails if it exists
        except Exception as exc:  # py4j wraps FileAlreadyExistsException
            if "FileAlreadyExists" in str(exc) or fs.exists(self._path(path)):
                return False
            raise
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()
        return True

    def read_bytes(self, path: str) -> bytes:
        local = local_path(path)
        if local is not None:
            with open(local, "rb") as f:
                return f.read()
        fs = self._fs(path)
        stream = fs.open(self._path(path))
        try:
            out = bytearray()
            buf = self._jvm.java.nio.ByteBuffer.allocate(65536)
            while True:
                n = stream.read(buf)
                if n <= 0:
                    break
                out += bytes(buf.array())[:n]
                buf.clear()
            return bytes(out)
        finally:
            stream.close()

    def delete(self, path: str) -> None:
        self._fs(path).delete(self._path(path), True)

    def list_files(self, path: str) -> list[str]:
        """Data files directly under ``path`` (Spark's _SUCCESS and hidden files excluded)."""
        fs = self._fs(path)
        if not fs.exists(self._path(path)):
            return []
        names = []
        for status in fs.listStatus(self._path(path)):
            name = status.getPath().getName()
            if status.isFile() and not name.startswith(("_", ".")):
                names.append(status.getPath().toString())
        return sorted(names)

    def list_dirs(self, path: str) -> list[str]:
        fs = self._fs(path)
        if not fs.exists(self._path(path)):
            return []
        return sorted(s.getPath().toString() for s in fs.listStatus(self._path(path)) if s.isDirectory())
