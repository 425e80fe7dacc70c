"""Where a run computes: ``device=auto|cpu|cuda`` (training, evaluation and the benchmark read it the same way)."""

from __future__ import annotations

import torch

from mesimp.errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str) -> torch.device:
    """``auto``: the GPU when torch sees one, else the CPU. ``cuda`` where there is none is a UserError."""
    if choice == "cuda" and not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
        raise UserError(f"device=cuda, but torch {torch.__version__} ({built}) sees no CUDA GPU: use device=cpu "
                        "or device=auto")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    # an explicit index, so that every tensor and generator names the same device as the model
    return torch.device("cuda", torch.cuda.current_device())


def describe_device(device: torch.device) -> str:
    """``cpu``, or ``cuda:0 (NVIDIA H200)``: what metrics.json and the benchmark's files record."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return device.type
