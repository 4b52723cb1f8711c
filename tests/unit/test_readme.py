"""The README's quickstart must run as written: it is the first code a new user copies."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_opens_with_the_two_setup_commands() -> None:
    first_block = README.read_text(encoding="utf-8").split("```bash\n", 1)[1].split("```")[0]
    assert first_block.strip().splitlines() == [
        "pip install . && leasepool demo",
        'pip install -e ".[test]" && pytest',
    ]


def test_quickstart_runs_and_prints_its_result(tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(python_blocks()[0], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "HELLO"


def test_redis_snippet_names_real_public_api() -> None:
    snippet = python_blocks()[1]
    namespace: dict[str, object] = {}
    # Only the import line runs: the rest needs a server at the snippet's address.
    exec(snippet.split("\n\n", 1)[0], namespace)
    assert "RedisCoordinator" in namespace
    assert "LeasedExecutorManager" in namespace
