"""Which GPUs a training job uses on a machine with several.

Snakemake's `gpu` resource says how many training jobs may run at once (`--resources gpu=N`),
not which GPU each takes. So a training job claims `processes` free GPUs itself — a lock file
each under checkpoints/.gpus/, held while it runs (the kernel drops a lock when its process
ends, a killed one too) — and sees only those, through CUDA_VISIBLE_DEVICES, set before CUDA
starts. Where CUDA_VISIBLE_DEVICES is already set (a SLURM job, the user's choice) it is left as
it is; on a machine with one GPU or none there is nothing to choose.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import time
from typing import Iterator

from .errors import ScratchError
from .paths import CHECKPOINTS

GPU_LOCKS = CHECKPOINTS / ".gpus"  # <index>.lock, held by the job that uses that GPU


def count() -> int:
    """The GPUs of this machine, read from nvidia-smi: without starting CUDA in this process,
    which would fix the devices it sees before CUDA_VISIBLE_DEVICES is set."""
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def _try_lock(index: int):
    f = open(GPU_LOCKS / f"{index}.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def _free(wanted: int, total: int) -> list:
    """Locks on up to `wanted` GPUs that no other job holds, lowest index first."""
    held: list = []
    for index in range(total):
        if len(held) == wanted:
            break
        f = _try_lock(index)
        if f is not None:
            held.append(f)
    return held


@contextlib.contextmanager
def claimed(wanted: int, total: int | None = None, poll_s: float = 5.0) -> Iterator[list[int] | None]:
    """Claim `wanted` free GPUs for the job (their indices), waiting while others hold them, and
    make them the only ones this process and its children see; None where there is nothing to
    choose (CUDA_VISIBLE_DEVICES set, one GPU or none)."""
    total = count() if total is None else total
    if "CUDA_VISIBLE_DEVICES" in os.environ or total <= 1:
        yield None
        return
    if wanted > total:
        raise ScratchError(f"params.yaml: processes = {wanted} asks for {wanted} GPUs, and this machine has {total}; "
                           f"set processes to at most {total}")
    GPU_LOCKS.mkdir(parents=True, exist_ok=True)
    said = False
    while len(mine := _free(wanted, total)) < wanted:
        for f in mine:
            f.close()
        if not said:
            print(f"waiting for {wanted} free GPU(s): other training jobs hold them", file=sys.stderr, flush=True)
            said = True
        time.sleep(poll_s)
    ids = [int(os.path.basename(f.name).split(".")[0]) for f in mine]
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, ids))
    try:
        yield ids
    finally:
        del os.environ["CUDA_VISIBLE_DEVICES"]
        for f in mine:
            f.close()
