"""The ``leasepool`` command's arguments, help and usage errors (no Redis needed)."""

from __future__ import annotations

import argparse

import pytest

from leasepool import LeaseRecord, PoolStatus, WaitingProcess, __version__
from leasepool._cli import main, parser
from leasepool._cli_format import format_status


def subparsers() -> dict[str, argparse.ArgumentParser]:
    top = parser()
    (sub,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"leasepool {__version__}\n"


def test_every_argument_has_help_and_shows_its_default() -> None:
    commands = subparsers()
    assert set(commands) == {"demo", "status", "pools", "revoke", "capacity", "exporter"}
    for name, command in commands.items():
        text = command.format_help()
        for action in command._actions:
            assert action.help, (name, action.dest)
            if action.default not in (None, False, argparse.SUPPRESS):
                assert f"(default: {action.default})" in text, (name, action.dest)
        assert "--json" in text, name
        if name != "demo":
            assert "--url" in text and "LEASEPOOL_REDIS_URL" in text, name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "--watch", "-1"], "--watch: must be a finite number of seconds > 0"),
        (["status", "--watch", "0"], "--watch: must be a finite number of seconds > 0"),
        (["status", "--watch", "nan"], "--watch: must be a finite number of seconds > 0"),
        (["status", "--watch", "inf"], "--watch: must be a finite number of seconds > 0"),
        (["status", "--limit", "0"], "--limit: must be an integer >= 1"),
        (["capacity", "p", "2.5"], "from 0 (paused) to 1000000, got '2.5'"),
        (["capacity", "p", "-1"], "from 0 (paused) to 1000000, got '-1'"),
        (["capacity", "p", "1000001"], "from 0 (paused) to 1000000, got '1000001'"),
        (["exporter", "--port", "0"], "--port: must be a port from 1 to 65535"),
        (["exporter", "--interval", "-2"], "--interval: must be a finite number"),
        (["demo", "--processes", "0"], "--processes: must be an integer >= 1"),
        (["revoke", "p"], "the following arguments are required: lease_id"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err


@pytest.mark.parametrize(
    "args", [["status"], ["pools"], ["capacity", "p"], ["revoke", "p", "x"], ["exporter"]]
)
def test_no_url_is_a_usage_error(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LEASEPOOL_REDIS_URL", raising=False)
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"leasepool {args[0]}: no Redis URL: pass --url or set LEASEPOOL_REDIS_URL" in err


def test_bad_url_and_prefix_from_the_environment_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEASEPOOL_REDIS_URL", "redis://:hunter2@host:99999/0")
    assert main(["pools"]) == 2
    err = capsys.readouterr().err
    assert "not a valid Redis URL" in err and "hunter2" not in err
    monkeypatch.setenv("LEASEPOOL_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("LEASEPOOL_KEY_PREFIX", "a{b}")
    assert main(["pools"]) == 2
    assert "LEASEPOOL_KEY_PREFIX" in capsys.readouterr().err


def test_demo_refuses_two_urls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--redis", "redis://a:1/0", "--url", "redis://b:1/0"]) == 2
    err = capsys.readouterr().err
    assert "deprecated" in err and "not both" in err


def status(capacity: int | None, leases: int, waiters: int = 0) -> PoolStatus:
    records = tuple(
        LeaseRecord(f"id{i}", "", "h", 1, i, 1_000, 2_000, 61_000) for i in range(leases)
    )
    who = tuple(WaitingProcess(f"h{i}", i, 1) for i in range(waiters))
    return PoolStatus("p", capacity, records, waiters, 1_000, who)


def test_status_text_says_paused_unset_and_lists_at_most_ten_processes() -> None:
    assert format_status(status(0, 0)).splitlines()[0] == "pool p: 0/0 leased (paused: capacity 0)"
    assert format_status(status(None, 0)).splitlines()[0] == "pool p: 0/unset leased"
    text = format_status(status(2, 2, waiters=12))
    assert text.splitlines()[0] == "pool p: 2/2 leased, 12 waiting"
    assert text.splitlines()[1].endswith(", ... 2 more processes")
    assert text.splitlines()[-1].split() == ["id1", "-", "h:1", "1", "0.0s", "60.0s"]
