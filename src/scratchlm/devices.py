"""Where training and prediction run: the device, and the training precision it computes natively."""

from __future__ import annotations

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
