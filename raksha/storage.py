"""Filesystem operations through Hadoop's FileSystem API, so local paths and cluster URIs
(hdfs://, s3a://, ...) behave the same. Driver-side only."""

from __future__ import annotations

from pyspark.sql import SparkSession


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
