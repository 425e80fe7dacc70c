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
constexpr int64_t kSkip = 16;          // that pass looks at chunks of this many entries first

void check_pairs(const at::Tensor& indices, const at::Tensor& values) {
  TORCH_CHECK(indices.dim() == 2 && values.dim() == 2 && indices.sizes() == values.sizes(),
              "indices and values must be (rows, k) of the same shape");
  TORCH_CHECK(indices.scalar_type() == at::kLong, "indices must be int64");
  TORCH_CHECK(!indices.is_cuda() && !values.is_cuda(), "CPU tensors only");
}

}  // namespace

// Writes to ``out`` the positions of the k entries of largest magnitude of row[0..width), in no order.
// Small k: one pass that keeps the k best so far and replaces the weakest (about k log(width/k) replacements);
// larger k: nth_element over the positions. Ties go to the lower position in the first case.
template <typename scalar_t>
void top_magnitudes(const scalar_t* row, int64_t width, int64_t k, int64_t* out, std::vector<scalar_t>& best,
                    std::vector<int32_t>& order) {
  if (k <= kSmallK) {
    best.resize(k);
    for (int64_t j = 0; j < k; ++j) { best[j] = std::abs(row[j]); out[j] = j; }
    int64_t weakest = std::min_element(best.begin(), best.end()) - best.begin();
    int64_t j = k;
    for (; j + kSkip <= width; j += kSkip) {
      // Most chunks hold nothing larger than the weakest kept entry: one vectorised max decides, no branches.
      scalar_t chunk_max = 0;
      for (int64_t t = 0; t < kSkip; ++t) chunk_max = std::max(chunk_max, std::abs(row[j + t]));
      if (chunk_max <= best[weakest]) continue;
      for (int64_t t = j; t < j + kSkip; ++t) {
        const scalar_t m = std::abs(row[t]);
        if (m > best[weakest]) {
          best[weakest] = m;
          out[weakest] = t;
          weakest = std::min_element(best.begin(), best.end()) - best.begin();
        }
      }
    }
    for (; j < width; ++j) {
      const scalar_t m = std::abs(row[j]);
      if (m > best[weakest]) {
        best[weakest] = m;
        out[weakest] = j;
        weakest = std::min_element(best.begin(), best.end()) - best.begin();
      }
    }
    return;
  }
  order.resize(width);
  std::iota(order.begin(), order.end(), 0);
  std::nth_element(order.begin(), order.begin() + (k - 1), order.end(),
                   [&](int32_t a, int32_t b) { return std::abs(row[a]) > std::abs(row[b]); });
  std::copy(order.begin(), order.begin() + k, out);
}

// The k entries of largest magnitude of each row of dy (rows, width): (indices int64, values), unsorted.
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
      std::vector<scalar_t> best;
      std::vector<int32_t> order;
      for (int64_t r = begin; r < end; ++r) {
        const scalar_t* row = d + r * width;
        int64_t* ri = out_i + r * k;
        top_magnitudes(row, width, k, ri, best, order);
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

// meProp's backward through time of one LSTM layer, top-k per example: the whole time loop in one call.
// gates (T, B, 4h): activated i, f, g, o; cells (T+1, B, h) with cells[0] = 0; d_out (T, B, h); w_hh (4h, h);
// batch_sizes (T): rows alive at each step (sorted longest first). Keeps k entries of each row's dL/dz_t (k per
// gate with per_gate) and sends dL/dh_{t-1} = W_hh^T (kept dz) back. Returns dL/dz (T, B, 4h) in full (for a
// dense bias gradient), and the kept (indices, values), one row per real token in time-major order.
std::vector<at::Tensor> lstm_topk_bptt(const at::Tensor& gates, const at::Tensor& cells, const at::Tensor& d_out,
                                       const at::Tensor& w_hh, const at::Tensor& batch_sizes, int64_t k,
                                       bool per_gate) {
  const auto A = gates.contiguous(), C = cells.contiguous(), D = d_out.contiguous(), W = w_hh.contiguous();
  const auto bs = batch_sizes.contiguous();
  TORCH_CHECK(bs.scalar_type() == at::kLong && !A.is_cuda(), "CPU tensors and int64 batch sizes only");
  const int64_t steps = A.size(0), batch = A.size(1), width = A.size(2), hidden = width / 4;
  const int64_t kept = per_gate ? 4 * k : k;
  const int64_t* sizes = bs.data_ptr<int64_t>();
  std::vector<int64_t> first_token(steps + 1, 0);
  for (int64_t t = 0; t < steps; ++t) first_token[t + 1] = first_token[t] + sizes[t];
  auto dz_all = at::zeros({steps, batch, width}, A.options());
  auto indices = at::empty({first_token[steps], kept}, A.options().dtype(at::kLong));
  auto values = at::empty({first_token[steps], kept}, A.options());
  auto dh = at::zeros({batch, hidden}, A.options());
  auto dc = at::zeros({batch, hidden}, A.options());
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "lstm_topk_bptt", [&] {
    const scalar_t* a = A.data_ptr<scalar_t>();
    const scalar_t* c = C.data_ptr<scalar_t>();
    const scalar_t* d = D.data_ptr<scalar_t>();
    const scalar_t* w = W.data_ptr<scalar_t>();
    scalar_t* dz_base = dz_all.data_ptr<scalar_t>();
    int64_t* out_i = indices.data_ptr<int64_t>();
    scalar_t* out_v = values.data_ptr<scalar_t>();
    scalar_t* DH = dh.data_ptr<scalar_t>();
    scalar_t* DC = dc.data_ptr<scalar_t>();
    for (int64_t t = steps - 1; t >= 0; --t) {
      // rows are independent within a step; a few rows per task keeps small batches on one thread
      at::parallel_for(0, sizes[t], 4, [&](int64_t begin, int64_t end) {
        std::vector<scalar_t> best;
        std::vector<int32_t> order;
        for (int64_t r = begin; r < end; ++r) {
          const scalar_t* ar = a + (t * batch + r) * width;
          const scalar_t* cr = c + ((t + 1) * batch + r) * hidden;
          const scalar_t* cp = c + (t * batch + r) * hidden;
          const scalar_t* dr = d + (t * batch + r) * hidden;
          scalar_t* dz = dz_base + (t * batch + r) * width;
          scalar_t* dhr = DH + r * hidden;
          scalar_t* dcr = DC + r * hidden;
          for (int64_t u = 0; u < hidden; ++u) {
            const scalar_t i = ar[u], f = ar[hidden + u], g = ar[2 * hidden + u], o = ar[3 * hidden + u];
            const scalar_t tc = std::tanh(cr[u]);
            const scalar_t dh_t = dr[u] + dhr[u];
            const scalar_t dc_t = dcr[u] + dh_t * o * (1 - tc * tc);
            dz[u] = dc_t * g * i * (1 - i);
            dz[hidden + u] = dc_t * cp[u] * f * (1 - f);
            dz[2 * hidden + u] = dc_t * i * (1 - g * g);
            dz[3 * hidden + u] = dh_t * tc * o * (1 - o);
            dcr[u] = dc_t * f;
          }
          const int64_t token = first_token[t] + r;
          int64_t* ri = out_i + token * kept;
          scalar_t* rv = out_v + token * kept;
          if (per_gate) {
            for (int64_t gate = 0; gate < 4; ++gate) {
              top_magnitudes(dz + gate * hidden, hidden, k, ri + gate * k, best, order);
              for (int64_t j = 0; j < k; ++j) ri[gate * k + j] += gate * hidden;
            }
          } else {
            top_magnitudes(dz, width, k, ri, best, order);
          }
          std::fill(dhr, dhr + hidden, scalar_t(0));
          for (int64_t j = 0; j < kept; ++j) {
            const scalar_t v = dz[ri[j]];
            rv[j] = v;
            const scalar_t* wrow = w + ri[j] * hidden;
            for (int64_t u = 0; u < hidden; ++u) dhr[u] += v * wrow[u];
          }
        }
      });
    }
  });
  return {dz_all, indices, values};
}

// The unified (one index set per minibatch) top-k backward of a linear layer, in one call: at small sizes the
// per-operator dispatch from Python costs as much as the arithmetic. Returns the kept units (k), dy's kept
// columns (rows, k), dL/dx (rows, in) and the kept rows of dL/dW (k, in); empty tensors for what is not needed.
std::vector<at::Tensor> unified_backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& weight,
                                         int64_t k, bool need_x, bool need_w) {
  const auto units = std::get<1>(dy.abs().sum(0).topk(k, 0, /*largest=*/true, /*sorted=*/false));
  const auto kept = dy.index_select(1, units);
  auto dx = need_x ? kept.mm(weight.index_select(0, units)) : at::Tensor();
  auto dw = need_w ? kept.t().mm(x) : at::Tensor();
  return {units, kept, dx, dw};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("unified_backward", &unified_backward, "unified top-k backward of a linear layer");
  m.def("lstm_topk_bptt", &lstm_topk_bptt, "meProp LSTM backward through time, top-k per example");
  m.def("topk_rows", &topk_rows, "top-k by magnitude of each row");
  m.def("kept_times_weight", &kept_times_weight, "dL/dx from k kept entries per row");
  m.def("kept_t_times_input", &kept_t_times_input, "dL/dW from k kept entries per row");
}
