"""Flush subnormal floats to zero on every CPU thread, so that optimizer steps over decayed moments stay fast.

A weight whose gradient stays zero (a unit meProp seldom keeps, a dead ReLU) has Adam moments that shrink by
beta1 and beta2 every step until they are subnormal (below 1.2e-38), and x86 CPUs run arithmetic on subnormal
operands up to 100x slower. Measured here: the fused Adam step over the 5-hidden-layer MNIST MLP's parameters
takes 30.5 ms with subnormal moments against 0.97 ms with them flushed (one thread); before this setting it was
77% of the training time of Table 5's runs. Flushing (x86's FTZ and DAZ, what ``torch.set_flush_denormal`` sets)
reads and writes such values as zero.

The mode belongs to each thread, and the threads of torch's pool keep the mode they started with, so the compiled
kernels set it on every one. Without them only this thread and the threads started after it get it: enough for
one-thread runs and for a process that has not computed in parallel yet (the runner calls this first).
"""

from __future__ import annotations

import torch

from mesimp.nn import kernels


def flush_denormals(enabled: bool = True) -> bool:
    """Turn flushing on (or off); False where the CPU has no such mode."""
    kernel = kernels.compiled()
    if kernel is not None:
        return kernel.set_flush_denormal_all_threads(enabled)
    return torch.set_flush_denormal(enabled)
