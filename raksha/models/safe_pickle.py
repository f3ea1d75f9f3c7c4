"""Opening a joblib pickle without running what it asks for: a restricted unpickler.

Only the globals in an allowlist are resolved (the few a joblib-dumped StandardScaler, a numpy
float and a dict of lists need, for the notebooks' files: ``raksha.models.legacy_checks``);
anything else (``os.system``, ``subprocess.Popen``, ``builtins.eval``...) is refused before it can
run. The data is bytes already read: nothing is opened by name.
"""

from __future__ import annotations

import io
import logging
import pickle
import warnings
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

# building blocks of allowlists: a numpy scalar, and a numpy array as joblib writes it
NUMPY_SCALAR_GLOBALS = frozenset(
    {
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),  # pickled under numpy 1.x
        ("numpy._core.multiarray", "scalar"),  # pickled under numpy 2.x
    }
)
NUMPY_ARRAY_GLOBALS = NUMPY_SCALAR_GLOBALS | frozenset(
    {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),  # joblib's stand-in for an array written after it
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }
)


class UnsafePickleError(ValueError):
    """The bytes are not a readable joblib pickle, or ask for more than the allowlist."""


class RefusedGlobalError(UnsafePickleError, pickle.UnpicklingError):
    """The pickle asked for a global outside the allowlist."""


def _restricted_unpickler_class() -> type:
    from joblib.numpy_pickle import NumpyUnpickler

    class RestrictedNumpyUnpickler(NumpyUnpickler):
        """joblib's unpickler (arrays stored after their NumpyArrayWrapper) with an allowlist.

        joblib 1.6 routes the nested pickle of an object-dtype array (the scaler's
        ``feature_names_in_``) through this same ``find_class``. Python's pure-python unpickler
        resolves GLOBAL, STACK_GLOBAL, INST and extension codes through ``find_class`` too, and
        the check is on the exact (module, name) pair, so dotted names cannot walk to
        attributes of an allowed object. Persistent ids are refused by the base class.
        """

        allowed: frozenset[tuple[str, str]] = frozenset()

        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in self.allowed:
                raise RefusedGlobalError(
                    f"{self.filename}: refusing to unpickle {module}.{name}: not something the notebooks saved"
                )
            return super().find_class(module, name)

    return RestrictedNumpyUnpickler


def restricted_joblib_loads(
    data: bytes, what: str, allowed: Iterable[tuple[str, str]], caught: list[warnings.WarningMessage] | None = None
) -> Any:
    """``joblib.load`` of ``data`` (one file's bytes) resolving only the ``allowed`` globals.

    Raises UnsafePickleError (RefusedGlobalError for a global outside ``allowed``), its message
    starting with ``what``. Warnings raised while loading (sklearn's InconsistentVersionWarning...)
    are not shown but appended to ``caught`` when given.
    """
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    base = _restricted_unpickler_class()
    unpickler_class = type("Restricted", (base,), {"allowed": frozenset(allowed)})
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always")
        try:
            with _validate_fileobject_and_memmap(io.BytesIO(data), what, None) as (fobj, _):
                if isinstance(fobj, str):  # joblib < 0.10 format: arrays in side files, never ours
                    raise UnsafePickleError(f"{what}: written by joblib older than 0.10, not by the notebooks")
                unpickler = unpickler_class(what, fobj, ensure_native_byte_order=True)
                loaded = unpickler.load()
        except UnsafePickleError:
            raise
        except Exception as exc:  # truncated, garbled, or objects that do not fit together
            raise UnsafePickleError(f"{what}: not a readable joblib pickle ({type(exc).__name__}: {exc})") from None
    for warning in recorded:
        log.debug("%s: %s", what, warning.message)
    if caught is not None:
        caught.extend(recorded)
    return loaded
