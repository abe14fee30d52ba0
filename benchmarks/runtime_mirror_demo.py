"""End to end on a fresh store: `toolkit run deepseek_r1_1_5` fetched from a local mirror, then streamed.

    python benchmarks/runtime_mirror_demo.py PACKAGE_DIR [--prompt "..."] [--max-tokens 48]

PACKAGE_DIR is a package built from the synthetic 1.5B checkpoint (real tokenizer, random weights).
It is installed into a scratch "origin" store as the catalog's CPU variant of deepseek_r1_1_5, served
with the project's mirror server on 127.0.0.1, and then the real CLI runs in a subprocess with an empty
TOOLKIT_HOME and TOOLKIT_MIRROR pointing at the mirror: variant selection, download, verification,
load and streaming all happen as on a user's machine. The text is noise (the weights are random).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("package", type=Path)
    p.add_argument("--prompt", default="Why is the sky blue? Answer in one sentence.")
    p.add_argument("--max-tokens", default="48")
    args = p.parse_args()

    from catalog.loader import Catalog
    from catalog.schema import Source
    from toolkit.download.api import ensure_variant
    from toolkit.mirror.server import MirrorServer
    from toolkit.store.blobs import Store

    manifest = Catalog.load().get("deepseek_r1_1_5")
    cpu = next(v for v in manifest.variants if v.device == "cpu")
    with tempfile.TemporaryDirectory(prefix="toolkit-mirror-demo-") as scratch:
        origin, fresh = Path(scratch) / "origin", Path(scratch) / "fresh"
        local = dataclasses.replace(cpu, source=Source(type="local", path=str(args.package.resolve())), files=())
        ensure_variant(manifest, local, root=origin)
        server = MirrorServer(Store(origin), "127.0.0.1", 0)
        server.start_background()
        print(f"mirror of {cpu.id} at {server.url}", file=sys.stderr, flush=True)
        env = dict(os.environ, TOOLKIT_HOME=str(fresh), TOOLKIT_MIRROR=server.url)
        cmd = [sys.executable, "-c", "from toolkit.cli import main; main()", "run", "deepseek_r1_1_5",
               "--device", "cpu", "--yes", "--prompt", args.prompt, "-n", args.max_tokens]
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, cwd=ROOT)
        server.shutdown()
        print(f"exit {done.returncode} after {time.perf_counter() - start:.1f} s", file=sys.stderr)
        sys.exit(done.returncode)


if __name__ == "__main__":
    main()
