"""Shared pieces of the download benchmarks: a rate-capped server process, a manifest, timing helpers.

Big files live under /tmp/toolkit-bench (never in the repository) and are deleted at the end. `toolkit` is the
installed package, as users get it: the console script next to this interpreter (run the benchmarks with the
venv's python after `pip install .`), started from a folder outside the checkout, with no PYTHONPATH.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
REPO = "bench/model"
# The anchor: huggingface_hub downloading one file, run as a child process like the other engines.
HF_CODE = (
    "import sys; from huggingface_hub import hf_hub_download; "
    "print(hf_hub_download(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3]))"
)


def bench_dir() -> Path:
    d = Path(os.environ.get("TOOLKIT_BENCH_DIR", "/tmp/toolkit-bench"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def make_file(path: Path, size: int) -> Path:
    """`size` bytes of random data (written in 4 MiB blocks: flat memory)."""
    if path.exists() and path.stat().st_size == size:
        return path
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 4 << 20)
            f.write(os.urandom(n))
            left -= n
    return path


@contextmanager
def server(files: list[Path], rate: float | None, *options: str):
    """A HubServer in its own process (options: --flip-first, --busy-first); yields (base URL, stats)."""
    cmd = [PY, "-m", "tests.helpers_net.serve", *options, REPO, *map(str, files)]
    if rate:
        cmd[3:3] = ["--rate", str(rate)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()

    def stats() -> dict:
        with urllib.request.urlopen(f"{url}/_stats") as r:
            return json.loads(r.read())

    try:
        yield url, stats
    finally:
        proc.kill()
        proc.wait()


def write_manifest(folder: Path, alias: str = "bench") -> Path:
    variant = {
        "id": "bench-cpu:1",
        "device": "cpu",
        "vendor": "any",
        "execution_provider": "CPUExecutionProvider",
        "format": "onnx-genai",
        "quantization": "int4",
        "source": {"type": "huggingface", "repo": REPO},
    }
    data = {
        "schema_version": 1,
        "alias": alias,
        "display_name": alias,
        "publisher": "bench",
        "license": "mit",
        "parameters": "1M",
        "parameter_count": 1,
        "context_length": 1,
        "architecture": "x",
        "task": "chat",
        "variants": [variant],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{alias}.json"
    path.write_text(json.dumps(data))
    return path


def toolkit_env(url: str, home: Path, manifest: Path, **extra: str) -> dict[str, str]:
    env = dict(
        os.environ,
        HF_ENDPOINT=url,
        TOOLKIT_HOME=str(home),
        TOOLKIT_MANIFESTS=str(manifest),
        TOOLKIT_CONFIG_DIR=str(home / "config"),
    )
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def fresh_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=bench_dir()))


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=bench_dir(), env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, out


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


TOOLKIT_SCRIPT = Path(PY).with_name("toolkit.exe" if os.name == "nt" else "toolkit")
if not TOOLKIT_SCRIPT.exists():
    raise SystemExit(f"{TOOLKIT_SCRIPT} not found: pip install the package into this interpreter's venv first")
TOOLKIT_CMD = [str(TOOLKIT_SCRIPT), "download", "bench", "--json"]


def hf_command(name: str, out: Path) -> list[str]:
    """huggingface_hub fetching REPO/name into the cache folder `out` (prints the file's path)."""
    return [PY, "-c", HF_CODE, REPO, name, str(out)]


def aria2c_command(url: str, name: str, out: Path, *extra: str) -> list[str]:
    """aria2c with 8 connections and 8 splits (plain -x8 opens only 5) fetching REPO/name into `out`."""
    return [
        shutil.which("aria2c") or "aria2c",
        "-x8",
        "-s8",
        "-k1M",
        *extra,
        "--file-allocation=none",
        "--console-log-level=error",
        "-d",
        str(out),
        "-o",
        name,
        f"{url}/{REPO}/resolve/main/{name}",
    ]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()
