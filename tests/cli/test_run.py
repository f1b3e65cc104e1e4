"""``horae run module:attribute``: a scheduler from user code runs until a signal; the
first SIGINT/SIGTERM stops it cleanly (exit code 0), a second cancels running jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _cli_fixtures import cli_env

from horae._cli import main

__all__ = ["cli_env"]  # the fixture used here

APP = """
import os
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from horae import AsyncScheduler, Scheduler
from horae.datastores.sqlite import SQLiteDataStore

OUT = Path(os.environ["HORAE_TEST_OUT"])
DB = os.environ["HORAE_TEST_DB"]


def note(text):
    with OUT.open("a") as out:
        out.write(text + "\\n")


async def tick():
    note("tick")


async def slow():
    note("slow started")
    await anyio.sleep(60)


def sync_tick():
    note("sync tick")


scheduler = AsyncScheduler(SQLiteDataStore(DB))
not_a_scheduler = 42


@asynccontextmanager
async def with_schedules():
    async with scheduler:
        await scheduler.add_schedule(tick, "interval", seconds=0.2, id="tick")
        yield scheduler


@asynccontextmanager
async def with_a_slow_job():
    async with scheduler:
        await scheduler.add_schedule(
            slow, "interval", hours=1, id="slow", start_time="2020-01-01"
        )
        yield scheduler


def crashing_factory():
    raise RuntimeError("no configuration")


def sync_factory():
    made = Scheduler(SQLiteDataStore(DB))
    made.add_schedule(sync_tick, "interval", seconds=0.2, id="sync-tick")
    return made
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "broken.py").write_text("raise RuntimeError('configuration missing')\n")
    return tmp_path


def start(app_dir: Path, env: dict[str, str], target: str) -> subprocess.Popen[str]:
    env = {
        **env,
        "HORAE_TEST_OUT": str(app_dir / "out.txt"),
        "HORAE_TEST_DB": str(app_dir / "app.sqlite3"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "horae", "run", target, "--app-dir", str(app_dir)],
        cwd=app_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, line: str, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().splitlines().count(line) >= count:
            return
        if process.poll() is not None:
            raise AssertionError(f"horae run ended early: {process.communicate()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"{line!r} did not appear {count} times: {process.communicate()}")


@pytest.mark.parametrize(
    ("target", "line", "signum"),
    [
        ("app:with_schedules", "tick", signal.SIGINT),
        ("app:sync_factory", "sync tick", signal.SIGTERM),
    ],
)
def test_runs_until_a_signal_then_exits_cleanly(
    app_dir: Path, cli_env: dict[str, str], target: str, line: str, signum: signal.Signals
) -> None:
    process = start(app_dir, cli_env, target)
    wait_for(app_dir / "out.txt", line, 2, process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "horae.scheduler: Scheduler" in err
    assert err.rstrip().endswith("stopped")


def test_a_second_signal_cancels_running_jobs(app_dir: Path, cli_env: dict[str, str]) -> None:
    process = start(app_dir, cli_env, "app:with_a_slow_job")
    wait_for(app_dir / "out.txt", "slow started", 1, process)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # let the first signal arrive on its own
    assert process.poll() is None  # still waiting for the slow job (grace period: 30 s)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    assert "Received SIGTERM; stopping the scheduler" in err
    assert "Received SIGINT again; cancelling running jobs" in err


@pytest.fixture
def in_process(app_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Import the test apps in this process, and forget them afterwards."""
    monkeypatch.setenv("HORAE_TEST_OUT", str(app_dir / "out.txt"))
    monkeypatch.setenv("HORAE_TEST_DB", str(app_dir / "app.sqlite3"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("app", "broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)


@pytest.mark.usefixtures("in_process")
def test_a_crashing_factory_exits_with_1(
    app_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "app:crashing_factory", "--app-dir", os.fspath(app_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("horae run: error: 'app:crashing_factory' failed:\nTraceback")
    assert err.rstrip().endswith("RuntimeError: no configuration")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("app", "invalid target 'app': expected 'module:attribute'"),
        ("nowhere:scheduler", "cannot import the module 'nowhere': No module named 'nowhere'"),
        ("app:missing", "the module 'app' has no attribute 'missing'"),
        ("app:not_a_scheduler", "'app:not_a_scheduler' gave int; expected an AsyncScheduler"),
        ("broken:scheduler", "importing the module 'broken' raised an exception:\nTraceback"),
    ],
)
@pytest.mark.usefixtures("in_process")
def test_bad_targets_exit_with_2(
    app_dir: Path, capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    assert main(["run", target, "--app-dir", os.fspath(app_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("horae run: error: ")
    assert message in err
