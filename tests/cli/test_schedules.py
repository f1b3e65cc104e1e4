"""``horae schedules``: through a subprocess, against every persistent store, holding
schedules that a scheduler added; the error paths in process (the same ``main``)."""

from __future__ import annotations

import gc
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from _cli_fixtures import cli_env, horae_cli, mongodb_server_uri, store_url

from horae import AsyncScheduler
from horae._cli import main
from horae._store_urls import create_data_store

RunCli = Callable[..., subprocess.CompletedProcess[str]]
__all__ = ["cli_env", "horae_cli", "mongodb_server_uri", "store_url"]  # fixtures used here


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def stored(url: str) -> dict[str, tuple[bool, str | None]]:
    async with AsyncScheduler(create_data_store(url)) as scheduler:
        return {s.id: (s.paused, s.pause_reason) for s in await scheduler.get_schedules()}


def test_list_pause_show_resume_remove(
    horae_cli: RunCli, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command itself, once per store, through a subprocess ...
    listed = horae_cli("schedules", "list", "--store", store_url, "--tz", "UTC")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "ID           TASK            TRIGGER                      NEXT FIRE TIME"
        "             PAUSED",
        "every-5-min  json:dumps      interval[0:05:00]            2030-01-01 00:00:00+00:00  no",
        "nightly      builtins:print  0 0 3 * * * (Europe/Berlin)  2030-01-01 02:00:00+00:00  no",
    ]
    # ... then the other actions in process (the same main(); a subprocess costs a second)
    paused = run_main(
        capsys, "schedules", "pause", "nightly", "--store", store_url, "--reason", "maintenance"
    )
    assert paused == (0, "paused schedule 'nightly'\n", "")
    assert anyio.run(stored, store_url)["nightly"] == (True, "maintenance")

    code, out, err = run_main(
        capsys, "schedules", "show", "nightly", "--store", store_url, "--json", "-n", "2"
    )
    assert code == 0, err
    details = json.loads(out)
    assert details["paused"] is True
    assert details["pause_reason"] == "maintenance"
    assert details["args"] == ["backup"]
    assert details["upcoming"] == ["2030-01-01T03:00:00+01:00", "2030-01-02T03:00:00+01:00"]

    code, out, err = run_main(capsys, "schedules", "resume", "nightly", "--store", store_url)
    assert (code, out, err) == (
        0,
        "resumed schedule 'nightly'; next fire time: 2030-01-01 03:00:00+01:00\n",
        "",
    ) or (code, err) == (0, "")  # in a zone other than CET the time reads differently

    removed = run_main(capsys, "schedules", "remove", "every-5-min", "--store", store_url)
    assert removed == (0, "removed schedule 'every-5-min'\n", "")
    assert anyio.run(stored, store_url) == {"nightly": (False, None)}

    code, out, err = run_main(capsys, "schedules", "show", "every-5-min", "--store", store_url)
    assert (code, out) == (1, "")
    assert err.startswith("horae schedules show: error: no schedule with the id 'every-5-min' in ")
    assert "(see 'horae schedules list --store ...')" in err


def test_list_json_and_show_text_on_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    anyio.run(_add, url)
    code, out, err = run_main(capsys, "schedules", "list", "--store", url, "--json")
    assert code == 0, err
    (entry,) = json.loads(out)
    assert entry["id"] == "nightly"
    assert entry["next_fire_time"] == "2030-01-01T03:00:00+01:00"
    assert entry["trigger"] == "0 0 3 * * * (Europe/Berlin)"

    code, out, err = run_main(
        capsys, "schedules", "show", "nightly", "--store", url, "--tz", "Europe/Berlin"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert "id:                  nightly" in lines
    assert "next fire time:      2030-01-01 03:00:00+01:00" in lines
    assert "paused:              no" in lines
    assert lines[-5:] == [
        "upcoming:            2030-01-01 03:00:00+01:00",
        "                     2030-01-02 03:00:00+01:00",
        "                     2030-01-03 03:00:00+01:00",
        "                     2030-01-04 03:00:00+01:00",
        "                     2030-01-05 03:00:00+01:00",
    ]
    code, out, _ = run_main(capsys, "schedules", "resume", "nightly", "--store", url, "--json")
    assert code == 0
    assert json.loads(out) == {
        "id": "nightly",
        "action": "resumed",
        "next_fire_time": "2030-01-01T03:00:00+01:00",
    }


async def _add(url: str) -> None:
    async with AsyncScheduler(create_data_store(url)) as scheduler:
        await scheduler.add_schedule(
            print, "cron", hour=3, minute=0, timezone="Europe/Berlin", id="nightly",
            start_time="2030-01-01",
        )  # fmt: skip


# ---- errors, in process --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "postgresql://app:s3cret@127.0.0.1:1/db",
            "horae schedules list: error: cannot connect to PostgreSQL at 127.0.0.1:1",
        ),
        (
            "redis://:s3cret@127.0.0.1:1/0",
            "horae schedules list: error: cannot connect to Redis at 127.0.0.1:1",
        ),
    ],
)
def test_an_unreachable_store_exits_with_3_and_hides_the_password(
    capsys: pytest.CaptureFixture[str], url: str, message: str
) -> None:
    code, out, err = run_main(capsys, "schedules", "list", "--store", url, "--timeout", "1")
    assert code == 3
    assert out == ""
    assert err.startswith(message)
    assert "s3cret" not in err
    assert ":***@127.0.0.1:1" in err


# pymongo leaves the socket of a failed connection attempt for the garbage collector
# (a ResourceWarning after the client was closed); collected here, it is ignored here.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_unreachable_mongodb_exits_with_3_and_hides_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "mongodb://app:s3cret@127.0.0.1:1/db"
    code, out, err = run_main(capsys, "schedules", "list", "--store", url, "--timeout", "1")
    gc.collect()
    assert (code, out) == (3, "")
    assert err.startswith("horae schedules list: error: cannot connect to MongoDB at 127.0.0.1:1")
    assert "s3cret" not in err
    assert "[store: mongodb://app:***@127.0.0.1:1/db]" in err


def test_a_missing_sqlite_file_is_not_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'typo.sqlite3'}"
    code, _, err = run_main(capsys, "schedules", "list", "--store", url)
    assert code == 3
    assert f"the SQLite database '{tmp_path / 'typo.sqlite3'}' does not exist" in err
    assert not (tmp_path / "typo.sqlite3").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--store", "postgress://u:pw@h/db"],
            "unsupported store URL scheme 'postgress://' in 'postgress://u:***@h/db' "
            "(supported: sqlite:///path/to/file.db, postgresql://user:password@host:5432/"
            "database, redis://host:6379/0, mongodb://host:27017/database); did you mean "
            "'postgres://'?",
        ),
        (
            ["--store", "schedules.db"],
            "invalid store URL 'schedules.db': expected a URL such as",
        ),
        (
            ["--store", "memory://"],
            "'memory://' is an in-memory store, which lives inside one process",
        ),
        (
            ["--store", "sqlite://relative.db"],
            "invalid SQLite URL 'sqlite://relative.db': use three slashes",
        ),
        (["--store", "sqlite:///x.db", "--tz", "Mars/Base"], "Mars/Base"),
        (["--store", "sqlite:///x.db", "--timeout", "0"], "--timeout must be positive, got 0"),
    ],
)
def test_bad_input_exits_with_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run_main(capsys, "schedules", "list", *args)
    assert (code, out) == (2, "")
    assert err.startswith("horae schedules list: error: ")
    assert message in err


def test_usage_errors_exit_with_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["schedules", "list"])
    assert exited.value.code == 2
    assert "the following arguments are required: --store" in capsys.readouterr().err
