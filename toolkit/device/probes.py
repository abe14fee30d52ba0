"""The seams through which detection reads the machine, so tests can replay recorded machines.

`MachineSources` bundles: the platform facts, a filesystem root (for /proc, /sys, /dev), a command
runner (PowerShell, sysctl), and an execution-provider probe. `live_sources()` reads this machine;
`recorded_sources(folder)` replays one recorded under tests/fixtures/machines/.
"""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.device.eps import probe_onnxruntime


class ProbeFailed(Exception):
    """A source could not be read (missing, timed out, not permitted); detection reports it as unknown."""


Runner = Callable[[Sequence[str], float], str]
EPProbe = Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class PlatformFacts:
    system: str  # windows, linux, macos
    release: str
    arch: str  # x86_64, arm64


@dataclass(frozen=True)
class MachineSources:
    platform: PlatformFacts
    root: Path
    run: Runner
    probe_eps: EPProbe


def normalize_arch(machine: str) -> str:
    m = machine.lower()
    return {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64", "armv8": "arm64"}.get(m, m)


def normalize_os(system: str) -> str:
    s = system.lower()
    return {"darwin": "macos", "win32": "windows"}.get(s, s)


def subprocess_runner(cmd: Sequence[str], timeout: float) -> str:
    """Run a command with a timeout; any failure becomes ProbeFailed with the reason."""
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as e:
        raise ProbeFailed(f"{cmd[0]} not found") from e
    except subprocess.TimeoutExpired as e:
        raise ProbeFailed(f"{cmd[0]} timed out after {timeout:.0f} s") from e
    except OSError as e:
        raise ProbeFailed(f"{cmd[0]}: {e}") from e
    if done.returncode != 0:
        raise ProbeFailed(f"{cmd[0]} exited {done.returncode}: {done.stderr.strip()[:200]}")
    return done.stdout


def live_sources() -> MachineSources:
    facts = PlatformFacts(normalize_os(platform.system()), platform.release(), normalize_arch(platform.machine()))
    return MachineSources(facts, Path("/"), subprocess_runner, probe_onnxruntime)


def command_key(cmd: Sequence[str]) -> str:
    """The file a recorded command's output is stored under: the program's name (one query per program)."""
    return Path(cmd[0].replace("\\", "/")).name.lower().removesuffix(".exe")


def recorded_sources(folder: Path, eps_file: str = "eps.json") -> MachineSources:
    """Replay a recorded machine: machine.json, root/ (a filesystem tree), commands/<key>.out, eps.json."""
    meta = json.loads((folder / "machine.json").read_text(encoding="utf-8"))
    facts = PlatformFacts(meta["system"], meta.get("release", ""), normalize_arch(meta["machine"]))

    def run(cmd: Sequence[str], timeout: float) -> str:
        out = folder / "commands" / (command_key(cmd) + ".out")
        if not out.is_file():
            raise ProbeFailed(f"{cmd[0]}: no recorded output ({out.name})")
        return out.read_text(encoding="utf-8")

    def probe_eps() -> dict[str, Any]:
        path = folder / eps_file
        if not path.is_file():
            raise ProbeFailed(f"onnxruntime: no recorded probe ({path.name})")
        return json.loads(path.read_text(encoding="utf-8"))

    return MachineSources(facts, folder / "root", run, probe_eps)
