"""What the CPU is and which instructions it has, read once from /proc/cpuinfo (Linux; elsewhere: unknown).

Results record the CPU model; the teacher's precision and the INT8 speed depend on instruction-set flags.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """Instruction-set flags of the first core (all cores of one machine have the same)."""
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()
