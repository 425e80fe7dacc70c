"""The compiled kernels against their pure-PyTorch fallbacks and dense references."""

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mesimp.nn import kernels


def test_kernels_are_built_where_a_compiler_exists(kernel_route):
    if kernel_route == "compiled" and shutil.which("c++"):
        assert kernels.compiled() is not None, "make install builds them"


def test_vector_paths_follow_the_cpu(kernel_route):
    # -march=native: the build takes the widest vector paths the CPU has (benchmarks record which)
    if kernel_route == "pytorch" or kernels.compiled() is None:
        assert kernels.vector_paths() == "none"
        return
    march = os.environ.get("MESIMP_KERNELS_MARCH", "native")
    if march != "native":
        assert march != "x86-64" or kernels.vector_paths() == "portable"
        return
    try:
        flags = set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split())
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo to compare with")
    expected = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "portable"
    assert kernels.vector_paths() == expected


@pytest.mark.slow
def test_portable_build_passes_the_kernel_tests(tmp_path, kernel_route):
    # A build for plain x86-64 compiles the AVX2 and AVX-512 paths out: the portable code, which a machine with
    # either never runs otherwise, must pass the same tests (a fresh build in its own extensions folder, ~2 min).
    if kernel_route == "pytorch" or platform.machine() != "x86_64" or not shutil.which("c++"):
        pytest.skip("the portable build is checked once, on x86-64 with a compiler")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MESIMP_KERNELS_MARCH": "x86-64", "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                          "tests/nn/test_kernels.py", "tests/nn/test_rules.py"],
                         cwd=root, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def kept_matrix(indices, values, width):
    return torch.zeros(indices.shape[0], width, dtype=values.dtype).scatter_(1, indices, values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows,width,k", [(7, 9, 3), (33, 500, 20), (5, 300, 80), (4, 70, 70), (1, 5, 1)])
def test_topk_rows_keeps_the_largest_magnitudes(dtype, rows, width, k):
    torch.manual_seed(0)
    dy = torch.randn(rows, width, dtype=dtype)
    indices, values = kernels.topk_rows(dy, k)
    assert indices.shape == values.shape == (rows, k) and indices.dtype == torch.long
    expected = dy.abs().topk(k, dim=1).indices.sort(1).values
    assert torch.equal(indices.sort(1).values, expected)
    assert torch.equal(values, dy.gather(1, indices))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
# the last two are large enough for two threads: inputs a whole number of cache lines per row, and not
@pytest.mark.parametrize("rows,out,inp,k", [(6, 9, 5, 2), (40, 50, 300, 7), (3, 8, 257, 8), (3000, 60, 512, 9),
                                            (2500, 500, 500, 20)])
def test_products_equal_the_dense_masked_ones(dtype, rows, out, inp, k):
    torch.manual_seed(1)
    dy = torch.randn(rows, out, dtype=dtype)
    weight = torch.randn(out, inp, dtype=dtype)
    x = torch.randn(rows, inp, dtype=dtype)
    indices, values = kernels.topk_rows(dy, k)
    kept = kept_matrix(indices, values, out)
    # float32: sums of up to a few hundred products, in another order than the dense product's
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=0, atol=1e-12)
    torch.testing.assert_close(kernels.kept_times_weight(indices, values, weight), kept @ weight, **tol)
    slot = torch.arange(out)
    torch.testing.assert_close(kernels.kept_t_times_input(indices, values, x, slot, out), kept.t() @ x, **tol)


@pytest.mark.parametrize("rows", [5, 4000])  # one thread, and two threads with their own column blocks
def test_units_that_never_occur_get_zero_gradient_rows(rows):
    torch.manual_seed(3)
    x = torch.randn(rows, 700, dtype=torch.float64)
    indices = torch.rand(rows, 40).argsort(1)[:, :8]  # 8 distinct units of 0..39 per row: 40..59 never occur
    values = torch.randn(rows, 8, dtype=torch.float64)
    slot = torch.arange(60)
    got = kernels.kept_t_times_input(indices, values, x, slot, 60)
    torch.testing.assert_close(got, kept_matrix(indices, values, 60).t() @ x, rtol=0, atol=1e-10)
    assert torch.all(got[40:] == 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_topk_rows_with_ties_keeps_a_largest_set(dtype):
    # ReLU's backward zeroes most of a row: the kept magnitudes must still be the k largest, ties anywhere
    torch.manual_seed(4)
    dy = torch.randn(64, 500, dtype=dtype)
    dy[torch.rand(64, 500) < 0.97] = 0
    dy[:8] = 0.5  # whole rows of one value
    indices, values = kernels.topk_rows(dy, 20)
    assert all(len(set(row.tolist())) == 20 for row in indices)  # 20 distinct positions per row
    expected = dy.abs().topk(20, dim=1).values.sort(1).values
    assert torch.equal(values.abs().sort(1).values, expected)


def test_weight_product_compacts_units_and_maps_rows_to_inputs():
    torch.manual_seed(2)
    x = torch.randn(10, 6, dtype=torch.float64)
    indices = torch.tensor([[4, 1], [1, 7]])
    values = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=torch.float64)
    example = torch.tensor([8, 3])  # the two kept rows belong to rows 8 and 3 of x
    slot = torch.full((9,), -1)
    slot[torch.tensor([1, 4, 7])] = torch.arange(3)
    got = kernels.kept_t_times_input(indices, values, x, slot, 3, example)
    expected = torch.stack([2.0 * x[8] + 3.0 * x[3], 1.0 * x[8], -1.0 * x[3]])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-14)


def test_kept_units_lists_the_units_that_occur_and_their_rows():
    indices = torch.tensor([[7, 2], [2, 9]])
    units, slot = kernels.kept_units(indices, 11)
    assert units.tolist() == [2, 7, 9]
    assert slot.tolist() == [-1, -1, 0, -1, -1, -1, -1, 1, -1, 2, -1]


@pytest.mark.parametrize("rows, n_in, width, k", [(16, 9, 12, 4), (3000, 700, 500, 20)])  # one and two threads
@pytest.mark.parametrize("mapped", [False, True])
def test_centred_product_against_its_formula(rows, n_in, width, k, mapped):
    torch.manual_seed(7)
    x = torch.randn(rows + 5, n_in, dtype=torch.float64) + 1.0
    dy = torch.randn(rows, width, dtype=torch.float64)
    example = torch.randperm(rows + 5)[:rows] if mapped else None
    inputs = x[example] if mapped else x[:rows]
    if not mapped:
        x = x[:rows]
    indices, values = kernels.topk_rows(dy, k)
    kept = torch.zeros_like(dy).scatter_(1, indices, values)
    mean = inputs.mean(0)
    expected = kept.t() @ (inputs - mean) + torch.outer(dy.sum(0), mean)
    got = kernels.centred_t_times_input(indices, values, x, dy.sum(0), example)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows, width, k", [(1, 7, 3), (130, 500, 20), (300, 96, 8)])
def test_keep_rows_is_topk_sample_and_column_sums_in_one_pass(dtype, rows, width, k):
    torch.manual_seed(rows)
    dy = torch.randn(rows, width, dtype=dtype) * (torch.rand(rows, width) > 0.5)  # ReLU-like zeros
    dy[0, :2] = 50.0  # capped entries (p = 1) in the first row
    uniforms = torch.rand(rows, dtype=torch.float64)
    kept = kernels.keep_rows(dy, k, uniforms, column_sums=True)
    indices, values = kernels.topk_rows(dy, k)
    torch.testing.assert_close(kept_matrix(kept.indices, kept.values, width), kept_matrix(indices, values, width),
                               rtol=0, atol=0)
    sample = kernels.sample_rows(dy, indices, values, uniforms)
    dense = [torch.zeros(rows, width, dtype=dtype).scatter_add_(1, i, v) for i, v in (kept.sample, sample)]
    torch.testing.assert_close(dense[0], dense[1], rtol=0, atol=0)
    torch.testing.assert_close(kept.column_sums, dy.double().sum(0).to(dtype))
    bare = kernels.keep_rows(dy, k)
    assert bare.sample is None and bare.column_sums is None
