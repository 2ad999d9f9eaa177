"""What every results file carries and how it is written: one indented JSON form, with the
command that made it, when, at which commit, on what machine, and any setting other than
.env's."""

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness.topology import ROOT, env_overrides


def this_command() -> str:
    """The command line a results file records, as a user would type it."""
    return "python -m bench " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])


def machine_description() -> str:
    cpus = os.cpu_count() or 0
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.system()} {platform.machine()}, {cpus} cores, {memory_gib:.0f} GiB"


def git_commit() -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def run_meta(command: str) -> dict[str, Any]:
    """What a results file says of its run: the command, when, which commit, where, and any
    setting other than .env's."""
    return {
        "command": command,
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": git_commit(),
        "machine": machine_description(),
        "env_overrides": env_overrides(),
    }


def write_json(out: Path, data: object) -> None:
    """A results file: indented JSON, its folder made if need be."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
