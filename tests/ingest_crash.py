"""``python tests/ingest_crash.py POINT LOAD_NO [BATCH]``: one ingestion (of batch BATCH, as
``load_new_files`` names it by run id) that SIGKILLs itself at a hook point of one load
(crash tests only; production passes no hooks)."""

from __future__ import annotations

import os
import signal
import sys

from include.ingest import IngestHooks, ingest


class KillAt(IngestHooks):
    """SIGKILL (no cleanup, no ``finally``) at ``point`` of load ``load_no``."""

    def __init__(self, point: str, load_no: int):
        self.point, self.load_no = point, load_no

    def at(self, point: str, load_no: int) -> None:
        if (point, load_no) == (self.point, self.load_no):
            print(f"KILLED at {point} of load {load_no}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    ingest(hooks=KillAt(sys.argv[1], int(sys.argv[2])), batch=(sys.argv[3:4] or [None])[0])
    print("finished without reaching the kill point", file=sys.stderr)
