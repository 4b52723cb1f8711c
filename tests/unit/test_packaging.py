"""The package is ready to publish: licence, metadata, one version, honest extras and
floors, and an sdist complete enough that its own test suite runs from it.

Builds the wheel and the sdist once (with ``python -m build``) and reads them.
"""

from __future__ import annotations

import email
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import leasepool

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT: dict[str, Any] = PYPROJECT["project"]
# Folders whose every file the sdist must carry: the tests read them.
SHIPPED_DIRS = ["src", "lua", "tests", "examples", "deploy", "docs", "benchmarks", ".ci"]
SHIPPED_FILES = [
    "LICENSE",
    "CHANGELOG.md",
    "README.md",
    "pyproject.toml",
    "mkdocs.yml",
    "docker-compose.yml",
]
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(wheel, sdist) built from this tree; the wheel is built from the sdist."""
    out = tmp_path_factory.mktemp("dist")
    # Without hatchling installed, build fetches it into an isolated environment.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-isolation"]
    result = subprocess.run(
        [sys.executable, "-m", "build", *isolation, "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = out.glob("leasepool-*.whl")
    (sdist,) = out.glob("leasepool-*.tar.gz")
    yield wheel, sdist


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


# -- pyproject -------------------------------------------------------------------------


def test_the_version_is_written_once() -> None:
    assert "version" not in PROJECT
    assert PROJECT["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "src/leasepool/__init__.py"
    assert importlib.metadata.version("leasepool") == leasepool.__version__


def test_licence_is_apache_2_and_the_file_is_the_licence() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])


def test_project_urls() -> None:
    urls = PROJECT["urls"]
    assert {"Documentation", "Repository", "Changelog"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())


def test_test_extra_holds_only_test_needs() -> None:
    extras = PROJECT["optional-dependencies"]
    names = {re.split(r"[<>=\[; ]", spec)[0].lower() for spec in extras["test"]}
    for tool in ("ruff", "mypy", "mkdocs", "mkdocs-material", "twine", "testcontainers"):
        assert tool not in names, f"{tool} belongs to another extra"
    assert {"ruff", "mypy"} <= {s.split(">")[0] for s in extras["lint"]}
    assert any(s.startswith("mkdocs-material") for s in extras["docs"])


def _floors() -> dict[str, str]:
    floors = {}
    for spec in PROJECT["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", spec)
        assert match, f"dependency {spec!r} has no plain >= floor"
        floors[match[1].lower()] = match[2]
    return floors


def test_ci_tests_each_dependency_at_its_floor() -> None:
    floors = _floors()
    assert floors["redis"] == "5.2"
    pins = {}
    for line in (ROOT / ".ci" / "constraints-floor.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    assert set(pins) >= set(floors)
    for name, floor in floors.items():
        # ">=5.2" is tested with 5.2.0: the floor itself, not a later release.
        assert pins[name] == ".".join([*floor.split("."), "0", "0"][:3]), (name, pins)


def test_ci_runs_every_python_the_classifiers_claim() -> None:
    claimed = {
        c.rsplit(" ", 1)[1]
        for c in PROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert claimed == {"3.11", "3.12", "3.13"}
    ci = (ROOT / ".ci" / "run").read_text()
    for version in claimed:
        assert re.search(rf"\b{re.escape(version)}\b", ci), f"CI never runs Python {version}"


def test_compose_file_suits_compose_v1_and_v2() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    top_level = [line.split(":")[0] for line in text.splitlines() if re.match(r"[a-z]", line)]
    assert "name" not in top_level  # Compose v2 only
    assert top_level[0] == "version"  # Compose v1 needs it for this format


# -- the artefacts ------------------------------------------------------------------------


def test_wheel_metadata(built: tuple[Path, Path]) -> None:
    wheel, _ = built
    meta = _metadata(wheel)
    assert meta["Version"] == leasepool.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert "redis>=5.2" in meta.get_all("Requires-Dist", [])
    assert len(meta.get_all("Project-URL", [])) == len(PROJECT["urls"])
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (licence,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(licence) == (ROOT / "LICENSE").read_bytes()
        for module in ("exceptions", "manager", "backends", "grinder", "types"):
            assert f"leasepool/{module}.py" in names


def _source_files(folder: str) -> set[str]:
    base = ROOT / folder
    return {
        path.relative_to(ROOT).as_posix()
        for path in base.rglob("*")
        if path.is_file() and not SKIPPED_PARTS & set(path.parts) and path.suffix != ".pyc"
    }


def test_sdist_carries_everything_the_tests_read(built: tuple[Path, Path]) -> None:
    _, sdist = built
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        prefix = archive.getnames()[0].split("/")[0]
        licence = archive.extractfile(f"{prefix}/LICENSE")
        assert licence is not None and licence.read() == (ROOT / "LICENSE").read_bytes()
    missing = [name for name in SHIPPED_FILES if name not in names]
    for folder in SHIPPED_DIRS:
        missing += sorted(_source_files(folder) - names)
    assert missing == []
    assert not any(SKIPPED_PARTS & set(name.split("/")) for name in names)
