"""The guard-rail checker ``.ci/check_modules.py`` (module length, import cycles), proven on
small package trees written to a temporary folder.

These tests check the checker, not the real tree: ``.ci/run`` runs it on ``src/leasepool``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "check_modules.py"


def _load_checker() -> ModuleType:
    name = "_leasepool_ci_check_modules"
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


def make_tree(root: Path, files: dict[str, str]) -> Path:
    """A package ``pkg`` under ``root`` with these files (path -> source)."""
    package = root / "pkg"
    for name, source in {"__init__.py": "", **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return package


def problems(package: Path, max_lines: int = 600) -> list[str]:
    found: list[str] = checker.check(package, max_lines)
    return found


def cycles(package: Path) -> list[str]:
    return [p for p in problems(package) if p.startswith("import cycle:")]


def test_a_clean_tree_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = make_tree(
        tmp_path,
        {
            "a.py": "import os\nfrom pkg import b\nfrom pkg.sub import c\n",
            "b.py": "from pkg.sub.c import VALUE\n",
            "sub/__init__.py": "",
            "sub/c.py": "VALUE = 1\n",
        },
    )
    assert checker.main([str(package)]) == 0
    out = capsys.readouterr()
    assert "no problems" in out.out
    assert out.err == ""


def test_a_module_over_the_limit_is_reported_with_its_length(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = make_tree(
        tmp_path,
        {"long.py": "x = 1\n" * 601, "exact.py": "x = 1\n" * 600, "sub/deep.py": "\n" * 700},
    )
    assert checker.main([str(package)]) == 1
    err = capsys.readouterr().err
    assert "long.py: 601 lines, over the limit of 600" in err
    assert "deep.py: 700 lines" in err
    assert "exact.py" not in err
    assert problems(package, max_lines=700) == []


def test_a_two_module_cycle_is_reported_with_the_import_lines(tmp_path: Path) -> None:
    package = make_tree(
        tmp_path,
        {"a.py": "import os\nfrom pkg.b import B\nA = 1\n", "b.py": "from pkg import a\nB = 2\n"},
    )
    assert cycles(package) == ["import cycle: pkg.a (line 2) -> pkg.b (line 1) -> pkg.a"]


def test_imports_inside_functions_count(tmp_path: Path) -> None:
    package = make_tree(
        tmp_path,
        {
            "a.py": "def f():\n    from pkg.b import g\n    return g\n",
            "b.py": "import pkg.a\n\ndef g():\n    pass\n",
        },
    )
    assert cycles(package) == ["import cycle: pkg.a (line 2) -> pkg.b (line 1) -> pkg.a"]


def test_type_checking_imports_do_not_count_but_their_else_branch_does(tmp_path: Path) -> None:
    clean = make_tree(
        tmp_path / "clean",
        {
            "a.py": """\
                from typing import TYPE_CHECKING
                import typing
                if TYPE_CHECKING:
                    from pkg.b import B
                if typing.TYPE_CHECKING:
                    import pkg.b
                """,
            "b.py": "from pkg.a import TYPE_CHECKING\n",
        },
    )
    assert problems(clean) == []
    dirty = make_tree(
        tmp_path / "dirty",
        {
            "a.py": """\
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    pass
                else:
                    from pkg.b import B
                """,
            "b.py": "from pkg.a import TYPE_CHECKING\n",
        },
    )
    assert cycles(dirty) == ["import cycle: pkg.a (line 5) -> pkg.b (line 1) -> pkg.a"]


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    package = make_tree(
        tmp_path,
        {
            "sub/__init__.py": "",
            "sub/x.py": "from . import y\n",
            "sub/y.py": "from ..z import Z\n",
            "z.py": "from .sub.x import X\nZ = 1\n",
        },
    )
    assert cycles(package) == [
        "import cycle: pkg.sub.x (line 1) -> pkg.sub.y (line 1) -> pkg.z (line 1) -> pkg.sub.x"
    ]


def test_a_name_from_the_package_init_points_at_the_init(tmp_path: Path) -> None:
    package = make_tree(
        tmp_path,
        {
            "__init__.py": "from pkg.a import A\nVERSION = '1'\n",
            "a.py": "from pkg import VERSION\n",
        },
    )
    assert cycles(package) == ["import cycle: pkg (line 1) -> pkg.a (line 1) -> pkg"]


def test_parent_packages_are_not_counted_as_imported(tmp_path: Path) -> None:
    # Importing pkg.sub.c runs pkg/__init__.py too, but an edge to it from every module
    # would make any package that re-exports its modules cyclic.
    package = make_tree(
        tmp_path,
        {
            "__init__.py": "from pkg.a import A\n",
            "a.py": "from pkg.sub.c import C\nA = C\n",
            "sub/__init__.py": "from pkg.sub.c import C\n",
            "sub/c.py": "C = 1\n",
        },
    )
    assert problems(package) == []


def test_each_cycle_is_reported_once(tmp_path: Path) -> None:
    package = make_tree(
        tmp_path,
        {
            "a.py": "import pkg.b\n",
            "b.py": "import pkg.c\n",
            "c.py": "import pkg.a\n",
            "x.py": "import pkg.y\n",
            "y.py": "import pkg.x\n",
            "free.py": "import pkg.a\nimport pkg.x\n",
        },
    )
    assert cycles(package) == [
        "import cycle: pkg.a (line 1) -> pkg.b (line 1) -> pkg.c (line 1) -> pkg.a",
        "import cycle: pkg.x (line 1) -> pkg.y (line 1) -> pkg.x",
    ]


def test_a_file_that_does_not_parse_is_a_problem(tmp_path: Path) -> None:
    package = make_tree(tmp_path, {"broken.py": "def (:\n"})
    (found,) = problems(package)
    assert "broken.py: cannot parse" in found


def test_the_script_exits_1_with_the_problems_on_stderr(tmp_path: Path) -> None:
    package = make_tree(tmp_path, {"a.py": "import pkg.b\n", "b.py": "import pkg.a\n"})
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(package), "--max-lines", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "import cycle: pkg.a (line 1) -> pkg.b (line 1) -> pkg.a" in done.stderr
    assert "__init__.py" not in done.stderr  # empty: 0 lines
    assert "check_modules: 1 problem(s)" in done.stderr
    assert done.stdout == ""


def test_a_folder_that_is_not_a_package_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "not a package directory" in done.stderr
