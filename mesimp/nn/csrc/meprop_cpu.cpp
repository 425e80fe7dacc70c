// meProp's per-example sparse backward on the CPU: top-k selection and the two products with k entries per row.
//
// PyTorch has no fast path for "k entries per row" matrices: topk sorts more than it must, and the COO/CSR
// products are general-purpose. These loops do only the arithmetic meProp needs, in parallel, with memory
// access the hardware likes: each output row of dL/dx is built in cache; dL/dW is split into column blocks so
// that every thread owns its block (no atomics, and the same summation order on every run).

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace {

constexpr int64_t kColumnBlock = 256;  // dL/dW columns per task: a (units x 256) block stays in L2
constexpr int64_t kSmallK = 64;        // up to this k, top-k is one replace-the-weakest pass

void check_pairs(const at::Tensor& indices, const at::Tensor& values) {
  TORCH_CHECK(indices.dim() == 2 && values.dim() == 2 && indices.sizes() == values.sizes(),
              "indices and values must be (rows, k) of the same shape");
  TORCH_CHECK(indices.scalar_type() == at::kLong, "indices must be int64");
  TORCH_CHECK(!indices.is_cuda() && !values.is_cuda(), "CPU tensors only");
}

}  // namespace

// The k entries of largest magnitude of each row of dy (rows, width): (indices int64, values), unsorted.
// Small k: one pass that keeps the k best so far and replaces the weakest (about k log(width/k) replacements);
// larger k: nth_element on a copy of the magnitudes. Ties go to the lower index in the first case.
std::vector<at::Tensor> topk_rows(const at::Tensor& dy, int64_t k) {
  TORCH_CHECK(dy.dim() == 2 && !dy.is_cuda(), "dy must be a 2-D CPU tensor");
  const auto src = dy.contiguous();
  const int64_t rows = src.size(0), width = src.size(1);
  TORCH_CHECK(k > 0 && k <= width, "k must be in 1..width");
  auto indices = at::empty({rows, k}, src.options().dtype(at::kLong));
  auto values = at::empty({rows, k}, src.options());
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "topk_rows", [&] {
    const scalar_t* d = src.data_ptr<scalar_t>();
    int64_t* out_i = indices.data_ptr<int64_t>();
    scalar_t* out_v = values.data_ptr<scalar_t>();
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> best(k), magnitude(k > kSmallK ? width : 0);
      std::vector<int64_t> where(k);
      std::vector<int32_t> order(k > kSmallK ? width : 0);
      for (int64_t r = begin; r < end; ++r) {
        const scalar_t* row = d + r * width;
        int64_t* ri = out_i + r * k;
        if (k <= kSmallK) {
          for (int64_t j = 0; j < k; ++j) { best[j] = std::abs(row[j]); where[j] = j; }
          int64_t weakest = std::min_element(best.begin(), best.end()) - best.begin();
          for (int64_t j = k; j < width; ++j) {
            const scalar_t m = std::abs(row[j]);
            if (m > best[weakest]) {
              best[weakest] = m;
              where[weakest] = j;
              weakest = std::min_element(best.begin(), best.end()) - best.begin();
            }
          }
          std::copy(where.begin(), where.end(), ri);
        } else {
          for (int64_t j = 0; j < width; ++j) magnitude[j] = std::abs(row[j]);
          std::iota(order.begin(), order.end(), 0);
          std::nth_element(order.begin(), order.begin() + (k - 1), order.end(),
                           [&](int32_t a, int32_t b) { return magnitude[a] > magnitude[b]; });
          std::copy(order.begin(), order.begin() + k, ri);
        }
        for (int64_t j = 0; j < k; ++j) out_v[r * k + j] = row[ri[j]];
      }
    });
  });
  return {indices, values};
}

// dL/dx = S W, where row r of S holds values[r] at columns indices[r]: (rows, in).
at::Tensor kept_times_weight(const at::Tensor& indices, const at::Tensor& values, const at::Tensor& weight) {
  check_pairs(indices, values);
  const auto w = weight.contiguous();
  const auto idx = indices.contiguous();
  const auto val = values.contiguous();
  const int64_t rows = idx.size(0), k = idx.size(1), in = w.size(1);
  auto out = at::zeros({rows, in}, w.options());
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "kept_times_weight", [&] {
    const scalar_t* W = w.data_ptr<scalar_t>();
    const int64_t* I = idx.data_ptr<int64_t>();
    const scalar_t* V = val.data_ptr<scalar_t>();
    scalar_t* O = out.data_ptr<scalar_t>();
    at::parallel_for(0, rows, 8, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        scalar_t* __restrict__ o = O + r * in;  // one output row (a few KB) stays in L1 over the k entries
        for (int64_t j = 0; j < k; ++j) {
          const scalar_t v = V[r * k + j];
          const scalar_t* __restrict__ w = W + I[r * k + j] * in;
          for (int64_t c = 0; c < in; ++c) o[c] += v * w[c];
        }
      }
    });
  });
  return out;
}

// dL/dW = S^T x, restricted to the units that occur: slot[u] is unit u's row in the result (units x in),
// -1 for a unit that never occurs. ``example`` maps each row of indices/values to its row of x (all rows of x
// when it is empty), so a caller can keep only the real tokens of a padded batch.
at::Tensor kept_t_times_input(const at::Tensor& indices, const at::Tensor& values, const at::Tensor& example,
                              const at::Tensor& x, const at::Tensor& slot, int64_t units) {
  check_pairs(indices, values);
  const auto xs = x.contiguous();
  const auto idx = indices.contiguous();
  const auto val = values.contiguous();
  const auto ex = example.contiguous();
  const auto sl = slot.contiguous();
  const int64_t rows = idx.size(0), k = idx.size(1), in = xs.size(1);
  TORCH_CHECK(ex.numel() == 0 || ex.numel() == rows, "example must be empty or one entry per row");
  auto out = at::zeros({units, in}, xs.options());
  AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "kept_t_times_input", [&] {
    const scalar_t* X = xs.data_ptr<scalar_t>();  // each row of x is read once per column block, in order
    const int64_t* I = idx.data_ptr<int64_t>();
    const scalar_t* V = val.data_ptr<scalar_t>();
    const int64_t* E = ex.numel() ? ex.data_ptr<int64_t>() : nullptr;
    const int64_t* S = sl.data_ptr<int64_t>();
    scalar_t* O = out.data_ptr<scalar_t>();
    const int64_t blocks = (in + kColumnBlock - 1) / kColumnBlock;
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const int64_t c0 = b * kColumnBlock, c1 = std::min(in, c0 + kColumnBlock);
        for (int64_t r = 0; r < rows; ++r) {
          const scalar_t* xrow = X + (E ? E[r] : r) * in;
          for (int64_t j = 0; j < k; ++j) {
            const scalar_t v = V[r * k + j];
            scalar_t* __restrict__ o = O + S[I[r * k + j]] * in;
            for (int64_t c = c0; c < c1; ++c) o[c] += v * xrow[c];
          }
        }
      }
    });
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("topk_rows", &topk_rows, "top-k by magnitude of each row");
  m.def("kept_times_weight", &kept_times_weight, "dL/dx from k kept entries per row");
  m.def("kept_t_times_input", &kept_t_times_input, "dL/dW from k kept entries per row");
}
