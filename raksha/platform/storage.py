"""Filesystem operations through Hadoop's FileSystem API, so local paths and cluster URIs
(hdfs://, s3a://, ...) behave the same. Driver-side only: input checks, locks, manifests.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from raksha.platform.uris import local_path


class Storage:
    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()
        # resolved once: py4j looks each dotted name up part by part, and every part that is not a class
        # ("org", "org.apache", ...) is a miss searched through every jar on the classpath (2-4 ms a name)
        self._hadoop_path = self._jvm.org.apache.hadoop.fs.Path

    def _path(self, path: str):
        return self._hadoop_path(path)

    def _fs(self, path: str):
        return self._path(path).getFileSystem(self._conf)

    def exists(self, path: str) -> bool:
        return bool(self._fs(path).exists(self._path(path)))

    def is_dir(self, path: str) -> bool:
        return bool(self._fs(path).isDirectory(self._path(path)))

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create ``path`` holding ``data``; False if it exists already (atomic test-and-create).

        A local file appears whole (a reader never sees it empty); on other filesystems it is created
        and then written, so a reader may briefly see it empty."""
        local = local_path(path)
        if local is not None:
            return _create_local_exclusive(local, data)
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

    def modified_at(self, path: str) -> float:
        """Seconds since the epoch of the file's last change."""
        return self._fs(path).getFileStatus(self._path(path)).getModificationTime() / 1000.0

    def delete(self, path: str) -> None:
        self._fs(path).delete(self._path(path), True)

    def write_json(self, path: str, document: Any) -> str:
        """``path`` now holds ``document`` as indented JSON (a report, a manifest); see ``write_bytes``."""
        return self.write_bytes(path, (json.dumps(document, indent=2) + "\n").encode())

    def write_bytes(self, path: str, data: bytes) -> str:
        """``path`` now holds ``data``: a local file is swapped in atomically, so a reader sees the old
        file or the new one; elsewhere the old file is deleted first. Returns the path written."""
        local = local_path(path)
        if local is not None:
            target = Path(local).resolve()
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            tmp.write_bytes(data)
            tmp.replace(target)
            return str(target)
        self.delete(path)
        if not self.create_exclusive(path, data):
            raise OSError(f"could not write {path}")
        return path

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

    def list_tree(self, path: str) -> dict[str, int]:
        """Every file below ``path`` outside hidden folders (``_delta_log``, ``_locks``...): path -> bytes."""
        fs = self._fs(path)
        if not fs.exists(self._path(path)):
            return {}
        out = {}
        found = fs.listFiles(self._path(path), True)
        while found.hasNext():
            status = found.next()
            relative = status.getPath().toString()[len(self._path(path).toString()) :]
            if not any(part.startswith(("_", ".")) for part in relative.split("/") if part):
                out[status.getPath().toString()] = int(status.getLen())
        return out


def _create_local_exclusive(local: str, data: bytes) -> bool:
    """Write ``data`` aside, then hard-link it to ``local`` (fails if the name exists): the file
    appears with its contents. Where the filesystem has no hard links, create-and-write instead."""
    os.makedirs(os.path.dirname(local), exist_ok=True)
    head, name = os.path.split(local)
    aside = os.path.join(head, f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(aside, "wb") as out:
        out.write(data)
    try:
        os.link(aside, local)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here
        try:
            fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return True
    finally:
        os.unlink(aside)
