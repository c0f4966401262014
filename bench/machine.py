"""The machine a benchmark ran on, printed first by every bench script: ratios depend on it."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def processor() -> str:
    """Processor name, usable cores and widest vector extension, e.g. "AMD EPYC, 2 cores, AVX-512"."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{names[0] if names else platform.processor() or 'unknown processor'}, {cores} cores, {vector}"
