"""Keeps ``leasepool.__all__`` honest, and the module layout private."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import leasepool
import leasepool.testing

PACKAGE_DIR = Path(leasepool.__file__).parent
# Plus 0.1.3's public module paths, kept as thin re-exports (tests/unit/test_compat_013.py).
PUBLIC_MODULES = {
    "__init__",
    "__main__",
    "testing",
    "backends",
    "exceptions",
    "grinder",
    "manager",
    "types",
    "prometheus",  # leasepool[prometheus]: the manager collector
}

# The public names of leasepool 0.1.3: code written for it imports these.
ORIGINAL_NAMES = {
    "LeasedExecutorManager",
    "ExecutorLease",
    "ExecutorBackend",
    "WorkGrinder",
    "ProcessLoggingConfig",
    "LeasePoolError",
    "LeasePoolNotStartedError",
    "LeaseUnavailableError",
    "LeaseExpiredError",
    "UnsupportedBackendError",
}


def defined_in_leasepool(obj: object) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module == "leasepool" or module.startswith("leasepool.")


def test_every_name_in_all_exists() -> None:
    missing = [name for name in leasepool.__all__ if not hasattr(leasepool, name)]
    assert missing == []


def test_all_has_no_duplicates() -> None:
    assert len(leasepool.__all__) == len(set(leasepool.__all__))


def test_every_public_class_or_function_is_in_all() -> None:
    unlisted = sorted(
        name
        for name, obj in vars(leasepool).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and defined_in_leasepool(obj)
        and name not in leasepool.__all__
    )
    assert unlisted == []


def test_original_names_are_present() -> None:
    assert set(leasepool.__all__) >= ORIGINAL_NAMES
    namespace: dict[str, object] = {}
    exec("from leasepool import *", namespace)
    assert set(namespace) >= ORIGINAL_NAMES


def test_additions_named_in_the_spec_are_exported() -> None:
    for name in ("RedisCoordinator", "LeaseLostError", "CoordinatorUnavailableError"):
        assert name in leasepool.__all__, name
        assert hasattr(leasepool, name)


def test_exception_hierarchy() -> None:
    base = leasepool.LeasePoolError
    assert issubclass(base, Exception)
    for name in (
        "LeasePoolNotStartedError",
        "LeaseUnavailableError",
        "LeaseExpiredError",
        "UnsupportedBackendError",
        "CoordinatorUnavailableError",
    ):
        assert issubclass(getattr(leasepool, name), base), name
    assert issubclass(leasepool.LeaseLostError, leasepool.LeaseExpiredError)


def _library_modules() -> list[str]:
    return [
        f"leasepool.{info.name}"
        for info in pkgutil.iter_modules([str(PACKAGE_DIR)])
        if info.name not in ("__main__", "_cli", "_demo", "_demo_redis")
    ]


@pytest.mark.parametrize("module_name", _library_modules())
def test_every_leasepool_error_a_module_defines_is_exported(module_name: str) -> None:
    # Callers catch errors by class: any LeasePoolError the library can raise
    # must be importable from the package itself, not from a private module.
    module = importlib.import_module(module_name)
    unexported = sorted(
        name
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, leasepool.LeasePoolError)
        and obj.__module__ == module_name
        and getattr(leasepool, obj.__name__, None) is not obj
    )
    assert unexported == [], f"{module_name} defines unexported errors {unexported}"


def test_modules_are_private() -> None:
    offenders = []
    for path in PACKAGE_DIR.iterdir():
        if path.name in ("__pycache__", "py.typed") or path.name.startswith("."):
            continue
        if path.is_dir():
            if not path.name.startswith("_") and path.name not in PUBLIC_MODULES:
                offenders.append(path.name)
            continue
        if path.suffix != ".py":
            continue
        if path.stem not in PUBLIC_MODULES and not path.stem.startswith("_"):
            offenders.append(path.name)
    assert offenders == []


def test_py_typed_marker_is_present() -> None:
    assert (PACKAGE_DIR / "py.typed").is_file()


def test_testing_module_exports_manual_clock() -> None:
    assert leasepool.testing.__all__ == ["ManualClock"]
    clock = leasepool.testing.ManualClock()
    assert isinstance(clock, leasepool.Clock)


def test_the_testing_package_has_one_public_submodule() -> None:
    names = {info.name for info in pkgutil.iter_modules(leasepool.testing.__path__)}
    assert "contract" in names
    assert [name for name in names if not name.startswith("_")] == ["contract"]
    contract = importlib.import_module("leasepool.testing.contract")
    assert contract.__all__ == ["CoordinatorContract", "CoordinatorFactory", "Harness"]
    assert not contract.CoordinatorContract.__name__.startswith("Test")  # never collected itself


def _fresh_interpreter(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_import_leasepool_does_not_import_redis() -> None:
    # redis-py costs about half of `import leasepool`: only Redis users should pay it.
    out = _fresh_interpreter(
        "import sys\n"
        "import leasepool, leasepool.testing, leasepool._settings\n"
        "print('before', sorted(m for m in sys.modules if m.split('.')[0] == 'redis'))\n"
        "assert 'RedisCoordinator' in dir(leasepool)\n"
        "from leasepool import RedisCoordinator\n"
        "assert leasepool.RedisCoordinator is RedisCoordinator\n"
        "assert RedisCoordinator.__module__.startswith('leasepool.')\n"
        "print('after', 'redis' in sys.modules)\n"
    )
    assert out.splitlines() == ["before []", "after True"]


def test_a_misspelt_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="RedisCoordinater"):
        leasepool.RedisCoordinater  # type: ignore[attr-defined]  # noqa: B018


def test_import_leasepool_testing_needs_no_pytest() -> None:
    out = _fresh_interpreter(
        "import sys\n"
        "import leasepool.testing\n"
        "leasepool.testing.ManualClock().advance(1)\n"
        "print('pytest' in sys.modules, '_pytest' in sys.modules)\n"
    )
    assert out.split() == ["False", "False"]


def test_version_is_a_string() -> None:
    assert isinstance(leasepool.__version__, str)
    assert leasepool.__version__.count(".") >= 2
