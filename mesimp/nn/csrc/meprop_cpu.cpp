// meProp's sparse backward on the CPU: top-k selection and unbiased k-entry sampling, the two products with k entries per row, the LSTM's
// top-k time loop, the unified backward in one call, the gradient of an embedding lookup, and the pool-wide
// denormal mode.
//
// PyTorch has no fast path for "k entries per row" matrices: topk sorts more than it must, and the COO/CSR
// products are general-purpose. These loops do only the arithmetic meProp needs, in parallel, with memory
// access the hardware likes: dL/dx is built in column blocks whose rows of W stay in L2; dL/dW is split into
// column blocks that each thread owns (no atomics, and the same summation order on every run).

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kColumnBlock = 256;  // columns per task: a (units x 256) block of W or dL/dW stays in L2
constexpr int64_t kRowTile = 512;       // dL/dW's rows of x per tile: a (512 x 256) block of x stays in L2
constexpr int64_t kGroupAlign = 16;     // top-k's group count is a multiple of a SIMD width

// Below about two million multiply-adds a second thread costs more to wake than it saves.
bool small_work(int64_t multiply_adds) { return multiply_adds < (int64_t(1) << 21); }

void check_pairs(const at::Tensor& indices, const at::Tensor& values) {
  TORCH_CHECK(indices.dim() == 2 && values.dim() == 2 && indices.sizes() == values.sizes(),
              "indices and values must be (rows, k) of the same shape");
  TORCH_CHECK(indices.size(1) > 0, "at least one kept entry per row");
  TORCH_CHECK(indices.scalar_type() == at::kLong, "indices must be int64");
  TORCH_CHECK(!indices.is_cuda() && !values.is_cuda(), "CPU tensors only");
}

#if defined(__AVX2__) && !defined(__AVX512F__)
// AVX2 has no compress instruction: the permutation that packs a comparison's 8 lanes (its movemask) to the
// front, in order, comes from a 256-entry table.
struct PackTable {
  alignas(32) int32_t lanes[256][8];
  constexpr PackTable() : lanes() {
    for (int mask = 0; mask < 256; ++mask) {
      int n = 0;
      for (int lane = 0; lane < 8; ++lane)
        if (mask & (1 << lane)) lanes[mask][n++] = lane;
      for (; n < 8; ++n) lanes[mask][n] = 0;
    }
  }
};
constexpr PackTable kPack{};

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
inline __m256d abs_pd(__m256d v) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), v); }

// The magnitudes of a full block of 16 entries as four vectors of 4 doubles.
inline void magnitudes16(const float* block, __m256d out[4]) {
  const __m256 a = abs_ps(_mm256_loadu_ps(block)), b = abs_ps(_mm256_loadu_ps(block + 8));
  out[0] = _mm256_cvtps_pd(_mm256_castps256_ps128(a));
  out[1] = _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1));
  out[2] = _mm256_cvtps_pd(_mm256_castps256_ps128(b));
  out[3] = _mm256_cvtps_pd(_mm256_extractf128_ps(b, 1));
}
inline void magnitudes16(const double* block, __m256d out[4]) {
  for (int q = 0; q < 4; ++q) out[q] = abs_pd(_mm256_loadu_pd(block + 4 * q));
}

inline double sum4(__m256d v) {
  const __m128d pair = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)));
}

// Inclusive prefix sums of 4 doubles in a register.
inline __m256d prefix4(__m256d x) {
  x = _mm256_add_pd(x, _mm256_blend_pd(_mm256_permute4x64_pd(x, _MM_SHUFFLE(2, 1, 0, 0)), _mm256_setzero_pd(), 1));
  return _mm256_add_pd(x, _mm256_permute2f128_pd(x, x, 0x08));  // + (0, 0, x0, x1)
}
#endif

}  // namespace

// The k-th largest of v[0..n) (v may be reordered). std::nth_element's partitions mispredict about every other
// comparison on random magnitudes; with AVX-512 (or AVX2), up to 64 floats are ranked instead: each value's count of
// larger ones in vector registers (a compare and a masked add per value), then the smallest value with fewer than k
// above.
template <typename scalar_t>
scalar_t kth_largest(scalar_t* v, int64_t n, int64_t k) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (n <= 64) {
      const int64_t vecs = (n + 15) / 16;
      __m512 value[4];
      __m512i above[4];
      for (int64_t q = 0; q < vecs; ++q) {  // lanes past n hold -inf: n values are above them, never fewer than k
        const int64_t left = n - 16 * q;
        const __mmask16 live = __mmask16(left >= 16 ? 0xffff : (1u << left) - 1);
        value[q] = _mm512_mask_loadu_ps(_mm512_set1_ps(-std::numeric_limits<float>::infinity()), live, v + 16 * q);
        above[q] = _mm512_setzero_si512();
      }
      const __m512i one = _mm512_set1_epi32(1);
      for (int64_t j = 0; j < n; ++j) {
        const __m512 other = _mm512_set1_ps(v[j]);
        for (int64_t q = 0; q < vecs; ++q)
          above[q] = _mm512_mask_add_epi32(above[q], _mm512_cmp_ps_mask(other, value[q], _CMP_GT_OQ), above[q], one);
      }
      __m512 kth = _mm512_set1_ps(std::numeric_limits<float>::infinity());
      const __m512i rank = _mm512_set1_epi32(int32_t(k));
      for (int64_t q = 0; q < vecs; ++q)
        kth = _mm512_mask_min_ps(kth, _mm512_cmplt_epi32_mask(above[q], rank), kth, value[q]);
      return _mm512_reduce_min_ps(kth);
    }
  }
#elif defined(__AVX2__)
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (n <= 64) {
      const int64_t vecs = (n + 7) / 8;
      __m256 value[8];
      __m256i above[8];
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256 minus_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
      for (int64_t q = 0; q < vecs; ++q) {  // lanes past n hold -inf: n values are above them, never fewer than k
        const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(n - 8 * q)), lane);
        value[q] = _mm256_blendv_ps(minus_inf, _mm256_maskload_ps(v + 8 * q, live), _mm256_castsi256_ps(live));
        above[q] = _mm256_setzero_si256();
      }
      for (int64_t j = 0; j < n; ++j) {  // a true comparison is -1: subtracting it counts
        const __m256 other = _mm256_set1_ps(v[j]);
        for (int64_t q = 0; q < vecs; ++q)
          above[q] = _mm256_sub_epi32(above[q], _mm256_castps_si256(_mm256_cmp_ps(other, value[q], _CMP_GT_OQ)));
      }
      __m256 kth = _mm256_set1_ps(std::numeric_limits<float>::infinity());
      const __m256i rank = _mm256_set1_epi32(int32_t(k));
      for (int64_t q = 0; q < vecs; ++q)
        kth = _mm256_blendv_ps(kth, _mm256_min_ps(kth, value[q]),
                               _mm256_castsi256_ps(_mm256_cmpgt_epi32(rank, above[q])));
      __m128 low = _mm_min_ps(_mm256_castps256_ps128(kth), _mm256_extractf128_ps(kth, 1));
      low = _mm_min_ps(low, _mm_movehl_ps(low, low));
      return _mm_cvtss_f32(_mm_min_ss(low, _mm_shuffle_ps(low, low, 1)));
    }
  }
#endif
  std::nth_element(v, v + (k - 1), v + n, std::greater<scalar_t>());
  return v[k - 1];
}

// Reusable buffers of one thread's top-k selections.
template <typename scalar_t>
struct TopkScratch {
  std::vector<scalar_t> group_max;
  std::vector<int32_t> candidates;
  std::vector<scalar_t> magnitudes;
};

// Writes to ``out`` the positions of the k entries of largest magnitude of row[0..width), in no order; ties go
// to the lower position. Filter, then select: the row is split into G >= 2k interleaved groups (position j in
// group j mod G, so the group maxima are a vertical, branch-free SIMD max); the k-th largest group maximum is
// a lower bound of the k-th largest entry (k groups have an entry at least that large), so only entries above
// it (typically little more than k) are candidates. The k-th largest candidate magnitude T is found by
// nth_element over plain values; then every candidate above T is kept, and those equal to T in position order.
template <typename scalar_t>
void top_magnitudes(const scalar_t* row, int64_t width, int64_t k, int64_t* out, TopkScratch<scalar_t>& s) {
  const int64_t groups = (2 * k + kGroupAlign - 1) / kGroupAlign * kGroupAlign;
  scalar_t bound = 0;
  if (4 * groups <= width) {  // otherwise too few entries per group to filter any out
    s.group_max.assign(groups, scalar_t(0));
    scalar_t* m = s.group_max.data();
    const int64_t full = width / groups * groups;
    for (int64_t j0 = 0; j0 < full; j0 += groups)
      for (int64_t g = 0; g < groups; ++g) m[g] = std::max(m[g], std::abs(row[j0 + g]));
    for (int64_t j = full; j < width; ++j) m[j - full] = std::max(m[j - full], std::abs(row[j]));
    bound = kth_largest(m, groups, k);
  }
  s.candidates.resize(width + 16);  // + 16: room for a full vector store past the last candidate
  s.magnitudes.resize(width + 16);
  int32_t* c = s.candidates.data();
  scalar_t* mag = s.magnitudes.data();
  int64_t n = 0;
  int64_t j = 0;
#ifdef __AVX512F__
  if constexpr (std::is_same_v<scalar_t, float>) {  // 16 entries at a time
    const __m512 limit = _mm512_set1_ps(bound);
    __m512i position = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i sixteen = _mm512_set1_epi32(16);
    for (; j + 16 <= width; j += 16) {
      const __m512 v = _mm512_abs_ps(_mm512_loadu_ps(row + j));
      const __mmask16 keep = _mm512_cmp_ps_mask(v, limit, _CMP_GE_OQ);
      // compress in a register, then a full store (compress-to-memory is microcoded on some CPUs)
      _mm512_storeu_ps(mag + n, _mm512_maskz_compress_ps(keep, v));
      _mm512_storeu_si512(c + n, _mm512_maskz_compress_epi32(keep, position));
      n += __builtin_popcount(keep);
      position = _mm512_add_epi32(position, sixteen);
    }
  }
#elif defined(__AVX2__)
  if constexpr (std::is_same_v<scalar_t, float>) {  // 8 entries at a time, packed through kPack's permutations
    const __m256 limit = _mm256_set1_ps(bound);
    __m256i position = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i eight = _mm256_set1_epi32(8);
    for (; j + 8 <= width; j += 8) {
      const __m256 v = abs_ps(_mm256_loadu_ps(row + j));
      const int keep = _mm256_movemask_ps(_mm256_cmp_ps(v, limit, _CMP_GE_OQ));
      const __m256i pack = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack.lanes[keep]));
      _mm256_storeu_ps(mag + n, _mm256_permutevar8x32_ps(v, pack));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + n), _mm256_permutevar8x32_epi32(position, pack));
      n += __builtin_popcount(keep);
      position = _mm256_add_epi32(position, eight);
    }
  }
#endif
  for (; j < width; ++j) {  // branch-free: most entries are filtered out
    const scalar_t v = std::abs(row[j]);
    c[n] = static_cast<int32_t>(j);
    mag[n] = v;
    n += v >= bound;
  }
  if (n == k) {
    std::copy(c, c + k, out);
    return;
  }
  std::vector<scalar_t>& ranked = s.group_max;  // free again: the k-th largest candidate magnitude
  ranked.assign(mag, mag + n);
  const scalar_t kth = kth_largest(ranked.data(), n, k);
  int64_t above = 0;
  for (int64_t i = 0; i < n; ++i) above += mag[i] > kth;
  int64_t kept = 0, ties = k - above;
  for (int64_t i = 0; i < n; ++i) {
    if (mag[i] > kth || (mag[i] == kth && ties-- > 0)) out[kept++] = c[i];
  }
}

// The sum of |row[0..n)| in double, n <= 16. With AVX-512 (AVX2: full blocks) a vector tree: a plain reduction loop
// ends in a chain of dependent scalar adds, which made up most of an unbiased sample's cost.
template <typename scalar_t>
double block_magnitude(const scalar_t* row, int64_t n) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<scalar_t, float>) {
    const __m512 v = _mm512_abs_ps(_mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), row));
    const __m512d low = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d high = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return _mm512_reduce_add_pd(_mm512_add_pd(low, high));
  } else {
    const __mmask8 first = __mmask8(n >= 8 ? 0xff : (1u << n) - 1);
    const __mmask8 second = __mmask8(n <= 8 ? 0 : (1u << (n - 8)) - 1);
    const __m512d a = _mm512_abs_pd(_mm512_maskz_loadu_pd(first, row));
    const __m512d c = _mm512_abs_pd(_mm512_maskz_loadu_pd(second, row + 8));
    return _mm512_reduce_add_pd(_mm512_add_pd(a, c));
  }
#else
#ifdef __AVX2__
  if (n == 16) {
    __m256d m[4];
    magnitudes16(row, m);
    return sum4(_mm256_add_pd(_mm256_add_pd(m[0], m[1]), _mm256_add_pd(m[2], m[3])));
  }
#endif
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += double(std::abs(row[i]));
  return sum;
#endif
}

// How many of v[0..n) are <= p: for the nondecreasing cumulative block sums, the block a point falls in.
inline int64_t count_at_most(const double* v, int64_t n, double p) {
  int64_t count = 0;
#ifdef __AVX512F__
  const __m512d point = _mm512_set1_pd(p);
  for (int64_t i = 0; i < n; i += 8) {
    const __mmask8 live = __mmask8(n - i >= 8 ? 0xff : (1u << (n - i)) - 1);
    count += __builtin_popcount(_mm512_mask_cmp_pd_mask(live, _mm512_maskz_loadu_pd(live, v + i), point, _CMP_LE_OQ));
  }
#else
  int64_t i = 0;
#ifdef __AVX2__
  const __m256d point = _mm256_set1_pd(p);
  for (; i + 4 <= n; i += 4)
    count += __builtin_popcount(_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(v + i), point, _CMP_LE_OQ)));
#endif
  for (; i < n; ++i) count += v[i] <= p;
#endif
  return count;
}

#ifdef __AVX512F__
// Inclusive prefix sums of 8 doubles in a register (three shift-and-add steps).
inline __m512d prefix8(__m512d x) {
  const __m512i zero = _mm512_setzero_si512();
  x = _mm512_add_pd(x, _mm512_castsi512_pd(_mm512_alignr_epi64(_mm512_castpd_si512(x), zero, 7)));
  x = _mm512_add_pd(x, _mm512_castsi512_pd(_mm512_alignr_epi64(_mm512_castpd_si512(x), zero, 6)));
  return _mm512_add_pd(x, _mm512_castsi512_pd(_mm512_alignr_epi64(_mm512_castpd_si512(x), zero, 4)));
}
#endif

// In a block of n <= 16 entries whose magnitudes are summed from `base` (entries with skip[i] set count as 0; skip
// may be null), how many running sums are <= p: the offset of the entry a point p draws (n: none, by rounding).
template <typename scalar_t>
int64_t offset_in_block(const scalar_t* block, int64_t n, const uint8_t* skip, double base, double p) {
#ifdef __AVX512F__
  uint32_t live = (1u << n) - 1;
  if (skip)
    for (int64_t i = 0; i < n; ++i) live &= ~(uint32_t(skip[i] != 0) << i);
  __m512d low, high;
  if constexpr (std::is_same_v<scalar_t, float>) {
    const __m512 v = _mm512_abs_ps(_mm512_maskz_loadu_ps(__mmask16(live), block));
    low = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    high = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  } else {
    low = _mm512_abs_pd(_mm512_maskz_loadu_pd(__mmask8(live), block));
    high = _mm512_abs_pd(_mm512_maskz_loadu_pd(__mmask8(live >> 8), block + 8));
  }
  low = _mm512_add_pd(prefix8(low), _mm512_set1_pd(base));
  high = _mm512_add_pd(prefix8(high), _mm512_permutexvar_pd(_mm512_set1_epi64(7), low));
  const __m512d point = _mm512_set1_pd(p);
  // lanes past n repeat the block's total: counted only when the whole block is <= p
  const uint32_t at_most = _mm512_cmp_pd_mask(low, point, _CMP_LE_OQ) | (_mm512_cmp_pd_mask(high, point, _CMP_LE_OQ) << 8);
  return std::min<int64_t>(n, __builtin_popcount(at_most));
#elif defined(__AVX2__)
  __m256d m[4];
  if (n == 16 && !skip) {
    magnitudes16(block, m);
  } else {  // lanes past n and skipped entries count as 0, as in the AVX-512 path
    alignas(32) double held[16];
    for (int64_t i = 0; i < 16; ++i) held[i] = i < n && !(skip && skip[i]) ? double(std::abs(block[i])) : 0.0;
    for (int q = 0; q < 4; ++q) m[q] = _mm256_load_pd(held + 4 * q);
  }
  const __m256d point = _mm256_set1_pd(p);
  __m256d carry = _mm256_set1_pd(base);
  int64_t count = 0;
  for (int q = 0; q < 4; ++q) {  // lanes past n repeat the block's total: counted only when the whole block is <= p
    const __m256d running = _mm256_add_pd(prefix4(m[q]), carry);
    count += __builtin_popcount(_mm256_movemask_pd(_mm256_cmp_pd(running, point, _CMP_LE_OQ)));
    carry = _mm256_permute4x64_pd(running, _MM_SHUFFLE(3, 3, 3, 3));
  }
  return std::min<int64_t>(n, count);
#else
  int64_t count = 0;
  double running = base;
  for (int64_t i = 0; i < n; ++i) {
    running += skip && skip[i] ? 0.0 : double(std::abs(block[i]));
    count += running <= p;
  }
  return count;
#endif
}

// Reusable buffers of one thread's samples.
struct SampleScratch {
  std::vector<std::pair<double, int64_t>> top;
  std::vector<double> cumulative;
  std::vector<uint8_t> capped;
};

// An unbiased k-entry estimate of one row of dy (meprop.rule=unbiased), given the positions of its top-k (any
// order) and one uniform u. Inclusion probabilities p_j = min(1, |dy_j| / tau), with tau set so that they sum to
// k (water-filling): the m largest entries have p = 1 and are kept at their value; the other k - m slots are drawn
// by systematic sampling over the remaining entries in position order (points u, u + 1, ..., each taking the
// entry whose cumulative probability first exceeds it) and are worth sign(dy_j) * tau = dy_j / p_j, so that
// E[S] = dy exactly. A row with k or fewer non-zero entries keeps its top-k as it is. A slot that rounding leaves
// unfilled gets the value 0. The capped entries are always a prefix of the top-k by magnitude.
// Cost: one vectorised pass for the cumulative sums of |dy| over blocks of kBlock entries, the top-k sorted only
// when an entry is capped (rare: tau is about sum |dy| / k), and for each point two branch-free counts: its block
// among the cumulative sums, its entry among the block's running sums. (A walk along the row, branching at every
// block, spent most of its time on mispredicted branches.)
template <typename scalar_t>
void sample_row(const scalar_t* row, int64_t width, int64_t k, const int64_t* top_index, double u, int64_t* ri,
                scalar_t* rv, SampleScratch& s) {
  constexpr int64_t kBlock = 16;
  const int64_t blocks = (width + kBlock - 1) / kBlock;
  std::vector<double>& cumulative = s.cumulative;  // block sums first, made cumulative below
  cumulative.resize(blocks);
  double total = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    cumulative[b] = block_magnitude(row + b * kBlock, std::min(kBlock, width - b * kBlock));
    total += cumulative[b];
  }
  double largest = 0;
  for (int64_t j = 0; j < k; ++j) largest = std::max(largest, double(std::abs(row[top_index[j]])));
  // m: the fewest capped entries such that the largest uncapped one gets p <= 1; tail: the uncapped magnitudes
  int64_t m = 0;
  double tail = total;
  if (!(tail > 0 && largest * double(k) <= tail)) {
    s.top.resize(k);
    for (int64_t j = 0; j < k; ++j) s.top[j] = {double(std::abs(row[top_index[j]])), top_index[j]};
    std::sort(s.top.begin(), s.top.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    for (; m < k; ++m) {
      if (tail > 0 && s.top[m].first * double(k - m) <= tail) break;
      tail -= s.top[m].first;
    }
  }
  if (m == k) {  // k or fewer non-zero entries: the top-k is exact
    for (int64_t j = 0; j < k; ++j) {
      ri[j] = top_index[j];
      rv[j] = row[top_index[j]];
    }
    return;
  }
  const double tau = tail / double(k - m);
  const uint8_t* skip = nullptr;
  if (m > 0) {  // the capped entries are kept as they are and leave the draw: their blocks are summed again
    s.capped.assign(width, 0);
    for (int64_t j = 0; j < m; ++j) {
      ri[j] = s.top[j].second;
      rv[j] = row[s.top[j].second];
      s.capped[s.top[j].second] = 1;
    }
    skip = s.capped.data();
    for (int64_t j = 0; j < m; ++j) {
      const int64_t b = s.top[j].second / kBlock, j1 = std::min(width, (b + 1) * kBlock);
      double block = 0;
      for (int64_t i = b * kBlock; i < j1; ++i) block += s.capped[i] ? 0.0 : double(std::abs(row[i]));
      cumulative[b] = block;
    }
  }
  for (int64_t b = 1; b < blocks; ++b) cumulative[b] += cumulative[b - 1];
  const int64_t empty = m > 0 ? s.top[0].second : top_index[0];  // a slot rounding leaves unfilled: value 0
  int64_t filled = m;
  for (; filled < k; ++filled) {  // point (u + i) tau draws the entry whose running sum of |dy| first exceeds it
    const double point = (u + double(filled - m)) * tau;
    const int64_t b = count_at_most(cumulative.data(), blocks, point);
    if (b == blocks) break;  // past the row's end, by rounding: this and the later slots stay empty
    const int64_t j0 = b * kBlock, n = std::min(kBlock, width - j0);
    const int64_t offset = offset_in_block(row + j0, n, skip ? skip + j0 : nullptr, b > 0 ? cumulative[b - 1] : 0.0,
                                           point);
    // offset n: the block's running sums and its cumulative sum disagree by rounding; the slot stays empty
    const int64_t j = offset < n ? j0 + offset : empty;
    ri[filled] = j;
    // sign(dy_j) * tau without a branch on the sign (random: a branch on it is mispredicted half the time)
    rv[filled] = offset < n ? scalar_t(double(row[j] != 0) * std::copysign(tau, double(row[j]))) : scalar_t(0);
  }
  for (; filled < k; ++filled) {
    ri[filled] = empty;
    rv[filled] = scalar_t(0);
  }
}

// sample_row for every row of dy, given the rows' top-k (indices, values) and one uniform per row.
std::vector<at::Tensor> sample_rows(const at::Tensor& dy, const at::Tensor& indices, const at::Tensor& values,
                                    const at::Tensor& uniforms) {
  check_pairs(indices, values);
  const auto src = dy.contiguous();
  const auto idx = indices.contiguous();
  const auto uni = uniforms.contiguous().to(at::kDouble);
  const int64_t rows = src.size(0), width = src.size(1), k = idx.size(1);
  TORCH_CHECK(idx.size(0) == rows && uni.numel() == rows, "one top-k row and one uniform per row of dy");
  auto out_indices = at::empty({rows, k}, idx.options());
  auto out_values = at::empty({rows, k}, src.options());
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "sample_rows", [&] {
    const scalar_t* d = src.data_ptr<scalar_t>();
    const int64_t* I = idx.data_ptr<int64_t>();
    const double* U = uni.data_ptr<double>();
    int64_t* oi = out_indices.data_ptr<int64_t>();
    scalar_t* ov = out_values.data_ptr<scalar_t>();
    at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
      SampleScratch scratch;
      for (int64_t r = begin; r < end; ++r)
        sample_row(d + r * width, width, k, I + r * k, U[r], oi + r * k, ov + r * k, scratch);
    });
  });
  return {out_indices, out_values};
}

// What per-example meProp needs of dy (rows, width), in one pass while each row is in L1: the k entries of largest
// magnitude of each row (indices int64, values; unsorted); with ``uniforms`` (one per row; empty for none) the
// unbiased sample drawn from them (sample_row); with ``column_sums``, dy's column sums (the dense bias gradient and
// the centred rules' mean term), summed in double over fixed chunks of rows, so the same for any thread count.
// Returns {indices, values, sample indices, sample values, column sums}, empty tensors for what was not asked.
std::vector<at::Tensor> keep_rows(const at::Tensor& dy, int64_t k, const at::Tensor& uniforms, bool column_sums) {
  TORCH_CHECK(dy.dim() == 2 && !dy.is_cuda(), "dy must be a 2-D CPU tensor");
  const auto src = dy.contiguous();
  const int64_t rows = src.size(0), width = src.size(1);
  TORCH_CHECK(k > 0 && k <= width, "k must be in 1..width");
  const bool sample = uniforms.numel() > 0;
  const auto uni = sample ? uniforms.contiguous().to(at::kDouble) : uniforms;
  TORCH_CHECK(!sample || uni.numel() == rows, "one uniform per row of dy");
  auto indices = at::empty({rows, k}, src.options().dtype(at::kLong));
  auto values = at::empty({rows, k}, src.options());
  auto sample_indices = sample ? at::empty({rows, k}, indices.options()) : at::empty({0}, indices.options());
  auto sample_values = sample ? at::empty({rows, k}, src.options()) : at::empty({0}, src.options());
  constexpr int64_t kChunk = 64;  // rows per task, and per partial column sum
  const int64_t chunks = (rows + kChunk - 1) / kChunk;
  std::vector<double> partial(column_sums ? chunks * width : 0, 0.0);
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "keep_rows", [&] {
    const scalar_t* d = src.data_ptr<scalar_t>();
    const double* U = sample ? uni.data_ptr<double>() : nullptr;
    int64_t* ti = indices.data_ptr<int64_t>();
    scalar_t* tv = values.data_ptr<scalar_t>();
    int64_t* si = sample ? sample_indices.data_ptr<int64_t>() : nullptr;
    scalar_t* sv = sample ? sample_values.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      TopkScratch<scalar_t> top_scratch;
      SampleScratch sample_scratch;
      for (int64_t chunk = begin; chunk < end; ++chunk) {
        double* __restrict__ sums = column_sums ? partial.data() + chunk * width : nullptr;
        for (int64_t r = chunk * kChunk; r < std::min(rows, (chunk + 1) * kChunk); ++r) {
          const scalar_t* __restrict__ row = d + r * width;
          int64_t* ri = ti + r * k;
          top_magnitudes(row, width, k, ri, top_scratch);
          for (int64_t j = 0; j < k; ++j) tv[r * k + j] = row[ri[j]];
          if (sample) sample_row(row, width, k, ri, U[r], si + r * k, sv + r * k, sample_scratch);
          if (sums)
            for (int64_t j = 0; j < width; ++j) sums[j] += double(row[j]);
        }
      }
    });
  });
  at::Tensor sums = at::empty({column_sums ? width : 0}, src.options());
  if (column_sums) {
    std::vector<double> total(width, 0.0);
    for (int64_t chunk = 0; chunk < chunks; ++chunk)
      for (int64_t j = 0; j < width; ++j) total[j] += partial[chunk * width + j];
    AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "keep_rows_sums", [&] {
      scalar_t* out = sums.data_ptr<scalar_t>();
      for (int64_t j = 0; j < width; ++j) out[j] = scalar_t(total[j]);
    });
  }
  return {indices, values, sample_indices, sample_values, sums};
}

// dL/dx = S W, where row r of S holds values[r] at columns indices[r]: (rows, in).
// Column blocks outermost, so that the block of W the k rows are read from stays in L2 across all rows; four
// kept entries per pass over an output chunk (one load and store of it per four products); no zero fill.
at::Tensor kept_times_weight(const at::Tensor& indices, const at::Tensor& values, const at::Tensor& weight) {
  check_pairs(indices, values);
  const auto w = weight.contiguous();
  const auto idx = indices.contiguous();
  const auto val = values.contiguous();
  const int64_t rows = idx.size(0), k = idx.size(1), in = w.size(1);
  auto out = at::empty({rows, in}, w.options());
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "kept_times_weight", [&] {
    const scalar_t* W = w.data_ptr<scalar_t>();
    const int64_t* I = idx.data_ptr<int64_t>();
    const scalar_t* V = val.data_ptr<scalar_t>();
    scalar_t* O = out.data_ptr<scalar_t>();
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t c0 = 0; c0 < in; c0 += kColumnBlock) {
        const int64_t n = std::min(kColumnBlock, in - c0);
        for (int64_t r = begin; r < end; ++r) {
          scalar_t* __restrict__ o = O + r * in + c0;
          const int64_t* ri = I + r * k;
          const scalar_t* rv = V + r * k;
          {
            const scalar_t v = rv[0];
            const scalar_t* __restrict__ w0 = W + ri[0] * in + c0;
            for (int64_t c = 0; c < n; ++c) o[c] = v * w0[c];
          }
          int64_t j = 1;
          for (; j + 4 <= k; j += 4) {
            const scalar_t v0 = rv[j], v1 = rv[j + 1], v2 = rv[j + 2], v3 = rv[j + 3];
            const scalar_t* __restrict__ w0 = W + ri[j] * in + c0;
            const scalar_t* __restrict__ w1 = W + ri[j + 1] * in + c0;
            const scalar_t* __restrict__ w2 = W + ri[j + 2] * in + c0;
            const scalar_t* __restrict__ w3 = W + ri[j + 3] * in + c0;
            for (int64_t c = 0; c < n; ++c) o[c] += v0 * w0[c] + v1 * w1[c] + v2 * w2[c] + v3 * w3[c];
          }
          for (; j < k; ++j) {
            const scalar_t v = rv[j];
            const scalar_t* __restrict__ wj = W + ri[j] * in + c0;
            for (int64_t c = 0; c < n; ++c) o[c] += v * wj[c];
          }
        }
      }
    });
  });
  return out;
}

// dL/dW = S^T x, restricted to the units that occur: slot[u] is unit u's row in the result (units x in),
// -1 for a unit that never occurs. ``example`` maps each row of indices/values to its row of x (all rows of x
// when it is empty), so a caller can keep only the real tokens of a padded batch.
//
// With a non-empty ``dy_sum`` (the centred rules; every unit has a row: slot is the identity), the result is
// S^T x + (dy_sum - S^T 1) xbar^T, xbar the mean of the rows of x the entries use: the column sums of x are taken
// tile by tile while the tile sits in L2 for the products, and the rank-one term is added as each row is written
// out, so the centred rule costs no extra pass over x or over the result. A non-empty ``into`` (centred only: a
// contiguous (units, in) tensor, a parameter's .grad) receives the result added to what it holds, and is returned:
// the caller then skips autograd's read-modify-write of a whole-width gradient into .grad.
at::Tensor kept_t_times_input(const at::Tensor& indices, const at::Tensor& values, const at::Tensor& example,
                              const at::Tensor& x, const at::Tensor& slot, int64_t units, const at::Tensor& dy_sum,
                              const at::Tensor& into) {
  check_pairs(indices, values);
  const auto xs = x.contiguous();
  const auto idx = indices.contiguous();
  const auto val = values.contiguous();
  const auto ex = example.contiguous();
  const auto sl = slot.contiguous();
  const int64_t rows = idx.size(0), k = idx.size(1), in = xs.size(1);
  TORCH_CHECK(ex.numel() == 0 || ex.numel() == rows, "example must be empty or one entry per row");
  const int64_t blocks = (in + kColumnBlock - 1) / kColumnBlock;
  const bool accumulate = into.numel() > 0;
  TORCH_CHECK(!accumulate || (dy_sum.numel() > 0 && into.is_contiguous() && into.dim() == 2 &&
                              into.size(0) == units && into.size(1) == in && into.scalar_type() == xs.scalar_type()),
              "into must be a contiguous (units, in) tensor of x's type, with dy_sum");
  auto out = accumulate ? into : at::empty({units, in}, xs.options());
  AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "kept_t_times_input", [&] {
    const scalar_t* X = xs.data_ptr<scalar_t>();
    const int64_t* I = idx.data_ptr<int64_t>();
    const scalar_t* V = val.data_ptr<scalar_t>();
    const int64_t* E = ex.numel() ? ex.data_ptr<int64_t>() : nullptr;
    const int64_t* S = sl.data_ptr<int64_t>();
    scalar_t* O = out.data_ptr<scalar_t>();
    const bool one_thread = small_work(rows * k * in) || at::get_num_threads() == 1;
    const bool centred = dy_sum.numel() > 0;
    std::vector<scalar_t> coef;  // centred: dy_sum - S^T 1, per unit
    if (centred) {
      TORCH_CHECK(dy_sum.numel() == units, "dy_sum must have one entry per unit");
      const auto ds = dy_sum.contiguous().to(xs.scalar_type());
      const scalar_t* D = ds.data_ptr<scalar_t>();
      coef.assign(D, D + units);
      for (int64_t e = 0; e < rows * k; ++e) coef[S[I[e]]] -= V[e];
    }
    // The entries sorted by unit within tiles of kRowTile rows (a stable counting sort, once for all blocks):
    // a unit's products of one tile are then summed into its row of the block while that row sits in L1,
    // instead of one L2 read-modify-write of the row per product.
    const int64_t tiles = (rows + kRowTile - 1) / kRowTile;
    std::vector<int32_t> offsets(tiles * (units + 1));
    std::vector<int64_t> entry_row(rows * k);
    std::vector<scalar_t> entry_value(rows * k);
    at::parallel_for(0, tiles, one_thread ? tiles : 1, [&](int64_t begin, int64_t end) {
      std::vector<int32_t> next(units);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t r0 = t * kRowTile, r1 = std::min(rows, r0 + kRowTile);
        int32_t* off = offsets.data() + t * (units + 1);
        for (int64_t e = r0 * k; e < r1 * k; ++e) ++off[S[I[e]] + 1];
        for (int64_t u = 0; u < units; ++u) off[u + 1] += off[u];
        std::copy(off, off + units, next.begin());
        for (int64_t r = r0; r < r1; ++r) {
          for (int64_t j = 0; j < k; ++j) {
            const int64_t e = r0 * k + next[S[I[r * k + j]]]++;
            entry_row[e] = E ? E[r] : r;
            entry_value[e] = V[r * k + j];
          }
        }
      }
    });
    at::parallel_for(0, blocks, one_thread ? blocks : 1, [&](int64_t begin, int64_t end) {
      // Threads own column blocks. With more than one, each sums its block in a compact buffer of its own and
      // copies it out at the end: two threads updating the two halves of the same rows of the result run 2x
      // slower than one (the prefetchers pull the neighbour's lines; measured at 500 inputs), even with no line
      // shared. A unit's first product is written, later ones added: nothing is zero-filled beforehand.
      // One thread writes its products straight into the result, unless the result holds a gradient to add to.
      const bool direct = one_thread && !accumulate;
      std::vector<scalar_t> buffer(direct ? 0 : units * std::min(kColumnBlock, in));
      std::vector<uint8_t> touched(units);
      std::vector<double> mean(centred ? std::min(kColumnBlock, in) : 0);
      std::vector<scalar_t> tile_sum(mean.size());
      for (int64_t b = begin; b < end; ++b) {
        const int64_t c0 = b * kColumnBlock, n = std::min(kColumnBlock, in - c0);
        scalar_t* base = direct ? O + c0 : buffer.data();
        const int64_t ld = direct ? in : n;
        std::fill(touched.begin(), touched.end(), uint8_t(0));
        std::fill(mean.begin(), mean.end(), 0.0);
        for (int64_t t = 0; t < tiles; ++t) {
          const int32_t* off = offsets.data() + t * (units + 1);
          if (centred) {  // a tile's sums in the input's own type (full-width SIMD), then into double
            std::fill(tile_sum.begin(), tile_sum.end(), scalar_t(0));
            for (int64_t r = t * kRowTile; r < std::min(rows, (t + 1) * kRowTile); ++r) {
              const scalar_t* __restrict__ xr = X + (E ? E[r] : r) * in + c0;
              scalar_t* __restrict__ ts = tile_sum.data();
              for (int64_t c = 0; c < n; ++c) ts[c] += xr[c];
            }
            for (int64_t c = 0; c < n; ++c) mean[c] += double(tile_sum[c]);
          }
          const int64_t* rows_of = entry_row.data() + t * kRowTile * k;
          const scalar_t* vals = entry_value.data() + t * kRowTile * k;
          for (int64_t u = 0; u < units; ++u) {
            int64_t e = off[u];
            const int64_t e1 = off[u + 1];
            if (e == e1) continue;
            scalar_t* __restrict__ o = base + u * ld;
            if (!touched[u]) {
              const scalar_t v = vals[e];
              const scalar_t* __restrict__ xr = X + rows_of[e] * in + c0;
              for (int64_t c = 0; c < n; ++c) o[c] = v * xr[c];
              touched[u] = 1;
              ++e;
            }
            for (; e + 2 <= e1; e += 2) {
              const scalar_t v0 = vals[e], v1 = vals[e + 1];
              const scalar_t* __restrict__ x0 = X + rows_of[e] * in + c0;
              const scalar_t* __restrict__ x1 = X + rows_of[e + 1] * in + c0;
              for (int64_t c = 0; c < n; ++c) o[c] += v0 * x0[c] + v1 * x1[c];
            }
            if (e < e1) {
              const scalar_t v = vals[e];
              const scalar_t* __restrict__ xr = X + rows_of[e] * in + c0;
              for (int64_t c = 0; c < n; ++c) o[c] += v * xr[c];
            }
          }
        }
        if (centred) {
          std::vector<scalar_t> m(n);
          for (int64_t c = 0; c < n; ++c) m[c] = scalar_t(mean[c] / double(rows));
          for (int64_t u = 0; u < units; ++u) {
            scalar_t* dst = O + u * in + c0;
            const scalar_t* src = base + u * ld;
            const scalar_t a = coef[u];
            if (accumulate) {
              if (!touched[u]) for (int64_t c = 0; c < n; ++c) dst[c] += a * m[c];
              else for (int64_t c = 0; c < n; ++c) dst[c] += src[c] + a * m[c];
            } else if (!touched[u]) {
              for (int64_t c = 0; c < n; ++c) dst[c] = a * m[c];
            } else {
              for (int64_t c = 0; c < n; ++c) dst[c] = src[c] + a * m[c];
            }
          }
          continue;
        }
        for (int64_t u = 0; u < units; ++u) {
          scalar_t* dst = O + u * in + c0;
          if (!touched[u]) std::fill(dst, dst + n, scalar_t(0));
          else if (!direct) std::copy(base + u * n, base + (u + 1) * n, dst);
        }
      }
    });
  });
  return out;
}

// meProp's backward through time of one LSTM layer, top-k per example: the whole time loop in one call.
// gates (T, B, 4h): activated i, f, g, o; cells (T+1, B, h) with cells[0] = 0; d_out (T, B, h); w_hh (4h, h);
// batch_sizes (T): rows alive at each step (sorted longest first). Keeps k entries of each row's dL/dz_t (k per
// gate with per_gate) and sends dL/dh_{t-1} = W_hh^T (kept dz) back. Returns the sum of dL/dz over the real
// tokens (the dense bias gradient: dL/dz itself is never stored), and the kept (indices, values), one row per
// real token in time-major order.
std::vector<at::Tensor> lstm_topk_bptt(const at::Tensor& gates, const at::Tensor& cells, const at::Tensor& d_out,
                                       const at::Tensor& w_hh, const at::Tensor& batch_sizes, int64_t k,
                                       bool per_gate, bool keep_dz) {
  const auto A = gates.contiguous(), C = cells.contiguous(), D = d_out.contiguous(), W = w_hh.contiguous();
  const auto bs = batch_sizes.contiguous();
  TORCH_CHECK(bs.scalar_type() == at::kLong && !A.is_cuda(), "CPU tensors and int64 batch sizes only");
  const int64_t steps = A.size(0), batch = A.size(1), width = A.size(2), hidden = width / 4;
  const int64_t kept = per_gate ? 4 * k : k;
  const int64_t* sizes = bs.data_ptr<int64_t>();
  std::vector<int64_t> first_token(steps + 1, 0);
  for (int64_t t = 0; t < steps; ++t) first_token[t + 1] = first_token[t] + sizes[t];
  // Each sequence sums its own dL/dz over time (one thread owns a row within a step), and the rows are summed
  // in order at the end: the same bias gradient whatever the number of threads.
  auto dz_sums = at::zeros({batch, width}, A.options());
  auto indices = at::empty({first_token[steps], kept}, A.options().dtype(at::kLong));
  auto values = at::empty({first_token[steps], kept}, A.options());
  // every real token's whole dL/dz (tokens, 4h), for a dense dL/dx; empty unless asked for
  auto dz_tokens = at::empty({keep_dz ? first_token[steps] : 0, width}, A.options());
  auto dh = at::zeros({batch, hidden}, A.options());
  auto dc = at::zeros({batch, hidden}, A.options());
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "lstm_topk_bptt", [&] {
    const scalar_t* a = A.data_ptr<scalar_t>();
    const scalar_t* c = C.data_ptr<scalar_t>();
    const scalar_t* d = D.data_ptr<scalar_t>();
    const scalar_t* w = W.data_ptr<scalar_t>();
    scalar_t* dz_sum_base = dz_sums.data_ptr<scalar_t>();
    int64_t* out_i = indices.data_ptr<int64_t>();
    scalar_t* out_v = values.data_ptr<scalar_t>();
    scalar_t* DH = dh.data_ptr<scalar_t>();
    scalar_t* DC = dc.data_ptr<scalar_t>();
    scalar_t* dz_keep = keep_dz ? dz_tokens.data_ptr<scalar_t>() : nullptr;
    for (int64_t t = steps - 1; t >= 0; --t) {
      // rows are independent within a step; a few rows per task keeps small batches on one thread
      at::parallel_for(0, sizes[t], 4, [&](int64_t begin, int64_t end) {
        TopkScratch<scalar_t> scratch;
        std::vector<scalar_t> dz_row(width);
        scalar_t* dz = dz_row.data();
        for (int64_t r = begin; r < end; ++r) {
          const scalar_t* ar = a + (t * batch + r) * width;
          const scalar_t* cr = c + ((t + 1) * batch + r) * hidden;
          const scalar_t* cp = c + (t * batch + r) * hidden;
          const scalar_t* dr = d + (t * batch + r) * hidden;
          scalar_t* dz_sum = dz_sum_base + r * width;
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
          for (int64_t u = 0; u < width; ++u) dz_sum[u] += dz[u];
          const int64_t token = first_token[t] + r;
          if (dz_keep != nullptr) std::copy(dz, dz + width, dz_keep + token * width);
          int64_t* ri = out_i + token * kept;
          scalar_t* rv = out_v + token * kept;
          if (per_gate) {
            for (int64_t gate = 0; gate < 4; ++gate) {
              top_magnitudes(dz + gate * hidden, hidden, k, ri + gate * k, scratch);
              for (int64_t j = 0; j < k; ++j) ri[gate * k + j] += gate * hidden;
            }
          } else {
            top_magnitudes(dz, width, k, ri, scratch);
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
  return {dz_sums.sum(0), indices, values, dz_tokens};
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

// The units that occur in indices (any shape, values in 0..width), ascending, and each unit's row among them
// (-1 for a unit that does not occur): one pass and a bitmap, where unique() sorts.
std::vector<at::Tensor> kept_units(const at::Tensor& indices, int64_t width) {
  TORCH_CHECK(indices.scalar_type() == at::kLong && !indices.is_cuda(), "int64 CPU indices only");
  const auto idx = indices.contiguous();
  const int64_t* I = idx.data_ptr<int64_t>();
  std::vector<uint8_t> seen(width, 0);
  for (int64_t e = 0; e < idx.numel(); ++e) {
    TORCH_CHECK(I[e] >= 0 && I[e] < width, "kept index out of range");
    seen[I[e]] = 1;
  }
  const int64_t count = std::count(seen.begin(), seen.end(), uint8_t(1));
  auto units = at::empty({count}, idx.options());
  auto slot = at::empty({width}, idx.options());
  int64_t* U = units.data_ptr<int64_t>();
  int64_t* S = slot.data_ptr<int64_t>();
  for (int64_t u = 0, row = 0; u < width; ++u) {
    S[u] = seen[u] ? row : -1;
    if (seen[u]) U[row++] = u;
  }
  return {units, slot};
}

// The gradient of an embedding lookup: row i of grad (N, D) summed into row ids[i] of a (rows, D) table.
// PyTorch's embedding backward sorts the ids first (29 ms for the parser's 480,000 lookups); here each thread
// sums a fixed slice of the lookups into a table of its own, and the tables are added in slice order (the same
// result for the same number of threads). The ids are those the forward lookup has already checked.
at::Tensor lookup_grad(const at::Tensor& ids, const at::Tensor& grad, int64_t rows) {
  TORCH_CHECK(ids.dim() == 1 && grad.dim() == 2 && ids.size(0) == grad.size(0), "ids (N) and grad (N, D)");
  TORCH_CHECK(ids.scalar_type() == at::kLong && !grad.is_cuda(), "int64 ids and CPU tensors only");
  const auto id = ids.contiguous();
  const auto g = grad.contiguous();
  const int64_t n = g.size(0), dim = g.size(1);
  const int64_t slices = small_work(n * dim) ? 1 : std::max<int64_t>(1, at::get_num_threads());
  auto partial = at::zeros({slices, rows, dim}, g.options());
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "lookup_grad", [&] {
    const int64_t* I = id.data_ptr<int64_t>();
    const scalar_t* G = g.data_ptr<scalar_t>();
    scalar_t* P = partial.data_ptr<scalar_t>();
    at::parallel_for(0, slices, 1, [&](int64_t begin, int64_t end) {
      for (int64_t slice = begin; slice < end; ++slice) {
        scalar_t* table = P + slice * rows * dim;
        for (int64_t i = slice * n / slices; i < (slice + 1) * n / slices; ++i) {
          scalar_t* __restrict__ dst = table + I[i] * dim;
          const scalar_t* __restrict__ src = G + i * dim;
          for (int64_t c = 0; c < dim; ++c) dst[c] += src[c];
        }
      }
    });
  });
  return slices == 1 ? partial[0] : partial.sum(0);
}

// Sets flush-to-zero and denormals-are-zero (torch.set_flush_denormal) on every thread of ATen's pool: the flag is
// per thread, and the pool's threads keep the one they started with. Returns false where the CPU has no such mode.
bool set_flush_denormal_all_threads(bool enabled) {
  if (!at::globalContext().setFlushDenormal(enabled)) return false;
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) { at::globalContext().setFlushDenormal(enabled); });
  return true;
}

// Which hand-written vector paths this build took (-march=native decides at build time): benchmarks record it,
// since the same code is up to 3x apart in its top-k between an AVX-512 and an AVX2 CPU.
std::string vector_paths() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__)
  return "avx2";
#else
  return "portable";
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("kept_units", &kept_units, "the units that occur in kept indices, and their rows");
  m.def("lookup_grad", &lookup_grad, "gradient of an embedding lookup");
  m.def("unified_backward", &unified_backward, "unified top-k backward of a linear layer");
  m.def("lstm_topk_bptt", &lstm_topk_bptt, "meProp LSTM backward through time, top-k per example");
  m.def("keep_rows", &keep_rows, "top-k of each row, its unbiased sample, and the column sums, in one pass");
  m.def("sample_rows", &sample_rows, "unbiased k-entry sample of each row, given its top-k");
  m.def("kept_times_weight", &kept_times_weight, "dL/dx from k kept entries per row");
  m.def("kept_t_times_input", &kept_t_times_input, "dL/dW from k kept entries per row");
  m.def("vector_paths", &vector_paths, "avx512, avx2 or portable: the vector paths this build uses");
  m.def("set_flush_denormal_all_threads", &set_flush_denormal_all_threads, "torch.set_flush_denormal on every thread");
}
