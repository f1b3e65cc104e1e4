"""horae.compat at the level of processes: signals ending ``BlockingScheduler.start()``,
the ``atexit.register(scheduler.shutdown)`` idiom, and jobs in worker processes."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from typing import Any

from _compat_helpers import Recorder, shut_down_afterwards

from horae.compat import BackgroundScheduler
from horae.compat.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from horae.compat.executors import ProcessPoolExecutor

SCRIPT = """
import atexit, sys, time
from horae.compat import BackgroundScheduler, BlockingScheduler
from horae.compat.events import EVENT_SCHEDULER_SHUTDOWN

def ready():
    print("ready", flush=True)

def on_shutdown(event):
    print("shutdown event", flush=True)

if sys.argv[1] == "atexit":
    sched = BackgroundScheduler()
    sched.add_listener(on_shutdown, EVENT_SCHEDULER_SHUTDOWN)
    atexit.register(lambda: (sched.shutdown(), print("closed", sched.state, flush=True)))
    sched.add_job(ready)
    sched.start()
    time.sleep(0.5)
    sys.exit(0)

sched = BlockingScheduler()
sched.add_listener(on_shutdown, EVENT_SCHEDULER_SHUTDOWN)
sched.add_job(ready)
try:
    sched.start()
except KeyboardInterrupt:
    print("KeyboardInterrupt", sched.state, flush=True)
    sys.exit(3)
print("returned", sched.state, flush=True)
"""


def test_signals_and_atexit_end_the_scheduler_cleanly() -> None:
    cases: dict[str, tuple[signal.Signals | None, list[str], int]] = {
        # SIGTERM: a clean shutdown, then start() returns normally
        "sigterm": (signal.SIGTERM, ["ready", "shutdown event", "returned 0"], 0),
        # Ctrl+C: a clean shutdown, then the KeyboardInterrupt goes on (as in APScheduler 3)
        "sigint": (signal.SIGINT, ["ready", "shutdown event", "KeyboardInterrupt 0"], 3),
        # atexit.register(scheduler.shutdown), the Flask-tutorial idiom
        "atexit": (None, ["ready", "shutdown event", "closed 0"], 0),
    }
    processes = {
        mode: subprocess.Popen(
            [sys.executable, "-c", SCRIPT, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in cases
    }
    try:
        for mode, process in processes.items():
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready", mode
            signum = cases[mode][0]
            if signum is not None:
                time.sleep(0.2)  # let start() reach its wait
                process.send_signal(signum)
        for mode, process in processes.items():
            assert process.stdout is not None
            assert process.stderr is not None
            process.wait(timeout=30)
            # through the same buffered stream as readline() above (communicate() would
            # read the raw pipe and miss what readline() has buffered already)
            out, err = process.stdout.read(), process.stderr.read()
            _, expected, code = cases[mode]
            assert ["ready", *out.split("\n")[:-1]] == expected, (mode, err)
            assert process.returncode == code, (mode, err)
            assert "Traceback" not in err or mode == "sigint", (mode, err)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


def test_jobs_run_in_a_process_pool() -> None:
    sched = BackgroundScheduler(executors={"processpool": ProcessPoolExecutor(2)})
    recorder = Recorder()
    sched.add_listener(recorder, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    sched.add_job(math.factorial, args=[10], executor="processpool", id="ok")
    sched.add_job(math.sqrt, args=[-1], executor="processpool", id="bad")
    with shut_down_afterwards(sched):
        sched.start()
        executed: Any = recorder.wait_for(EVENT_JOB_EXECUTED, timeout=30)[0]
        error: Any = recorder.wait_for(EVENT_JOB_ERROR, timeout=30)[0]
    assert (executed.job_id, executed.retval) == ("ok", 3628800)
    assert error.job_id == "bad"
    assert isinstance(error.exception, ValueError)
