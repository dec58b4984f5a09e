"""Where training and prediction run: the device, the training precision it computes natively,
and the C allocator's settings a training loop on the CPU wants."""

from __future__ import annotations

import ctypes

import torch

from .errors import ScratchError


def pick_device(requested: str) -> str:
    if requested == "cuda" and not torch.cuda.is_available():
        raise ScratchError("params.yaml: device = 'cuda' but no CUDA device is visible; set device: auto or cpu")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def native_bf16(device: str) -> bool:
    """Whether the hardware multiplies bf16 natively: a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 or AMX (elsewhere oneDNN emulates bf16, so auto keeps fp32)."""
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    caps = torch.cpu.get_capabilities()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def pick_precision(requested: str, device: str) -> str:
    """The training precision: fp32, or autocast to bf16/fp16 (weights and optimizer stay fp32).
    auto: bf16 where the hardware has it, fp16 on older GPUs, fp32 otherwise."""
    if requested == "auto":
        if native_bf16(device):
            return "bf16"
        return "fp16" if device == "cuda" else "fp32"
    if requested == "fp16" and device != "cuda":
        raise ScratchError(f"params.yaml: precision = 'fp16' needs a CUDA device (this run is on {device}); "
                           "set precision: auto, bf16 or fp32")
    if requested == "bf16" and device == "cuda" and not native_bf16(device):
        raise ScratchError("params.yaml: precision = 'bf16' but this GPU does not support bf16; "
                           "set precision: auto, fp16 or fp32")
    return requested


# glibc's mallopt options (malloc.h) and the values `keep_freed_memory` sets
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEPT = {M_MMAP_THRESHOLD: 32 * 2 ** 20, M_TRIM_THRESHOLD: 2 ** 30}


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep the memory a training step frees for the next step. By default it
    maps blocks above a threshold afresh and gives the top of the heap back to the system once
    free, so each step faults the same pages in again: the real-cpu LSTM's pretraining (sampled
    softmax) spent 14-21% of its CPU time in the kernel, 34k-54k page faults a step. With blocks of
    up to 32 MiB from the heap and 1 GiB of free heap kept: 1%, and the whole stage 16% faster, its
    peak memory 16% higher (docs/performance.md). False where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(option, value) == 1 for option, value in KEPT.items())
