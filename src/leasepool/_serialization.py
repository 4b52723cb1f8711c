"""``serializer="cloudpickle"``: pickle the call in the caller, unpickle it in the worker.

With the stdlib default, ``ProcessPoolExecutor`` pickles each call on its queue
feeder thread, so a bad payload surfaces later, on the future. With cloudpickle
we serialise ``(fn, args, kwargs)`` to bytes inside ``submit`` itself, on the
caller's thread: a payload that cannot be pickled fails that one ``submit`` with
:class:`SerializationError` and never reaches the executor. The executor then
only ever sees a module-level function and a ``bytes`` object, which stdlib
pickle always handles.

cloudpickle pickles lambdas, closures and functions defined in ``__main__`` or
inside other functions by value, so workers need not be able to import them.
Its output is ordinary pickle data: workers load it with :func:`pickle.loads`
(cloudpickle only has to be importable there, which it is: it is a dependency).

This module is imported by worker processes (and subinterpreters) to run
:func:`run_pickled`, so it stays small and imports cloudpickle lazily.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, Final, Literal, TypeVar

from leasepool._errors import LeasePoolError

R = TypeVar("R")
E = TypeVar("E", bound=Executor)
Serializer = Literal["pickle", "cloudpickle"]
SERIALIZERS: Final = ("pickle", "cloudpickle")


class SerializationError(LeasePoolError, TypeError):
    """A call could not be serialised for (or deserialised in) a worker.

    Raised by ``submit``/``run`` in the caller when ``serializer="cloudpickle"``
    cannot pickle the function or one of its arguments; the message names which
    one, and ``__cause__`` holds the original pickling error. Only that call
    fails: the executor never saw it. Also raised inside a worker that cannot
    unpickle a call (for example a by-reference import that fails there).
    It is a ``TypeError`` too, like the stdlib's "cannot pickle ..." errors.
    """


def validate_serializer(value: object) -> Serializer:
    if not isinstance(value, str):
        raise TypeError(f"serializer must be 'pickle' or 'cloudpickle', got {value!r}")
    if value == "pickle":
        return "pickle"
    if value == "cloudpickle":
        return "cloudpickle"
    raise ValueError(f"serializer must be 'pickle' or 'cloudpickle', got {value!r}")


def _describe(obj: object) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if isinstance(name, str):
        module = getattr(obj, "__module__", None)
        return f"{module}.{name}" if isinstance(module, str) else name
    text = repr(obj)
    return text if len(text) <= 80 else text[:77] + "..."


def _culprit(
    dumps: Callable[[object], bytes],
    fn: object,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> str:
    """Which part of the call cannot be pickled; only used on the error path."""
    parts: list[tuple[str, object]] = [(f"the function {_describe(fn)}", fn)]
    parts += [(f"positional argument {i} ({_describe(a)})", a) for i, a in enumerate(args)]
    parts += [(f"keyword argument {k!r} ({_describe(v)})", v) for k, v in kwargs.items()]
    for label, part in parts:
        try:
            dumps(part)
        except Exception:
            return label
    return "the call"  # only the combination fails (for example a recursion limit)


class CloudpickleCalls:
    """Turns ``submit(fn, *args, **kwargs)`` into ``submit(run_pickled, payload)``.

    Used as a mixin in front of an executor class; the cost is one
    ``cloudpickle.dumps`` per call, in the caller.
    """

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        payload = dumps_call(fn, args, kwargs)
        submit: Callable[..., Future[R]] = super().submit  # type: ignore[misc]
        return submit(run_pickled, payload)


def dumps_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    import cloudpickle  # type: ignore[import-untyped]

    try:
        return cloudpickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]
    except Exception as exc:
        what = _culprit(cloudpickle.dumps, fn, args, kwargs)
        raise SerializationError(
            f"cannot send the call to {_describe(fn)} to a worker: {what} cannot be "
            f"pickled with cloudpickle ({type(exc).__name__}: {exc})"
        ) from exc


def run_pickled(payload: bytes) -> Any:
    """Worker side: load ``(fn, args, kwargs)`` and call it."""
    try:
        fn, args, kwargs = pickle.loads(payload)
    except Exception as exc:
        raise SerializationError(
            f"worker process {os.getpid()} could not unpickle the call "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return fn(*args, **kwargs)


_SUBCLASSES: dict[type[Executor], type[Executor]] = {}


def with_cloudpickle(executor_class: type[E]) -> type[E]:
    """A subclass of ``executor_class`` whose ``submit`` pickles in the caller (cached)."""
    cls = _SUBCLASSES.get(executor_class)
    if cls is None:
        cls = type(
            f"Cloudpickle{executor_class.__name__}",
            (CloudpickleCalls, executor_class),
            {"__module__": __name__},
        )
        _SUBCLASSES[executor_class] = cls
    return cls  # type: ignore[return-value]
