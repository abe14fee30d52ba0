"""Run a HubServer in its own process: `python -m tests.helpers_net.serve --rate 20e6 REPO FILE...`.

Prints the base URL on the first line, then serves until killed. Used by the download benchmarks so the
server does not share the measured process; GET /_stats gives the bytes sent per file.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tests.helpers_net.hub_server import HubServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=None, help="bytes/s per connection")
    ap.add_argument("repo")
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args()
    with HubServer(rate=args.rate) as s:
        for f in args.files:
            s.add(args.repo, f.name, disk=f)
        print(s.url, flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
