// Compiled CPU kernels for `hopkur.EdgeCoupling(method="native")` (see hopkur/_native/).
//
// For an undirected edge list and an interaction phi'_e(s) = a_e + b_e h(s), with
// h = 0 (linear), relu, tanh or the logistic sigmoid, over a batch of states
// X of shape (B, N, D):
//
//   drive      F_i  = sum_{j ~ i} w_ij x_j,             w_ij = a_e + b_e h(x_i . x_j)
//   tangent    dF_i = sum_{j ~ i} w_ij dx_j + dw_ij x_j,
//              dw_ij = da_e + db_e h(s) + b_e h'(s) (dx_i . x_j + x_i . dx_j)
//   cotangent  xbar_i = sum_{j ~ i} w_ij c_j + b_e h'(s) (c_i . x_j + c_j . x_i) x_j,
//              abar_e = sum_batch (c_i . x_j + c_j . x_i),  bbar_e = sum_batch h(s) (...)
//
// (c the output cotangent; the per-edge sums are taken per group of consecutive
// samples, `groups` of them.) Each node's sum runs over its own neighbour list
// (compressed rows: built once per graph by the caller and passed in, or, when it has
// none, built here from the edge list by a counting sort), so nothing is scattered;
// the batch is the vectorised dimension: states are repacked into tiles of one cache
// line of samples, X[tile][node][d][lane], and every loop over lanes is a
// fixed-length loop the compiler turns into SIMD code. Work is shared among XLA's
// intra-op threads.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using Edges = ffi::Buffer<ffi::S32, 2>;    // (E, 2) node pairs
using Starts = ffi::Buffer<ffi::S32, 1>;   // (N + 1,) row offsets, or (0,)
using Entries = ffi::Buffer<ffi::S32, 2>;  // (3, 2E) neighbour, edge, owner, or (3, 0)

namespace {

enum Mode : int32_t { kLinear = 0, kRelu = 1, kTanh = 2, kSigmoid = 3 };

// SIMD vectors (GCC/Clang vector extensions) of the widest registers the compiler
// targets: 64 bytes with AVX-512, else 32 (AVX, or pairs of SSE registers).
#ifndef HOPKUR_VECTOR_BYTES
#if defined(__AVX512F__)
#define HOPKUR_VECTOR_BYTES 64
#else
#define HOPKUR_VECTOR_BYTES 32
#endif
#endif
template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(HOPKUR_VECTOR_BYTES)));
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(HOPKUR_VECTOR_BYTES)));
};

// h(s) and h'(s) for each mode, on a vector of lanes
template <int M, typename T>
struct Fn;
template <typename T>
struct Fn<kLinear, T> {
  using V = typename Simd<T>::V;
  static inline void eval(V, V& h, V& dh) { h = V{}; dh = V{}; }
};
template <typename T>
struct Fn<kRelu, T> {
  using V = typename Simd<T>::V;
  static inline void eval(V s, V& h, V& dh) {
    const V zero = V{}, one = zero + T(1);
    auto positive = s > zero;
    h = positive ? s : zero;
    dh = positive ? one : zero;
  }
};
template <typename T>
struct Fn<kTanh, T> {
  using V = typename Simd<T>::V;
  static inline void eval(V s, V& h, V& dh) {
    for (int l = 0; l < int(sizeof(V) / sizeof(T)); ++l) h[l] = std::tanh(s[l]);
    dh = T(1) - h * h;
  }
};
template <typename T>
struct Fn<kSigmoid, T> {
  using V = typename Simd<T>::V;
  static inline void eval(V s, V& h, V& dh) {
    for (int l = 0; l < int(sizeof(V) / sizeof(T)); ++l)
      h[l] = T(1) / (T(1) + std::exp(-s[l]));
    dh = h * (T(1) - h);
  }
};

// ------------------------------------------------------------------- work sharing

// Runs fn(0..n-1) on the calling thread and XLA's intra-op pool. Tasks claim items
// from a counter; the caller works too and returns once every item is done, so a task
// that starts late finds nothing left and never touches `fn`.
template <typename F>
void ParallelFor(ffi::ThreadPool& pool, int64_t n, const F& fn) {
  int64_t helpers = std::min<int64_t>(pool.num_threads(), n) - 1;
  if (helpers <= 0) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  struct State {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
  };
  auto state = std::make_shared<State>();
  const F* f = &fn;
  auto work = [state, n, f]() {
    for (int64_t i; (i = state->next.fetch_add(1)) < n;) {
      (*f)(i);
      state->done.fetch_add(1);
    }
  };
  for (int64_t h = 0; h < helpers; ++h) {
    auto task = work;
    pool.Schedule(std::move(task));
  }
  work();
  while (state->done.load() < n) std::this_thread::yield();
}

// ---------------------------------------------------------------------- the graph

struct Graph {
  int64_t n = 0, e = 0;
  const int32_t* start = nullptr;  // (n + 1,) offsets into `nbr`/`edge`/`owner`
  const int32_t* nbr = nullptr;    // (2e,) the neighbour of each entry
  const int32_t* edge = nullptr;   // (2e,) the undirected edge of each entry
  const int32_t* owner = nullptr;  // (2e,) 1 for the entry of each edge's first endpoint
  std::vector<int32_t> storage;    // the arrays, when built here
};

std::string OutsideError(int64_t k, int64_t i, int64_t j, int64_t n) {
  return "hopkur: EdgeCoupling edge " + std::to_string(k) + " = (" + std::to_string(i) +
         ", " + std::to_string(j) + ") names a node outside [0, " + std::to_string(n) +
         ")";
}

// Compressed rows of an undirected edge list: every edge (i, j) appears in the rows of
// both i and j. Returns an error message for out-of-range nodes. (Used when the
// caller has no table: a coupling built inside a transformation.)
std::string BuildGraph(const int32_t* edges, int64_t e, int64_t n, Graph& g) {
  g.n = n;
  g.e = e;
  g.storage.assign(n + 1 + 6 * e, 0);
  int32_t* start = g.storage.data();
  int32_t* nbr = start + n + 1;
  int32_t* edge = nbr + 2 * e;
  int32_t* owner = edge + 2 * e;
  for (int64_t k = 0; k < e; ++k) {
    int32_t i = edges[2 * k], j = edges[2 * k + 1];
    if (i < 0 || i >= n || j < 0 || j >= n) return OutsideError(k, i, j, n);
    ++start[i + 1];
    ++start[j + 1];
  }
  for (int64_t i = 0; i < n; ++i) start[i + 1] += start[i];
  std::vector<int32_t> fill(start, start + n);
  for (int64_t k = 0; k < e; ++k) {
    int32_t i = edges[2 * k], j = edges[2 * k + 1];
    nbr[fill[i]] = j;
    owner[fill[i]] = 1;
    edge[fill[i]++] = static_cast<int32_t>(k);
    nbr[fill[j]] = i;
    owner[fill[j]] = 0;
    edge[fill[j]++] = static_cast<int32_t>(k);
  }
  g.start = start;
  g.nbr = nbr;
  g.edge = edge;
  g.owner = owner;
  return "";
}

// The graph from the caller's compressed rows (start (n + 1,), entries (3, 2e):
// neighbour, edge, first-endpoint flag; built once per graph in Python), or from the
// edge list when none are given (empty `start`). A table is checked (O(n + e), no
// allocation) so that a bad one is an error, never a read out of bounds.
std::string GetGraph(const Edges& edges, const Starts& start, const Entries& entries,
                     int64_t n, Graph& g) {
  const int64_t e = edges.dimensions()[0];
  const int32_t* pairs = edges.typed_data();
  if (start.element_count() == 0) return BuildGraph(pairs, e, n, g);
  auto dims = entries.dimensions();
  if (int64_t(start.element_count()) != n + 1 || dims[0] != 3 || dims[1] != 2 * e)
    return "hopkur: the graph's table does not match the states (" +
           std::to_string(start.element_count()) + " offsets for " + std::to_string(n) +
           " nodes)";
  const int32_t* s = start.typed_data();
  const int32_t* t = entries.typed_data();
  if (s[0] != 0 || s[n] != 2 * e) {
    // some edge names a node outside [0, n): find it for the message
    for (int64_t k = 0; k < e; ++k) {
      int32_t i = pairs[2 * k], j = pairs[2 * k + 1];
      if (i < 0 || i >= n || j < 0 || j >= n) return OutsideError(k, i, j, n);
    }
    return "hopkur: the graph's table is inconsistent with its edges";
  }
  for (int64_t i = 0; i < n; ++i)
    if (s[i + 1] < s[i]) return "hopkur: the graph's table is not sorted";
  for (int64_t k = 0; k < 2 * e; ++k)
    if (t[k] < 0 || t[k] >= n || t[2 * e + k] < 0 || t[2 * e + k] >= e) {
      int64_t q = t[2 * e + k] >= 0 && t[2 * e + k] < e ? t[2 * e + k] : 0;
      return OutsideError(q, pairs[2 * q], pairs[2 * q + 1], n);
    }
  g.n = n;
  g.e = e;
  g.start = s;
  g.nbr = t;
  g.edge = t + 2 * e;
  g.owner = t + 4 * e;
  return "";
}

// ------------------------------------------------------------------ batch tiles

// Samples in tiles of L lanes, one SIMD vector (16 float32 or 8 float64 lanes with
// AVX-512: 11 % less CPU time than 8 / 4 lanes for the research-size field, measured
// single-threaded; 8 / 4 otherwise), the last tile padded with zeros. Tiled layout: [tile][node][d][vector], vectors of
// lanes. The per-edge sums of the cotangent are taken per group of `per_group`
// consecutive samples.
template <typename T>
struct Tiles {
  using V = typename Simd<T>::V;
  static constexpr int W = sizeof(V) / sizeof(T);  // lanes per vector
  // One vector per tile: a node's neighbours' rows (D vectors each) then stay in the
  // L1 cache for the band-like small-world graphs (measured at N = 896, D = 5, k =
  // 150: 13.8 ms against 16.3 ms with two vectors, single-threaded, batch 100).
  static constexpr int NV = 1;                     // vectors per tile
  static constexpr int L = W * NV;
  int64_t batch, n, d, groups, per_group, tiles;

  Tiles(int64_t batch, int64_t n, int64_t d, int64_t groups)
      : batch(batch), n(n), d(d), groups(groups), per_group(batch / groups) {
    tiles = (batch + L - 1) / L;
  }
  int64_t size() const { return tiles * n * d * NV; }  // in vectors
  // the sample in lane l of tile t, or -1 (padding)
  int64_t sample(int64_t t, int l) const {
    int64_t b = t * L + l;
    return b < batch ? b : -1;
  }
  // the group of every lane of tile t if they share one, else -1
  int64_t tile_group(int64_t t) const {
    int64_t first = (t * L) / per_group;
    int64_t last = (std::min(batch, (t + 1) * L) - 1) / per_group;
    return first == last ? first : -1;
  }
  // (B, N, D) -> tiles, tile t
  // (lane-inner loops: every write is sequential, each lane's sample read in order)
  void pack(const T* x, V* xt, int64_t t) const {
    T* out = reinterpret_cast<T*>(xt + t * n * d * NV);
    const T* in[L];
    int lanes = 0;
    for (int l = 0; l < L; ++l)
      if (sample(t, l) >= 0) in[lanes++] = x + sample(t, l) * n * d;
    for (int64_t k = 0; k < n * d; ++k) {
      T* o = out + k * L;
      for (int l = 0; l < lanes; ++l) o[l] = in[l][k];
      for (int l = lanes; l < L; ++l) o[l] = T(0);
    }
  }
  // tiles -> (B, N, D), tile t
  void unpack(const V* xt, T* x, int64_t t) const {
    const T* in = reinterpret_cast<const T*>(xt + t * n * d * NV);
    T* out[L];
    int lanes = 0;
    for (int l = 0; l < L; ++l)
      if (sample(t, l) >= 0) out[lanes++] = x + sample(t, l) * n * d;
    for (int64_t k = 0; k < n * d; ++k) {
      const T* i = in + k * L;
      for (int l = 0; l < lanes; ++l) out[l][k] = i[l];
    }
  }
};

template <typename T>
inline T Sum(typename Simd<T>::V v) {
  T s = T(0);
  for (int l = 0; l < int(sizeof(v) / sizeof(T)); ++l) s += v[l];
  return s;
}

constexpr int64_t kRows = 64;  // nodes per work item

// ----------------------------------------------------------------------- kernels
//
// DC: the dimension D when known at compile time (0: at run time, `tl.d`).

template <int M, int DC, typename T>
void DriveRows(const Tiles<T>& tl, const Graph& g, const T* a, const T* b,
               const typename Simd<T>::V* xt, typename Simd<T>::V* ft, int64_t t,
               int64_t r0, int64_t r1) {
  using V = typename Simd<T>::V;
  constexpr int NV = Tiles<T>::NV;
  const int64_t d = DC > 0 ? DC : tl.d, row = d * NV;
  const V* xtile = xt + t * tl.n * row;
  std::vector<V> heap(DC > 0 ? 0 : row);
  V fixed[DC > 0 ? DC * NV : 1];
  V* acc = DC > 0 ? fixed : heap.data();
  for (int64_t i = r0; i < r1; ++i) {
    const V* xi = xtile + i * row;
    for (int64_t q = 0; q < row; ++q) acc[q] = V{};
    for (int32_t k = g.start[i]; k < g.start[i + 1]; ++k) {
      const V* xj = xtile + int64_t(g.nbr[k]) * row;
      const T ae = a[g.edge[k]], be = b[g.edge[k]];
      V s[NV] = {}, w[NV];
      if constexpr (M != kLinear)  // the linear interaction needs no overlaps
        for (int64_t c = 0; c < d; ++c)
          for (int v = 0; v < NV; ++v) s[v] += xi[c * NV + v] * xj[c * NV + v];
      for (int v = 0; v < NV; ++v) {
        V h, dh;
        Fn<M, T>::eval(s[v], h, dh);
        w[v] = ae + be * h;
      }
      for (int64_t c = 0; c < d; ++c)
        for (int v = 0; v < NV; ++v) acc[c * NV + v] += w[v] * xj[c * NV + v];
    }
    std::copy(acc, acc + row, ft + (t * tl.n + i) * row);
  }
}

template <int M, int DC, typename T>
void TangentRows(const Tiles<T>& tl, const Graph& g, const T* a, const T* b,
                 const T* da, const T* db, const typename Simd<T>::V* xt,
                 const typename Simd<T>::V* dxt, typename Simd<T>::V* ft, int64_t t,
                 int64_t r0, int64_t r1) {
  using V = typename Simd<T>::V;
  constexpr int NV = Tiles<T>::NV;
  const int64_t d = DC > 0 ? DC : tl.d, row = d * NV;
  const V* xtile = xt + t * tl.n * row;
  const V* dxtile = dxt + t * tl.n * row;
  std::vector<V> heap(DC > 0 ? 0 : row);
  V fixed[DC > 0 ? DC * NV : 1];
  V* acc = DC > 0 ? fixed : heap.data();
  for (int64_t i = r0; i < r1; ++i) {
    const V* xi = xtile + i * row;
    const V* dxi = dxtile + i * row;
    for (int64_t q = 0; q < row; ++q) acc[q] = V{};
    for (int32_t k = g.start[i]; k < g.start[i + 1]; ++k) {
      const int64_t j = g.nbr[k], e = g.edge[k];
      const V* xj = xtile + j * row;
      const V* dxj = dxtile + j * row;
      const T ae = a[e], be = b[e], dae = da[e], dbe = db[e];
      V s[NV] = {}, ds[NV] = {}, w[NV], dw[NV];
      if constexpr (M != kLinear)
        for (int64_t c = 0; c < d; ++c)
          for (int v = 0; v < NV; ++v) {
            s[v] += xi[c * NV + v] * xj[c * NV + v];
            ds[v] += dxi[c * NV + v] * xj[c * NV + v] + xi[c * NV + v] * dxj[c * NV + v];
          }
      for (int v = 0; v < NV; ++v) {
        V h, dh;
        Fn<M, T>::eval(s[v], h, dh);
        w[v] = ae + be * h;
        dw[v] = dae + dbe * h + be * dh * ds[v];
      }
      for (int64_t c = 0; c < d; ++c)
        for (int v = 0; v < NV; ++v)
          acc[c * NV + v] += w[v] * dxj[c * NV + v] + dw[v] * xj[c * NV + v];
    }
    std::copy(acc, acc + row, ft + (t * tl.n + i) * row);
  }
}

// All tiles for the rows [r0, r1). The parameters' cotangents (groups x E, zeroed
// beforehand unless each group is one sample) of an edge are added at the entry of
// its first endpoint (which sees both c_i . x_j and c_j . x_i), so each is written by
// one call alone.
template <int M, int DC, typename T>
void CotangentRows(const Tiles<T>& tl, const Graph& g, const T* a, const T* b,
                   const typename Simd<T>::V* xt, const typename Simd<T>::V* ct,
                   typename Simd<T>::V* xbt, T* oa, T* ob, bool params, int64_t r0,
                   int64_t r1) {
  using V = typename Simd<T>::V;
  constexpr int NV = Tiles<T>::NV, W = Tiles<T>::W;
  const int64_t d = DC > 0 ? DC : tl.d, row = d * NV;
  std::vector<V> heap(DC > 0 ? 0 : row);
  V fixed[DC > 0 ? DC * NV : 1];
  V* acc = DC > 0 ? fixed : heap.data();
  for (int64_t t = 0; t < tl.tiles; ++t) {
    const int64_t group = tl.tile_group(t);
    int64_t lane_group[Tiles<T>::L];
    for (int l = 0; l < Tiles<T>::L; ++l) {
      int64_t sample = tl.sample(t, l);
      lane_group[l] = sample < 0 ? -1 : sample / tl.per_group;
    }
    const V* xtile = xt + t * tl.n * row;
    const V* ctile = ct + t * tl.n * row;
    for (int64_t i = r0; i < r1; ++i) {
      const V* xi = xtile + i * row;
      const V* ci = ctile + i * row;
      for (int64_t q = 0; q < row; ++q) acc[q] = V{};
      for (int32_t k = g.start[i]; k < g.start[i + 1]; ++k) {
        const int64_t j = g.nbr[k], e = g.edge[k];
        const V* xj = xtile + j * row;
        const V* cj = ctile + j * row;
        const T ae = a[e], be = b[e];
        V s[NV] = {}, uv[NV] = {}, w[NV], r[NV], h[NV];
        if constexpr (M != kLinear)
          for (int64_t c = 0; c < d; ++c)
            for (int v = 0; v < NV; ++v) s[v] += xi[c * NV + v] * xj[c * NV + v];
        if (M != kLinear || params)
          for (int64_t c = 0; c < d; ++c)
            for (int v = 0; v < NV; ++v)
              uv[v] += ci[c * NV + v] * xj[c * NV + v] + cj[c * NV + v] * xi[c * NV + v];
        for (int v = 0; v < NV; ++v) {
          V dh;
          Fn<M, T>::eval(s[v], h[v], dh);
          w[v] = ae + be * h[v];
          r[v] = be * dh * uv[v];
        }
        for (int64_t c = 0; c < d; ++c)
          for (int v = 0; v < NV; ++v)
            acc[c * NV + v] += w[v] * cj[c * NV + v] + r[v] * xj[c * NV + v];
        if (params && g.owner[k]) {
          if (group >= 0) {
            V su = uv[0], shu = h[0] * uv[0];
            for (int v = 1; v < NV; ++v) {
              su += uv[v];
              shu += h[v] * uv[v];
            }
            if (tl.per_group == 1) {  // a tile holding one sample: written once
              oa[group * g.e + e] = Sum<T>(su);
              ob[group * g.e + e] = Sum<T>(shu);
            } else {
              oa[group * g.e + e] += Sum<T>(su);
              ob[group * g.e + e] += Sum<T>(shu);
            }
          } else {
            for (int v = 0; v < NV; ++v) {
              const V hu = h[v] * uv[v];
              for (int l = 0; l < W; ++l) {
                const int64_t q = lane_group[v * W + l];
                if (q < 0) continue;
                if (tl.per_group == 1) {  // written once: no sum
                  oa[q * g.e + e] = uv[v][l];
                  ob[q * g.e + e] = hu[l];
                } else {
                  oa[q * g.e + e] += uv[v][l];
                  ob[q * g.e + e] += hu[l];
                }
              }
            }
          }
        }
      }
      std::copy(acc, acc + row, xbt + (t * tl.n + i) * row);
    }
  }
}

// --------------------------------------------------------------------- handlers

ffi::Error Check(const ffi::AnyBuffer& x, std::initializer_list<const ffi::AnyBuffer*> same) {
  if (x.dimensions().size() != 3)
    return ffi::Error::InvalidArgument("hopkur: states must have shape (B, N, D)");
  for (const ffi::AnyBuffer* other : same)
    if (other->element_type() != x.element_type())
      return ffi::Error::InvalidArgument("hopkur: mismatched dtypes");
  return ffi::Error::Success();
}

// f(T{}) for the states' element type T (float32 or float64)
template <typename F>
ffi::Error ByDtype(const ffi::AnyBuffer& x, const F& f) {
  if (x.element_type() == ffi::F32) return f(float());
  if (x.element_type() == ffi::F64) return f(double());
  return ffi::Error::InvalidArgument("hopkur: states must be float32 or float64");
}

template <int M, typename F>
void DispatchDim(int64_t d, const F& f) {
  // Compile-time dimensions for the common small D (the loops over D unroll and the
  // accumulators stay in registers); any other D at run time.
  switch (d) {
    case 2: f(std::integral_constant<int, M>(), std::integral_constant<int, 2>()); break;
    case 3: f(std::integral_constant<int, M>(), std::integral_constant<int, 3>()); break;
    case 4: f(std::integral_constant<int, M>(), std::integral_constant<int, 4>()); break;
    case 5: f(std::integral_constant<int, M>(), std::integral_constant<int, 5>()); break;
    default: f(std::integral_constant<int, M>(), std::integral_constant<int, 0>());
  }
}

template <typename F>
ffi::Error Dispatch(int32_t mode, int64_t d, const F& f) {
  switch (mode) {
    case kLinear: DispatchDim<kLinear>(d, f); break;
    case kRelu: DispatchDim<kRelu>(d, f); break;
    case kTanh: DispatchDim<kTanh>(d, f); break;
    case kSigmoid: DispatchDim<kSigmoid>(d, f); break;
    default: return ffi::Error::InvalidArgument("hopkur: unknown interaction mode");
  }
  return ffi::Error::Success();
}

template <typename T>
ffi::Error DriveT(ffi::ThreadPool& pool, const ffi::AnyBuffer& x, const ffi::AnyBuffer& a,
                  const ffi::AnyBuffer& b, const Edges& edges, const Starts& start,
                  const Entries& entries,
                  ffi::Result<ffi::AnyBuffer> out, int32_t mode) {
  auto dims = x.dimensions();
  Tiles<T> tl(dims[0], dims[1], dims[2], 1);
  Graph g;
  std::string err = GetGraph(edges, start, entries, tl.n, g);
  if (!err.empty()) return ffi::Error::InvalidArgument(err);
  std::vector<typename Simd<T>::V> xt(tl.size()), ft(tl.size());
  ParallelFor(pool, tl.tiles, [&](int64_t t) { tl.pack(x.typed_data<T>(), xt.data(), t); });
  const int64_t blocks = (tl.n + kRows - 1) / kRows;
  ffi::Error status = Dispatch(mode, tl.d, [&](auto m, auto dc) {
    ParallelFor(pool, tl.tiles * blocks, [&](int64_t item) {
      int64_t t = item / blocks, r0 = (item % blocks) * kRows;
      DriveRows<decltype(m)::value, decltype(dc)::value, T>(tl, g, a.typed_data<T>(), b.typed_data<T>(),
                                       xt.data(), ft.data(), t, r0,
                                       std::min(r0 + kRows, tl.n));
    });
  });
  if (status.failure()) return status;
  ParallelFor(pool, tl.tiles, [&](int64_t t) { tl.unpack(ft.data(), out->typed_data<T>(), t); });
  return ffi::Error::Success();
}

ffi::Error Drive(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer a, ffi::AnyBuffer b,
                 Edges edges, Starts start, Entries entries, ffi::Result<ffi::AnyBuffer> out,
                 int32_t mode) {
  if (auto s = Check(x, {&a, &b}); s.failure()) return s;
  return ByDtype(x, [&](auto zero) {
    return DriveT<decltype(zero)>(pool, x, a, b, edges, start, entries, out, mode);
  });
}

template <typename T>
ffi::Error TangentT(ffi::ThreadPool& pool, const ffi::AnyBuffer& x, const ffi::AnyBuffer& a,
                    const ffi::AnyBuffer& b, const Edges& edges, const Starts& start,
                    const Entries& entries,
                    const ffi::AnyBuffer& dx, const ffi::AnyBuffer& da,
                    const ffi::AnyBuffer& db, ffi::Result<ffi::AnyBuffer> out,
                    int32_t mode) {
  auto dims = x.dimensions();
  Tiles<T> tl(dims[0], dims[1], dims[2], 1);
  Graph g;
  std::string err = GetGraph(edges, start, entries, tl.n, g);
  if (!err.empty()) return ffi::Error::InvalidArgument(err);
  std::vector<typename Simd<T>::V> xt(tl.size()), dxt(tl.size()), ft(tl.size());
  ParallelFor(pool, tl.tiles, [&](int64_t t) {
    tl.pack(x.typed_data<T>(), xt.data(), t);
    tl.pack(dx.typed_data<T>(), dxt.data(), t);
  });
  const int64_t blocks = (tl.n + kRows - 1) / kRows;
  ffi::Error status = Dispatch(mode, tl.d, [&](auto m, auto dc) {
    ParallelFor(pool, tl.tiles * blocks, [&](int64_t item) {
      int64_t t = item / blocks, r0 = (item % blocks) * kRows;
      TangentRows<decltype(m)::value, decltype(dc)::value, T>(
          tl, g, a.typed_data<T>(), b.typed_data<T>(), da.typed_data<T>(),
          db.typed_data<T>(), xt.data(), dxt.data(), ft.data(), t, r0,
          std::min(r0 + kRows, tl.n));
    });
  });
  if (status.failure()) return status;
  ParallelFor(pool, tl.tiles, [&](int64_t t) { tl.unpack(ft.data(), out->typed_data<T>(), t); });
  return ffi::Error::Success();
}

ffi::Error Tangent(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer a, ffi::AnyBuffer b,
                   Edges edges, Starts start, Entries entries, ffi::AnyBuffer dx, ffi::AnyBuffer da,
                   ffi::AnyBuffer db, ffi::Result<ffi::AnyBuffer> out, int32_t mode) {
  if (auto s = Check(x, {&a, &b, &dx, &da, &db}); s.failure()) return s;
  return ByDtype(x, [&](auto zero) {
    return TangentT<decltype(zero)>(pool, x, a, b, edges, start, entries, dx, da, db, out,
                                    mode);
  });
}

template <typename T>
ffi::Error CotangentT(ffi::ThreadPool& pool, const ffi::AnyBuffer& x,
                      const ffi::AnyBuffer& a, const ffi::AnyBuffer& b,
                      const Edges& edges, const Starts& start, const Entries& entries,
                      const ffi::AnyBuffer& ct,
                      ffi::Result<ffi::AnyBuffer> xbar, ffi::Result<ffi::AnyBuffer> abar,
                      ffi::Result<ffi::AnyBuffer> bbar, int32_t mode, int64_t groups,
                      bool params) {
  auto dims = x.dimensions();
  if (groups < 1 || dims[0] % groups != 0)
    return ffi::Error::InvalidArgument("hopkur: groups must divide the batch");
  Tiles<T> tl(dims[0], dims[1], dims[2], groups);
  Graph g;
  std::string err = GetGraph(edges, start, entries, tl.n, g);
  if (!err.empty()) return ffi::Error::InvalidArgument(err);
  std::vector<typename Simd<T>::V> xt(tl.size()), ctt(tl.size()), xbt(tl.size());
  T* oa = abar->typed_data<T>();
  T* ob = bbar->typed_data<T>();
  // (groups, E), or (groups, 0) when not wanted; with one sample per group every entry
  // is written once (by the edge's first endpoint), otherwise they are sums
  if (params && tl.per_group > 1) {
    std::fill(oa, oa + groups * g.e, T(0));
    std::fill(ob, ob + groups * g.e, T(0));
  }
  ParallelFor(pool, tl.tiles, [&](int64_t t) {
    tl.pack(x.typed_data<T>(), xt.data(), t);
    tl.pack(ct.typed_data<T>(), ctt.data(), t);
  });
  const int64_t blocks = (tl.n + kRows - 1) / kRows;
  ffi::Error status = Dispatch(mode, tl.d, [&](auto m, auto dc) {
    ParallelFor(pool, blocks, [&](int64_t block) {
      int64_t r0 = block * kRows;
      CotangentRows<decltype(m)::value, decltype(dc)::value, T>(tl, g, a.typed_data<T>(), b.typed_data<T>(),
                                           xt.data(), ctt.data(), xbt.data(), oa, ob,
                                           params, r0,
                                           std::min(r0 + kRows, tl.n));
    });
  });
  if (status.failure()) return status;
  ParallelFor(pool, tl.tiles, [&](int64_t t) { tl.unpack(xbt.data(), xbar->typed_data<T>(), t); });
  return ffi::Error::Success();
}

ffi::Error Cotangent(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer a,
                     ffi::AnyBuffer b, Edges edges, Starts start, Entries entries,
                     ffi::AnyBuffer ct,
                     ffi::Result<ffi::AnyBuffer> xbar, ffi::Result<ffi::AnyBuffer> abar,
                     ffi::Result<ffi::AnyBuffer> bbar, int32_t mode, int64_t groups,
                     bool params) {
  if (auto s = Check(x, {&a, &b, &ct}); s.failure()) return s;
  return ByDtype(x, [&](auto zero) {
    return CotangentT<decltype(zero)>(pool, x, a, b, edges, start, entries, ct, xbar, abar,
                                      bbar, mode,
                                      groups, params);
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(HopkurEdgeDrive, Drive,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<Edges>()
                                  .Arg<Starts>()
                                  .Arg<Entries>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("mode"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(HopkurEdgeTangent, Tangent,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<Edges>()
                                  .Arg<Starts>()
                                  .Arg<Entries>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("mode"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(HopkurEdgeCotangent, Cotangent,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<Edges>()
                                  .Arg<Starts>()
                                  .Arg<Entries>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("mode")
                                  .Attr<int64_t>("groups")
                                  .Attr<bool>("params"));
