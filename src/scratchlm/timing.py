"""Wall time, peak memory and throughput of every stage run, in results/timing/<stage>/<name>.json.

Kept apart from the metrics on purpose: the same params must give byte-identical metric files,
and a duration never repeats. The report reads these files for its time and throughput table.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from typing import Iterator

from . import paths
from .atomic import write_json


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (ru_maxrss can carry a large parent's peak
    across exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:  # not Linux
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** (2 if sys.platform == "darwin" else 1), 1)


@contextlib.contextmanager
def recorded(stage: str, name: str | None) -> Iterator[dict]:
    """Time a stage run; the stage may add its own figures (train seconds, throughput) to the
    yielded dict. Nothing is written when the stage fails."""
    extra: dict = {}
    start = time.perf_counter()
    yield extra
    if os.environ.get("RANK", "0") != "0":  # one of several training processes: rank 0 records
        return
    write_json(paths.timing(stage, name), {"seconds": round(time.perf_counter() - start, 2),
                                   "peak_rss_mb": peak_rss_mb(), **peak_gpu_mb(), **extra})


def peak_gpu_mb() -> dict:
    """{"peak_gpu_mb": the most GPU memory this process's tensors held}, where it used CUDA; torch
    is not imported for it (a stage that never touched a GPU records none)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    return {"peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)}
