"""A SecantusDB server (MongoDB wire protocol, replica set) in a process of its own.

Usage: ``python _multinode_mongod.py``. It prints its URI on one line, then serves until
its standard input closes or it gets SIGTERM. The multi-node tests run it when no
MongoDB answers (see ``_multinode_harness.mongodb_uri``): in its own process it has a
CPU of its own instead of sharing the test runner's event loop and GIL.
"""

from __future__ import annotations

import signal
import sys
import threading

from secantus import SecantusDBServer


def main() -> None:
    server = SecantusDBServer(host="127.0.0.1", port=0, storage_path=":memory:")
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def wait_for_stdin() -> None:
        sys.stdin.read()  # returns at end of file: the parent went away
        done.set()

    threading.Thread(target=wait_for_stdin, daemon=True).start()
    print(server.uri, flush=True)
    try:
        done.wait()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
