"""The Python environment a cluster's executors run: packed once, reused while nothing changed.

``raksha submit`` gives spark-submit one archive (``--archives ENV#environment``) holding a
virtualenv: ``pyvenv.cfg``, ``bin/python`` (a link to a Python 3.11 that every worker has at the
same path, by default the driver's own base interpreter) and ``lib/python3.11/site-packages`` with
raksha and the closure of its runtime requirements, read from the installed distributions'
RECORDs (what pip installed, nothing re-downloaded). Left out: the dev extras, Spark's own JVM
jars (``pyspark/jars``: executors run their cluster's Spark), bytecode caches, and TensorFlow
with Keras unless the job scores with ``scoring.runtime: keras`` (the default ONNX runtime needs
neither on executors). raksha itself is built as a wheel from its checkout when it is installed
in editable mode, so the archive never points back at a repository.

The archive's name is a digest of everything in it (distributions and versions, raksha's files,
the worker interpreter, this format), so an unchanged environment is packed once and reused.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

log = logging.getLogger(__name__)

FORMAT = "raksha-env-1"
KEEP = 3  # packed environments kept in the cache (the newest)
PACKAGE = "raksha"
SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
# only the keras runtime (scoring.runtime: keras) imports these on executors
TENSORFLOW = frozenset({"tensorflow", "tensorflow-cpu", "keras", "tf-keras"})
# never shipped: executors run their own Spark's JVM
LEFT_OUT_PREFIXES = ("pyspark/jars/",)


class ShipError(RuntimeError):
    """The environment cannot be packed (a requirement not installed, a build that failed)."""


@dataclass(frozen=True)
class PackedEnv:
    path: Path
    digest: str
    reused: bool
    distributions: tuple[str, ...]
    size_bytes: int


def default_cache() -> Path:
    return Path(os.environ.get("RAKSHA_CACHE_DIR") or Path.home() / ".cache" / "raksha") / "envs"


def base_python() -> str:
    """The interpreter this virtualenv was made from (executors need it at the same path)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def requirement_closure(root: str, leave_out: Iterable[str] = ()) -> list[metadata.Distribution]:
    """``root`` and every distribution its runtime requirements pull in, transitively (no extras),
    minus ``leave_out`` (and whatever only they pulled in). A requirement not installed is an error."""
    skipped = {canonicalize_name(n) for n in leave_out}
    environment = {k: str(v) for k, v in default_environment().items()}
    environment["extra"] = ""
    seen: dict[str, metadata.Distribution] = {}
    pending = [root]
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen or name in skipped:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ShipError(f"requirement '{name}' is not installed in {sys.prefix}") from None
        seen[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(environment):
                pending.append(req.name)
    return [seen[n] for n in sorted(seen)]


def _editable_source(dist: metadata.Distribution) -> Path | None:
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    info = json.loads(text)
    if not (info.get("dir_info") or {}).get("editable"):
        return None
    url = str(info.get("url", ""))
    return Path(url[len("file://") :]) if url.startswith("file://") else None


def _wheel_members(source: Path) -> dict[str, bytes]:
    """Build raksha's wheel from its checkout (setup.py decides what is in it) and read it."""
    with tempfile.TemporaryDirectory(prefix="raksha-wheel-") as out:
        command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out]
        done = subprocess.run([*command, str(source)], capture_output=True, text=True, check=False, cwd=out)
        wheels = list(Path(out).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            raise ShipError(f"building raksha's wheel from {source} failed: {done.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            return {name: wheel.read(name) for name in sorted(wheel.namelist()) if not name.endswith("/")}


def _installed_members(dist: metadata.Distribution) -> Iterator[tuple[str, Path]]:
    """(path under site-packages, file on disk) for each file a distribution installed there."""
    for entry in dist.files or []:
        relative = PurePosixPath(str(entry))
        if relative.parts[:1] == ("..",) or "__pycache__" in relative.parts or relative.suffix == ".pyc":
            continue
        if str(relative).startswith(LEFT_OUT_PREFIXES):
            continue
        located = Path(str(dist.locate_file(entry)))
        if located.is_file():
            yield str(relative), located


def _contents(leave_out: Iterable[str]) -> tuple[dict[str, bytes], dict[str, Path], list[str]]:
    """raksha's own files (bytes), the other distributions' files (paths) and ``name==version`` of each."""
    own: dict[str, bytes] = {}
    others: dict[str, Path] = {}
    names = []
    for dist in requirement_closure(PACKAGE, leave_out):
        name = canonicalize_name(dist.metadata["Name"])
        names.append(f"{name}=={dist.version}")
        source = _editable_source(dist) if name == PACKAGE else None
        if source is not None:
            own.update(_wheel_members(source))
            continue
        for relative, located in _installed_members(dist):
            if name == PACKAGE:
                own[relative] = located.read_bytes()
            else:
                others[relative] = located
    return own, others, names


def _digest(own: dict[str, bytes], others: dict[str, Path], names: list[str], python: str) -> str:
    """Identifies what goes into the archive: raksha's bytes, the other files by name and size
    (their distributions' versions pin their contents), the interpreter and this format."""
    sha = hashlib.sha256(f"{FORMAT}\n{python}\n".encode())
    for name in names:
        sha.update(f"{name}\n".encode())
    for relative in sorted(own):
        sha.update(relative.encode() + b"\0" + hashlib.sha256(own[relative]).digest())
    for relative in sorted(others):
        sha.update(f"{relative}\0{others[relative].stat().st_size}\n".encode())
    return sha.hexdigest()[:20]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, 0
    tar.addfile(info)


def _write_archive(target: Path, own: dict[str, bytes], others: dict[str, Path], python: str) -> None:
    version = sysconfig.get_python_version()
    cfg = f"home = {Path(python).parent}\ninclude-system-site-packages = false\nversion = {version}\n"
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    # level 1: packing costs seconds, not minutes, and the archive still shrinks to about a third
    with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
        _add_bytes(tar, "pyvenv.cfg", cfg.encode())
        _add_link(tar, "bin/python", python)
        _add_link(tar, "bin/python3", "python")
        for relative in sorted(others):
            tar.add(str(others[relative]), arcname=f"{SITE}/{relative}", recursive=False)
        for relative in sorted(own):
            _add_bytes(tar, f"{SITE}/{relative}", own[relative])
    os.replace(tmp, target)


def _prune(cache: Path, keep: int) -> None:
    """Remove all but the ``keep`` most recently used archives."""
    archives = sorted(cache.glob("raksha-env-*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in archives[keep:]:
        old.unlink(missing_ok=True)


def pack(cache: Path | None = None, with_tensorflow: bool = False, python: str | None = None) -> PackedEnv:
    """The archive for this installation (packed now, or reused from ``cache`` when unchanged)."""
    cache = cache or default_cache()
    python = python or base_python()
    own, others, names = _contents(() if with_tensorflow else TENSORFLOW)
    digest = _digest(own, others, names, python)
    target = cache / f"raksha-env-{digest}.tar.gz"
    reused = target.is_file()
    if not reused:
        cache.mkdir(parents=True, exist_ok=True)
        log.info("packing %d distributions into %s", len(names), target)
        _write_archive(target, own, others, python)
        _prune(cache, KEEP)
    else:
        os.utime(target)  # used now: the last to be pruned
    return PackedEnv(target, digest, reused, tuple(names), target.stat().st_size)
