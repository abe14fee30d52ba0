"""Run a HubServer in its own process: `python -m tests.helpers_net.serve --rate 20e6 REPO FILE...`.

Prints the base URL on the first line, then serves until killed. Used by the download benchmarks so the
server does not share the measured process; GET /_stats gives the bytes sent per file.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tests.helpers_net.hub_server import Faults, HubServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=None, help="bytes/s per connection")
    ap.add_argument("--flip-first", action="store_true", help="flip one byte of the first response")
    ap.add_argument("--busy-first", action="store_true", help="answer the first GET with 503, Retry-After: 1")
    ap.add_argument("repo")
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args()
    with HubServer(rate=args.rate) as s:
        for f in args.files:
            faults = Faults(
                corrupt_at=1000 if args.flip_first else None,
                corrupt_times=1 if args.flip_first else 0,
                statuses=[503] if args.busy_first else [],
                retry_after="1",
            )
            s.add(args.repo, f.name, disk=f, faults=faults)
        print(s.url, flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
