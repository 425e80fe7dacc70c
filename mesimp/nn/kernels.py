"""The compiled CPU kernels of meProp's sparse backward (and an embedding lookup's), with pure-PyTorch fallbacks.

``csrc/meprop_cpu.cpp`` is built with torch's extension tooling the first time it is needed (``make install``
does it ahead with :func:`main`) and cached by torch (``TORCH_EXTENSIONS_DIR``). Where it cannot
be built (no C++ compiler) or is turned off (``MESIMP_KERNELS=0``, or :func:`use` in code), the same functions
run in plain PyTorch; the tests check one against the other. CUDA tensors always take the PyTorch route.

Every function takes the kept entries as ``indices`` (rows, k) int64 and ``values`` (rows, k).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import torch
from torch import Tensor

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "meprop_cpu.cpp"
_state: dict = {"enabled": os.environ.get("MESIMP_KERNELS", "1") != "0", "module": None, "failed": None}


def _build(verbose: bool = False) -> ModuleType:
    from torch.utils.cpp_extension import load

    # -fopenmp: at::parallel_for is OpenMP in torch's CPU builds; without it the kernels would run on one thread.
    # -mprefer-vector-width=512: GCC otherwise keeps to 256-bit vectors on AVX-512 machines (dL/dW 28 -> 21 ms at
    # the parser's first layer); ignored where there is no AVX-512. MESIMP_KERNELS_MARCH: the CPU to build for,
    # native by default; e.g. x86-64-v3 (AVX2) for a cluster whose nodes differ, x86-64 for the portable code.
    march = os.environ.get("MESIMP_KERNELS_MARCH", "native")
    return load(name="mesimp_meprop_cpu", sources=[str(SOURCE)],
                extra_cflags=["-O3", f"-march={march}", "-mprefer-vector-width=512", "-fopenmp"],
                extra_ldflags=["-fopenmp"], verbose=verbose)


def compiled() -> ModuleType | None:
    """The built extension, or None when turned off or not buildable (the reason is logged once)."""
    if not _state["enabled"] or _state["failed"]:
        return None
    if _state["module"] is None:
        try:
            _state["module"] = _build()
        except Exception as e:  # no compiler, no ninja, a build error: fall back, say why once
            _state["failed"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            log.warning("mesimp: compiled kernels unavailable, using PyTorch (%s)", _state["failed"])
            return None
    return _state["module"]


@contextmanager
def use(enabled: bool):
    """Turn the compiled kernels on or off inside a block (tests compare the two)."""
    before = _state["enabled"]
    _state["enabled"] = enabled
    try:
        yield
    finally:
        _state["enabled"] = before


def _kernel(*tensors: Tensor) -> ModuleType | None:
    return None if any(t.is_cuda for t in tensors) else compiled()


class KeptRows(NamedTuple):
    """What per-example meProp keeps of dy: its top-k, the unbiased sample drawn from it, dy's column sums."""
    indices: Tensor
    values: Tensor
    sample: tuple[Tensor, Tensor] | None
    column_sums: Tensor | None


def keep_rows(dy: Tensor, k: int, uniforms: Tensor | None = None, column_sums: bool = False) -> KeptRows:
    """The top-k of each row of dy; with ``uniforms`` (one per row) also the unbiased sample :func:`sample_rows`
    draws from it; with ``column_sums`` also ``dy.sum(0)``. The kernel does all three in one pass over dy."""
    kernel = _kernel(dy)
    if kernel is not None and dy.dtype in (torch.float32, torch.float64):
        no_uniforms = dy.new_empty(0, dtype=torch.float64)
        indices, values, s_indices, s_values, sums = kernel.keep_rows(
            dy, k, no_uniforms if uniforms is None else uniforms, column_sums)
        return KeptRows(indices, values, None if uniforms is None else (s_indices, s_values),
                        sums if column_sums else None)
    indices = dy.abs().topk(k, dim=1, sorted=False).indices
    values = dy.gather(1, indices)
    sample = None if uniforms is None else sample_rows(dy, indices, values, uniforms)
    return KeptRows(indices, values, sample, dy.sum(0) if column_sums else None)


def topk_rows(dy: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k entries of largest magnitude of each row: (indices, values), in no particular order."""
    kept = keep_rows(dy, k)
    return kept.indices, kept.values


def sample_rows(dy: Tensor, indices: Tensor, values: Tensor, uniforms: Tensor) -> tuple[Tensor, Tensor]:
    """An unbiased k-entry estimate of each row of ``dy`` (E[S] = dy), given the row's top-k and one uniform.

    Inclusion probabilities ``p_j = min(1, |dy_j| / tau)`` summing to k: the m largest entries are kept at their
    value (p = 1); the other k - m slots are drawn by systematic sampling (points ``u, u + 1, ...`` along the
    cumulative probabilities, in position order) and each is worth ``dy_j / p_j = sign(dy_j) * tau``. Rows with
    at most k non-zero entries keep their top-k. ``uniforms``: (rows,) in [0, 1). Returns (indices, values).
    """
    kernel = _kernel(dy)
    if kernel is not None and values.dtype == dy.dtype and dy.dtype in (torch.float32, torch.float64):
        return tuple(kernel.sample_rows(dy, indices, values, uniforms))
    rows, k = indices.shape
    top, order = values.abs().double().sort(dim=1, descending=True, stable=True)
    top_indices = indices.gather(1, order)
    magnitudes = dy.abs().double()
    rest = (magnitudes.sum(1) - top.sum(1)).clamp_min(0)
    # tail[:, m]: the magnitudes left when the m largest are capped; m is the first that gives p <= 1 to the rest
    tail = rest.unsqueeze(1) + top.flip(1).cumsum(1).flip(1)
    slots = torch.arange(k, device=dy.device)
    fits = (tail > 0) & (top * (k - slots) <= tail)
    m = torch.where(fits.any(1), fits.int().argmax(1), torch.full_like(rest, k, dtype=torch.long))
    sampled_rows = m < k
    tau = torch.where(sampled_rows, tail.gather(1, m.clamp_max(k - 1).unsqueeze(1)).squeeze(1) / (k - m), 1.0)
    capped = slots < m.unsqueeze(1)
    uncapped_top = torch.where(capped, 0.0, top / tau[:, None])  # the capped entries are not drawn
    probabilities = (magnitudes / tau.unsqueeze(1)).scatter(1, top_indices, uncapped_top)
    points = uniforms.double().unsqueeze(1) + (slots - m.unsqueeze(1)).clamp_min(0)
    drawn = torch.searchsorted(probabilities.cumsum(1), points, right=True).clamp_max(dy.shape[1] - 1)
    drawn_values = (dy.gather(1, drawn).sign().double() * tau.unsqueeze(1)).to(dy.dtype)
    out_indices = torch.where(capped, top_indices, drawn)
    out_values = torch.where(capped, dy.gather(1, top_indices), drawn_values)
    keep_top = ~sampled_rows.unsqueeze(1)
    return torch.where(keep_top, indices, out_indices), torch.where(keep_top, values, out_values)


def kept_times_weight(indices: Tensor, values: Tensor, weight: Tensor) -> Tensor:
    """dL/dx = S W for S (rows, out) holding the kept entries: (rows, in)."""
    kernel = _kernel(weight)
    if kernel is not None and values.dtype == weight.dtype:
        return kernel.kept_times_weight(indices, values, weight)
    rows, k = indices.shape
    examples = torch.arange(rows, device=indices.device).repeat_interleave(k)
    kept = torch.sparse_coo_tensor(torch.stack((examples, indices.reshape(-1))), values.reshape(-1),
                                   (rows, weight.shape[0]), check_invariants=False)
    return torch.sparse.mm(kept, weight)


def kept_t_times_input(indices: Tensor, values: Tensor, x: Tensor, slot: Tensor, units: int,
                       example: Tensor | None = None) -> Tensor:
    """dL/dW = S^T x for the units that occur: row ``slot[u]`` of the (units, in) result is unit u's gradient.

    ``example`` maps each row of ``indices`` to its row of ``x`` (default: the same row).
    """
    kernel = _kernel(x)
    if kernel is not None and values.dtype == x.dtype:
        rows_of_x = example if example is not None else indices.new_empty(0)
        return kernel.kept_t_times_input(indices, values, rows_of_x, x, slot, units, x.new_empty(0), x.new_empty(0))
    rows, k = indices.shape
    source = (example if example is not None else torch.arange(rows, device=x.device)).repeat_interleave(k)
    kept_t = torch.sparse_coo_tensor(torch.stack((slot[indices.reshape(-1)], source)), values.reshape(-1),
                                     (units, x.shape[0]), check_invariants=False)
    return torch.sparse.mm(kept_t, x)


def centred_t_times_input(indices: Tensor, values: Tensor, x: Tensor, dy_sum: Tensor,
                          example: Tensor | None = None, into: Tensor | None = None) -> Tensor:
    """S^T x + (dy_sum - S^T 1) xbar^T = S^T (x - xbar) + (dy^T 1) xbar^T, dense (width, in): the centred rules'
    dL/dW (``sparse_grad``).

    The exact gradient is dy^T (x - xbar) + (dy^T 1) xbar^T: the second (rank-one) term needs only dy's column sums
    (the dense bias gradient), so it is kept exact, and the sparse S estimates only the first, whose input is
    centred. Where the inputs are nearly the same for every example (the parser's), that term is most of the
    gradient. xbar: the mean of the rows of ``x`` the entries use (``example`` maps them, as in
    :func:`kept_t_times_input`). The kernel takes xbar's sums from the tiles of x it holds for the product and adds
    the rank-one term while it writes each row, so the rule costs little more than the paper's.

    ``into`` (a contiguous tensor of the result's shape and type, e.g. the weight's ``.grad``): the result is added
    to it in place and ``into`` returned, one pass over it instead of a new tensor plus autograd's sum into
    ``.grad`` (at MNIST's minibatch of 10 that sum costs half as much as the whole product).
    """
    width = dy_sum.shape[0]
    kernel = _kernel(x)
    # the kernel adds into a contiguous tensor of x's type only; anything else goes through the fallback
    into_fits = into is None or (into.is_contiguous() and into.dtype == x.dtype)
    if kernel is not None and values.dtype == x.dtype and into_fits:
        rows_of_x = example if example is not None else indices.new_empty(0)
        every_unit = torch.arange(width, device=indices.device)
        return kernel.kept_t_times_input(indices, values, rows_of_x, x, every_unit, width, dy_sum,
                                         x.new_empty(0) if into is None else into)
    inputs = x if example is None else x.index_select(0, example)
    kept_sum = values.new_zeros(width).index_add_(0, indices.reshape(-1), values.reshape(-1))
    grad = kept_t_times_input(indices, values, x, torch.arange(width, device=indices.device), width, example)
    grad.addr_(dy_sum - kept_sum, inputs.mean(0))
    return grad if into is None else into.add_(grad)


def unified_backward(dy: Tensor, x: Tensor, weight: Tensor, k: int, need_x: bool, need_w: bool
                     ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None] | None:
    """Unified top-k backward of ``y = x W^T`` in one compiled call; None where there is no kernel.

    Returns (kept units ranked by ``sum_i |dy[i, j]|``, dy's kept columns, dL/dx, kept rows of dL/dW), None for
    what is not needed.
    """
    kernel = _kernel(dy)
    if kernel is None:
        return None
    units, kept, dx, dw = kernel.unified_backward(dy, x, weight, k, need_x, need_w)
    return units, kept, dx if need_x else None, dw if need_w else None


def kept_units(indices: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """The units that occur in ``indices``, ascending, and ``slot``: each unit's row among them, -1 if absent."""
    kernel = _kernel(indices)
    if kernel is not None:
        return tuple(kernel.kept_units(indices, width))
    units = torch.unique(indices)
    slot = torch.full((width,), -1, dtype=torch.long, device=indices.device)
    slot[units] = torch.arange(len(units), device=indices.device)
    return units, slot


def lookup_grad(ids: Tensor, grad: Tensor, rows: int) -> Tensor:
    """The gradient of ``table[ids]`` for a (rows, D) table: row i of ``grad`` (N, D) summed into row ``ids[i]``."""
    kernel = _kernel(grad)
    if kernel is not None and grad.dtype in (torch.float32, torch.float64):
        return kernel.lookup_grad(ids, grad, rows)
    return grad.new_zeros(rows, grad.shape[1]).index_add_(0, ids, grad)


def lstm_topk_bptt(gates: Tensor, cells: Tensor, d_out: Tensor, w_hh: Tensor, batch_sizes: list[int], k: int,
                   per_gate: bool, keep_dz: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """The LSTM's whole backward time loop with top-k per example, compiled; None where there is no kernel.

    Returns the sum of dL/dz over all tokens (4h), the kept (indices, values) of every real token, time-major,
    and with ``keep_dz`` every real token's whole dL/dz (tokens, 4h; else an empty tensor).
    """
    kernel = _kernel(gates)
    if kernel is None or gates.dtype not in (torch.float32, torch.float64):
        return None
    sizes = torch.tensor(batch_sizes, dtype=torch.long)
    return tuple(kernel.lstm_topk_bptt(gates, cells, d_out, w_hh, sizes, k, per_gate, keep_dz))


def vector_paths() -> str:
    """Which vector paths the compiled kernels use (avx512, avx2, portable), or "none" without them."""
    module = compiled()
    return module.vector_paths() if module is not None else "none"


def main() -> None:
    """Build the extension now (``make install`` runs this) and say whether it works."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    try:
        module = _build(verbose="-v" in sys.argv)
    except Exception as e:
        print(f"mesimp: compiled kernels NOT built ({type(e).__name__}); meProp will use plain PyTorch",
              file=sys.stderr)
        return
    dy = torch.randn(4, 9, dtype=torch.float64)
    indices, values = module.keep_rows(dy, 3, dy.new_empty(0), False)[:2]
    assert torch.equal(indices.sort(1).values, dy.abs().topk(3, dim=1).indices.sort(1).values)
    print(f"mesimp: compiled kernels ready, {module.vector_paths()} vector paths ({time.perf_counter() - start:.1f} s)")
