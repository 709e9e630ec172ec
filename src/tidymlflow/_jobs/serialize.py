"""Pickling py-tidymodels fits, formula-molded ones included.

A fit that went through ``py_hardhat.mold`` keeps patsy's ``DesignInfo`` (and inside it
``EvalFactor``, ``Term``, ``FactorInfo``, ``SubtermInfo``, ``ContrastMatrix``, ``Origin``,
``EvalEnvironment``), and patsy makes those refuse pickling on purpose: their ``__getstate__``
raises ``NotImplementedError``. They are plain attribute holders, so the pickler here writes each
one as *its class plus its attribute dict*, the same reduction Python uses for an ordinary object
(``copyreg.__newobj__`` then a state dict), and any unpickler rebuilds it with ``cls.__new__`` and
a ``__dict__`` update: same attributes, same values (numpy arrays bit for bit), so
``patsy.build_design_matrices`` builds the same design matrix and the model predicts the same
numbers. Loading needs nothing from tidymlflow: it is ordinary ``pickle.loads``.

The reduction applies only inside :class:`Pickler` (``reducer_override``), only to classes defined
in patsy that themselves refuse pickling; nothing is registered with ``copyreg`` and nothing
changes for any other pickler. Everything else goes through cloudpickle, which also writes
closures (recipe selectors) and classes defined in ``__main__`` by value.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import pickletools
import sys
from typing import Any

import cloudpickle

_REFUSING_HOOKS = ("__getstate__", "__reduce__", "__reduce_ex__")
#: ``cls.__new__(cls)``; pickle writes a reduction through it as the NEWOBJ opcode
_NEWOBJ: Any = copyreg.__newobj__  # type: ignore[attr-defined]


def _from_patsy(obj: Any) -> bool:
    return (getattr(obj, "__module__", None) or "").partition(".")[0] == "patsy"


def refuses_pickling(cls: type) -> bool:
    """True for a patsy class whose own pickling hook is patsy's (which raises)."""
    return _from_patsy(cls) and any(_from_patsy(getattr(cls, hook, None)) for hook in _REFUSING_HOOKS)


class Pickler(cloudpickle.Pickler):
    """cloudpickle, plus patsy's refusing objects written as class + attribute dict."""

    def __init__(self, file: Any, protocol: int | None = None) -> None:
        super().__init__(file, protocol=protocol)
        self._refuses: dict[type, bool] = {}
        #: qualified names of the classes written by state (for the model's metadata)
        self.rebuilt: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        refuses = self._refuses.get(cls)
        if refuses is None:
            refuses = self._refuses[cls] = refuses_pickling(cls)
        if not refuses:
            return super().reducer_override(obj)
        self.rebuilt.add(f"{cls.__module__}.{cls.__qualname__}")
        if hasattr(obj, "__array__") and hasattr(obj, "view"):
            # patsy.DesignMatrix: an ndarray subclass; rebuilt by its public constructor
            import numpy as np

            return (cls, (obj.view(np.ndarray), getattr(obj, "design_info", None)))
        state = getattr(obj, "__dict__", None)
        if not isinstance(state, dict) or isinstance(obj, (dict, list, set, tuple)):
            raise pickle.PicklingError(f"cannot write {cls.__module__}.{cls.__qualname__}: it refuses "
                                       "pickling and keeps its state outside an attribute dict")
        return (_NEWOBJ, (cls,), dict(state))


def dumps(obj: Any) -> tuple[bytes, set[str]]:
    """``obj`` pickled, and the patsy classes that were written by state."""
    buffer = io.BytesIO()
    pickler = Pickler(buffer)
    pickler.dump(obj)
    return buffer.getvalue(), pickler.rebuilt


def loads(data: bytes) -> Any:
    """Plain unpickling (what :func:`dumps` wrote needs no tidymlflow to load)."""
    return pickle.loads(data)


_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
               "BINSTRING", "STRING"}
_GET_OPS = {"BINGET", "LONG_BINGET", "GET"}
_PUT_OPS = {"BINPUT", "LONG_BINPUT", "PUT"}


def _index(arg: Any) -> int:
    return arg if isinstance(arg, int) else int(str(arg))


def referenced_modules(data: bytes) -> set[str]:
    """The top-level modules a pickle imports when it loads (its GLOBAL / STACK_GLOBAL opcodes,
    with module names that were memoized and fetched again), standard library left out."""
    memo: dict[int, Any] = {}
    pushed: list[Any] = []
    last: Any = None
    modules: set[str] = set()
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in _STRING_OPS:
            last = arg
            pushed.append(arg)
        elif name in _GET_OPS:
            last = memo.get(_index(arg))
            pushed.append(last)
        elif name == "MEMOIZE":
            memo[len(memo)] = last
        elif name in _PUT_OPS:
            memo[_index(arg)] = last
        elif name == "STACK_GLOBAL":
            if len(pushed) >= 2 and isinstance(pushed[-2], str):
                modules.add(pushed[-2])
            last = None
        elif name in ("GLOBAL", "INST"):
            modules.add(str(arg).split(" ", 1)[0])
            last = None
        else:
            last = None
    tops = {m.partition(".")[0] for m in modules if m}
    return {m for m in tops if m not in sys.stdlib_module_names and m != "builtins"}
