// ggufscope-bench-step: how fast can a decode step stream its weights in
// three execution models, before any arithmetic? (issue 5; docs/PERFORMANCE.md,
// "Session 25 on the H200").
//
// It replays the weight traffic of one decode step of a model shape (default
// the Qwen2.5-7B Q4_K_M layout of bench_cuda.sh's q7-Q4_K_M file: per layer
// q/k/v, attention, attn_output, gate/up, down, then the output head) with
// copies only: every product's rows in 16-row tiles, each tile's columns in
// stages of 16 bulk copies (one piece of a row each, 144 bytes for Q4_K, 208
// for Q6_K's 210), completed on mbarriers into a ring of shared-memory slots
// per warp, each stage read once; attention is a launch with no weights.
// Every op reads its input vector after its dependency and writes its
// outputs, so the step has the real chain of dependencies.
//
//   launch:  one kernel per op, launched as a dependent launch (programmatic
//            stream serialization, as cuda_runtime's decode does), each block
//            one tile, its first stages requested before griddepcontrol.wait;
//            the step recorded in a CUDA graph and replayed.
//   persist: one kernel a step, one wave of blocks that walk every op's tiles
//            in turn, a global arrival counter per op as the dependency; each
//            warp keeps requesting the stages of its next tiles, of the next
//            ops too, while it waits for one (--no-ahead: only within an op).
//   warps:   one kernel a step, one wave of warps, each on its own with no
//            block barrier: op o's work units (16 rows x at most
//            --unit-stages stages, default 8) go to the warps in turn, so a
//            warp requests the stages of its next units, of the next ops
//            too, up to --depth ahead, and waits for the op before only
//            when it starts its first unit of an op (counters per block,
//            one atomic a block and op).
//
// Each reports the step's time, tokens/s and the share of the card's
// device-to-device copy bandwidth measured in the same run (the anchor).
// Results say what each design allows at most; they compute nothing.
//
//   ggufscope-bench-step [--mode launch|persist|warps|all] [--depth D] [--warps W]
//                        [--tiles 1|2] [--pieces 1|2] [--unit-stages N] [--steps N]
//                        [--shape 7b|1.5b] [--no-wait] [--empty] [--one-wave]
//                        [--wide-mask M] [--blocks-per-sm N] [--alu N] [--evict-first]
//                        [--tail-prefetch BYTES] [--json]
// --depth 0 (the default) runs each mode with 2 and with 4 stages a warp.
// --tiles 2: the launch mode's blocks take 32 rows, each stage 32 copies.
// --pieces 2: each row's copy a stage spans two super-blocks (288 bytes
// for Q4_K), half the stages: the two-super-block stages of session 24.
// --no-wait leaves out every dependency (the ops' waits): what the same
// copies stream with nothing to wait for, the structure's own bound.
// --empty takes every product's weights out (each tile a unit that reads
// one element of x and writes its rows): the chain of dependencies alone,
// what one hop costs in each mode.
// Launch mode only:
// --one-wave: each launch's grid at most the blocks resident at once (its
// own shared memory's count, capped by --blocks-per-sm), each block walking
// every grid-th row group with its ring of stages running across them.
// --wide-mask M: the ops that take --pieces and --one-wave, by class (1
// q/k/v, 2 attn_output, 4 gate/up, 8 Q4_K down, 16 Q6_K down, 32 head;
// default 63, all); the others keep one super-block a stage and their
// many-wave grid.
// --alu N: N FMAs (four independent chains) by each lane for each
// super-block it reads, after the copy (0..4096): a stand-in for the
// arithmetic a real stage issues, to find how much a structure tolerates.
// 128 puts the launch form with main's geometry at main's decode (H200,
// 2026-11-29: 501-502 against 500-503 tokens/s); the real stage is latency-
// rather than issue-bound, so the stand-in does not predict other forms.
// --evict-first: the weights' copies with an L2 evict-first policy.
// --tail-prefetch B: when a block has requested its last stage, it
// prefetches into L2 the first B bytes of each row of the next product's
// group that the same place in the next launch's first wave takes.
// Exit codes: 0 ran; 1 a CUDA error (printed); 2 bad arguments or no sm_90 GPU.
// Built by CMake (GGUFSCOPE_CUDA, GGUFSCOPE_BENCH), or by hand from the
// repository root: nvcc -I. -O2 -std=c++17 -arch=sm_90 -o sb bench/step_bound.cu
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "cuda_runtime/bulk_copy.cuh"

namespace {

using ggufscope::cuda::internal::BarExpect;
using ggufscope::cuda::internal::BarInit;
using ggufscope::cuda::internal::BarInitFence;
using ggufscope::cuda::internal::BarWait;
using ggufscope::cuda::internal::BulkCopy;
using ggufscope::cuda::internal::FenceProxyAsync;

#define CK(call)                                                                                     \
  do {                                                                                               \
    cudaError_t e_ = (call);                                                                         \
    if (e_ != cudaSuccess) {                                                                         \
      std::fprintf(stderr, "ggufscope-bench-step: %s: %s (%s:%d)\n", #call, cudaGetErrorString(e_), \
                   __FILE__, __LINE__);                                                              \
      std::exit(1);                                                                                  \
    }                                                                                                \
  } while (0)

constexpr int kTileRows = 16;
constexpr int kMaxPiece = 208;  // bytes of a row's super-block a stage copies (16-byte multiple; --pieces: times N)
constexpr int kMaxOps = 256;

struct Op {
  int64_t tiles;      // 16-row tiles (a latency op: blocks)
  int64_t row_bytes;  // 0: no weights (attention)
  int piece;          // bytes of a row per stage
  int x_len;          // floats of input read after the dependency
  int64_t w_off;      // bytes into the weight buffer
  int64_t x_off, y_off;  // floats into the activation buffer
  int y_per_tile;     // floats written per tile
  // The warps mode's work units (SetUnits): `parts` units of at most
  // --unit-stages stages a tile; a latency op's unit is a block's work.
  int n_stages, parts;
  unsigned units;
  int pieces;    // super-blocks of a row per stage (--pieces, for the classes in --wide-mask)
  int cls;       // its bit in --wide-mask: 1 q/k/v, 2 attn_output, 4 gate/up, 8 Q4_K down, 16 Q6_K down, 32 head
  bool emptied;  // --empty: a product with its weights taken out (reads one element of x, as a product does)
  uint64_t unit_base;  // units of the ops before (the warps mode's hand-out continues across ops)
};

struct Plan {
  Op ops[kMaxOps];
  int n_ops;
  int pieces;       // super-blocks of a row per stage (--pieces)
  int unit_stages;  // the warps mode's stages a unit at most (--unit-stages)
};
__constant__ Plan c_plan;  // the persistent kernel's (uniform indices: the constant cache broadcasts)

// The dependent-launch instructions are sm_90's; other targets compile them
// out, as bulk_copy.cuh does its own (main() refuses to run there).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define SM90(x)
#else
#define SM90(x) x
#endif

__device__ __forceinline__ void GridAllow() { SM90(asm volatile("griddepcontrol.launch_dependents;" ::: "memory")); }
__device__ __forceinline__ void GridWait() { SM90(asm volatile("griddepcontrol.wait;" ::: "memory")); }

// The launch mode's L2 options (--tail-prefetch, --evict-first): a bulk
// prefetch into L2 with no destination, and a bulk copy whose lines L2
// evicts first.
__device__ __forceinline__ void PrefetchL2(const void* p, uint32_t bytes) {
  SM90(asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory"));
}
__device__ __forceinline__ uint64_t EvictFirstPolicy() {
  uint64_t pol = 0;
  SM90(asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol)));
  return pol;
}
__device__ __forceinline__ void BulkCopyHint(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar,
                                             uint64_t pol) {
  SM90(asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;" ::"r"(
          dst),
      "l"(src), "r"(bytes), "r"(bar), "l"(pol)
      : "memory"));
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}

// A warp's ring of `depth` slots (16 rows x kMaxPiece bytes each) and its
// mbarriers; k counts the warp's stages since the kernel began, so slot k %
// depth completes phase (k / depth) & 1.
struct Ring {
  uint32_t slots, bars;
  int depth, rows;  // rows: a stage's rows (16 a tile; --tiles 2 in the launch mode: 32)
  int stride;       // a row's bytes in a slot: kMaxPiece x pieces
  __device__ uint32_t Slot(int64_t k) const { return slots + static_cast<uint32_t>(k % depth) * rows * stride; }
  __device__ uint32_t Bar(int64_t k) const { return bars + 8 * static_cast<uint32_t>(k % depth); }
  // Stage s of row group t (`rows` rows) of op o into the slot of k (lane r < rows copies row r).
  uint64_t policy;   // an L2 cache policy for the copies (--evict-first), 0: none
  __device__ void Issue(const Op& o, const uint8_t* w, int64_t t, int64_t s, int64_t k) const {
    const uint32_t bar = Bar(k);
    FenceProxyAsync();
    const int lane = threadIdx.x % 32;
    if (lane == 0) BarExpect(bar, rows * o.piece);
    __syncwarp();
    if (lane < rows) {
      const uint8_t* src = w + o.w_off + (t * rows + lane) * o.row_bytes + s * o.piece;
      if (policy != 0) {
        BulkCopyHint(Slot(k) + lane * stride, src, o.piece, bar, policy);
      } else {
        BulkCopy(Slot(k) + lane * stride, src, o.piece, bar);
      }
    }
  }
  // Waits for the stage of k and reads one word of it per lane.
  __device__ float Consume(int64_t k) const {
    BarWait(Bar(k), static_cast<uint32_t>((k / depth) & 1));
    float v;
    const int lane = threadIdx.x % 32;
    asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(Slot(k) + (lane % kTileRows) * stride + 4 * (lane / 16)));
    __syncwarp();
    return v;
  }
};

__device__ Ring SetUpRing(int depth, int rows, int pieces) {
  extern __shared__ uint8_t smem[];
  const int warp = threadIdx.x / 32;
  const int warps = blockDim.x / 32;
  Ring r;
  r.policy = 0;
  r.depth = depth;
  r.rows = rows;
  r.stride = kMaxPiece * pieces;
  uint8_t* bars = smem + static_cast<size_t>(warps) * depth * rows * r.stride;
  r.slots = static_cast<uint32_t>(__cvta_generic_to_shared(smem)) + warp * depth * rows * r.stride;
  r.bars = static_cast<uint32_t>(__cvta_generic_to_shared(bars)) + 8 * warp * depth;
  if (threadIdx.x % 32 == 0) {
    for (int i = 0; i < depth; ++i) BarInit(r.bars + 8 * i);
  }
  BarInitFence();
  __syncwarp();
  return r;
}

// After the dependency: a product's first element of x (its stages read
// their own 256 elements, XSlice, as the tensor-core kernels do); a
// latency op (attention) its whole input.
__device__ float ReadX(const float* act, const Op& o) {
  if (o.row_bytes > 0 || o.emptied) return act[o.x_off + threadIdx.x % 32];
  float s = 0.0f;
  for (int i = threadIdx.x; i < o.x_len; i += blockDim.x) s += act[o.x_off + i];
  return s;
}
// Stage s's elements of x (256 a super-block), 8 a lane per super-block (two 16-byte loads each).
__device__ float XSlice(const float* act, const Op& o, int64_t s, int pieces) {
  float v = 0.0f;
  for (int j = 0; j < pieces; ++j) {
    const float4* q = reinterpret_cast<const float4*>(act + o.x_off + (s * pieces + j) * 256) + 2 * (threadIdx.x % 32);
    const float4 a = __ldg(q), b = __ldg(q + 1);
    v += a.x + a.y + a.z + a.w + b.x + b.y + b.z + b.w;
  }
  return v;
}

// The tile's outputs: the block's sum spread over y_per_tile floats.
__device__ void WriteY(float* act, const Op& o, int64_t t, float part, float* red, int tiles = 1) {
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32;
  part = WarpSum(part);
  if (threadIdx.x % 32 == 0) red[warp] = part;
  __syncthreads();
  float total = 0.0f;
  for (int i = 0; i < warps; ++i) total += red[i];
  const int n = o.y_per_tile * tiles;
  for (int i = threadIdx.x; i < n; i += blockDim.x) act[o.y_off + t * n + i] = total * 1e-30f + i;
  __syncthreads();  // red reused
}

// ---- launch: one kernel per op, one tile (--tiles: group of tiles) a block,
// or (--one-wave) one wave of blocks that each walk every grid-th group.
struct LaunchArgs {
  int depth, wait, tiles;  // (each op's super-blocks a stage: Op::pieces)
  int pf_bytes;  // --tail-prefetch: bytes of each row of the next product's first groups, 0: none
  int resident;  // blocks resident on the card at once (the last wave's size)
  int evict_first;
  int alu;  // --alu: FMAs a lane adds to each super-block it reads (four independent chains)
};

// --alu: n dependent-in-fours FMAs on v (inline asm, so none is folded
// away): a stand-in for a stage's arithmetic, in issue slots.
__device__ __forceinline__ float Alu(float v, int n) {
  float a = v, b = v + 1.0f, c = v + 2.0f, d = v + 3.0f;
  for (int i = 0; i < n; i += 4) {
    asm volatile("fma.rn.f32 %0, %0, 0f3F7FFFFF, 0f33800000;" : "+f"(a));
    asm volatile("fma.rn.f32 %0, %0, 0f3F7FFFFF, 0f33800000;" : "+f"(b));
    asm volatile("fma.rn.f32 %0, %0, 0f3F7FFFFF, 0f33800000;" : "+f"(c));
    asm volatile("fma.rn.f32 %0, %0, 0f3F7FFFFF, 0f33800000;" : "+f"(d));
  }
  return a + b + c + d;
}

// The next product's group that block b of a grid of `grid` blocks prefetches
// when it has requested its last stage: the last wave's i-th block the next
// op's i-th group (its first wave).
__device__ __noinline__ void TailPrefetch(const Op& next, const uint8_t* w, const LaunchArgs& a) {
  const int64_t b = blockIdx.x, grid = gridDim.x;
  const int64_t g = grid > a.resident ? b - (grid - a.resident) : b;
  const int rows = kTileRows * a.tiles;
  if (g < 0 || next.row_bytes == 0 || (g + 1) * a.tiles > next.tiles) return;
  const uint32_t bytes = static_cast<uint32_t>(a.pf_bytes < next.row_bytes ? a.pf_bytes : next.row_bytes) & ~15u;
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32, lane = threadIdx.x % 32;
  const int r = warp + lane * warps;
  if (bytes > 0 && r < rows) PrefetchL2(w + next.w_off + (g * rows + r) * next.row_bytes, bytes);
}

// kL2: the --tail-prefetch and --evict-first paths compiled in (64
// registers at most, so that four 8-warp blocks stay resident, as without).
template <bool kL2>
__global__ void __maxnreg__(64) LaunchOpKernel(Op o, Op next, const uint8_t* __restrict__ w, float* act, LaunchArgs a) {
  __shared__ float red[32];
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int n_stages = o.row_bytes > 0 ? static_cast<int>(o.row_bytes / o.piece) : 0;
  const int mine = warp < n_stages ? (n_stages - warp + warps - 1) / warps : 0;
  const int tiles = o.row_bytes == 0 ? 1 : a.tiles;  // a latency op: a block each
  const int groups = static_cast<int>((o.tiles + tiles - 1) / tiles);
  const int grid = static_cast<int>(gridDim.x), b = static_cast<int>(blockIdx.x);
  const int total = mine * (groups > b ? (groups - b - 1) / grid + 1 : 0);  // this warp's stages, all groups
  Ring ring = SetUpRing(a.depth, kTileRows * tiles, o.pieces);
  if (kL2 && a.evict_first) ring.policy = EvictFirstPolicy();
  // The warp's stages in order: stage warp + k x warps of group g, for each
  // of the block's groups (g = blockIdx.x, + grid, ...); j counts them.
  int in_g = b, in_k = 0;
  auto issue = [&](int j) {
    ring.Issue(o, w, in_g, warp + in_k * warps, j);
    if (++in_k == mine) {
      in_k = 0;
      in_g += grid;
    }
  };
  for (int j = 0; j < a.depth && j < total; ++j) issue(j);
  if (kL2 && total <= a.depth && a.pf_bytes > 0) TailPrefetch(next, w, a);  // every stage requested
  GridAllow();
  if (a.wait) GridWait();
  int j = 0;
  for (int g = b; g < groups; g += grid) {
    float acc = ReadX(act, o);
    for (int k = 0; k < mine; ++k, ++j) {
      acc += XSlice(act, o, warp + k * warps, o.pieces);
      acc += ring.Consume(j);
      if (a.alu > 0) acc = Alu(acc, a.alu * o.pieces);
      if (j + a.depth < total) {
        issue(j + a.depth);
      } else if (kL2 && j + a.depth == total && a.pf_bytes > 0) {
        TailPrefetch(next, w, a);  // the last stage requested a stage ago
      }
    }
    WriteY(act, o, g, acc, red, tiles);
  }
}

// ---- persist: one wave of blocks walks every op.
struct Cursor {  // a warp's position in its stream of stages: op o, tile t, stage s
  int o;
  int64_t t, s;
};

__device__ __forceinline__ bool HasStages(const Op& o) { return o.row_bytes > 0; }

// The first stage at or after (o, t, s) that this warp copies, within op
// `last_op` at most; false when there is none.
__device__ bool Settle(const Plan& p, Cursor* c, int last_op) {
  const int warp = threadIdx.x / 32;
  while (c->o <= last_op && c->o < p.n_ops) {
    const Op& o = p.ops[c->o];
    if (HasStages(o) && c->t < o.tiles) {
      if (c->s < o.row_bytes / o.piece) return true;
      c->t += gridDim.x;
      c->s = warp;
      continue;
    }
    ++c->o;
    c->t = blockIdx.x;
    c->s = warp;
  }
  return false;
}

__global__ void PersistKernel(const uint8_t* __restrict__ w, float* act, unsigned* done, unsigned epoch, int depth,
                              int ahead) {
  __shared__ float red[32];
  const Plan& p = c_plan;
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const Ring ring = SetUpRing(depth, kTileRows, p.pieces);
  Cursor next{0, blockIdx.x, warp};  // the next stage to request
  int64_t issued = 0, consumed = 0;
  // Requests stages while the ring has room, up to op `limit`.
  auto fill = [&](int limit) {
    while (issued < consumed + depth && Settle(p, &next, limit)) {
      ring.Issue(p.ops[next.o], w, next.t, next.s, issued);
      ++issued;
      next.s += warps;
    }
  };
  for (int oi = 0; oi < p.n_ops; ++oi) {
    const Op& o = p.ops[oi];
    if (blockIdx.x >= o.tiles) continue;  // no tile here: the next op's wait covers this one's
    fill(ahead ? p.n_ops - 1 : oi);
    if (epoch > 0 && oi > 0) {  // the dependency: every tile of the op before (epoch 0: --no-wait)
      const unsigned need = epoch * static_cast<unsigned>(p.ops[oi - 1].tiles);
      if (threadIdx.x == 0) {
        unsigned v;
        do {
          asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(done + oi - 1) : "memory");
          if (v < need) __nanosleep(32);
        } while (v < need);
      }
      __syncthreads();
    }
    fill(ahead ? p.n_ops - 1 : oi);
    const int64_t n_stages = HasStages(o) ? o.row_bytes / o.piece : 0;
    for (int64_t t = blockIdx.x; t < o.tiles; t += gridDim.x) {
      float acc = ReadX(act, o);
      for (int64_t s = warp; s < n_stages; s += warps) {
        acc += XSlice(act, o, s, o.pieces);
        acc += ring.Consume(consumed);
        ++consumed;
        fill(ahead ? p.n_ops - 1 : oi);
      }
      WriteY(act, o, t, acc, red);
      if (threadIdx.x == 0) {
        __threadfence();
        atomicAdd(done + oi, 1u);
      }
    }
  }
}

// ---- warps: one wave of warps, each on its own, no block barrier. Op o's
// work units (16 rows x at most --unit-stages stages; a latency op's unit is
// one head: 384 floats read, 128 written) go to the wave's warps in turn,
// continuing across ops (unit u of op o to warp (unit_base + u) mod warps
// in the wave, so that every warp gets the same share), so each warp knows its whole
// stream of stages in advance and requests them up to --depth ahead, across
// the ops' dependencies (weights depend on nothing). A warp waits for op
// o - 1 to be done only when it starts its first unit of op o. Completion
// is counted per block in shared memory; the block's last warp to finish an
// op adds the block's units to the op's global counter (one atomic a block
// and op); one warp of a block at a time polls that counter, and the block
// notes the ops it has seen done.
struct WCursor {  // a warp's position: op o, its unit u, stage s (in the unit's [first, end))
  int o;
  unsigned u;
  int s, end;
  int64_t tile;
};

// Unit u of op o: its tile and its stage range.
__device__ __forceinline__ void UnitRange(const Plan& p, WCursor* c) {
  const Op& o = p.ops[c->o];
  if (o.row_bytes > 0) {
    c->tile = c->u / static_cast<unsigned>(o.parts);
    c->s = static_cast<int>(c->u % static_cast<unsigned>(o.parts)) * p.unit_stages;
    c->end = min(o.n_stages, c->s + p.unit_stages);
  } else {
    c->tile = c->u;
    c->s = c->end = 0;
  }
}

// Warp gw's first unit of op o.
__device__ __forceinline__ unsigned FirstUnit(const Op& o, unsigned gw, unsigned tw) {
  return static_cast<unsigned>((gw + tw - o.unit_base % tw) % tw);
}
// Units of op o that warp gw owns.
__device__ __forceinline__ unsigned OwnUnits(const Op& o, unsigned gw, unsigned tw) {
  const unsigned u0 = FirstUnit(o, gw, tw);
  return o.units > u0 ? (o.units - u0 - 1) / tw + 1 : 0u;
}

// The first unit at or after op c->o (from unit c->u there) that this warp
// owns; false when it owns none (c->o == n_ops).
__device__ bool NextUnit(const Plan& p, WCursor* c, unsigned gw, unsigned tw) {
  while (c->o < p.n_ops) {
    if (c->u < p.ops[c->o].units) {
      UnitRange(p, c);
      return true;
    }
    ++c->o;
    if (c->o < p.n_ops) c->u = FirstUnit(p.ops[c->o], gw, tw);
  }
  return false;
}

// Units of op o that the warps of block b own.
__device__ unsigned BlockUnits(const Op& o, unsigned b, unsigned warps, unsigned tw) {
  unsigned n = 0;
  for (unsigned w = 0; w < warps; ++w) n += OwnUnits(o, b * warps + w, tw);
  return n;
}

__global__ void WarpsKernel(const uint8_t* __restrict__ w, float* act, unsigned* done, unsigned epoch, int depth) {
  __shared__ unsigned blk_done[kMaxOps];
  __shared__ int seen;  // ops [0, seen) are known done
  __shared__ int poll_lock;
  const Plan& p = c_plan;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const unsigned warps = blockDim.x / 32, gw = blockIdx.x * warps + warp, tw = gridDim.x * warps;
  for (int i = threadIdx.x; i < kMaxOps; i += blockDim.x) blk_done[i] = 0;
  if (threadIdx.x == 0) {
    seen = 0;
    poll_lock = 0;
  }
  const Ring ring = SetUpRing(depth, kTileRows, p.pieces);
  __syncthreads();
  const unsigned u0 = FirstUnit(p.ops[0], gw, tw);
  WCursor in{0, u0, 0, 0, 0}, out{0, u0, 0, 0, 0};  // the next stage to request; the unit to consume
  bool more_in = NextUnit(p, &in, gw, tw);
  int64_t issued = 0, consumed = 0;
  auto fill = [&]() {
    while (more_in && issued < consumed + depth) {
      if (in.s >= in.end) {  // the unit's stages all requested (or none): the next unit
        in.u += tw;
        more_in = NextUnit(p, &in, gw, tw);
        continue;
      }
      ring.Issue(p.ops[in.o], w, in.tile, in.s, issued);
      ++issued;
      ++in.s;
    }
  };
  int waited = 0;  // ops before `waited` this warp knows done
  while (NextUnit(p, &out, gw, tw)) {
    fill();
    const Op& o = p.ops[out.o];
    if (epoch > 0 && out.o > waited) {  // the dependency: op out.o - 1 done
      for (;;) {
        int known = *reinterpret_cast<volatile int*>(&seen);
        if (known >= out.o) break;
        if (lane == 0 && atomicCAS(&poll_lock, 0, 1) == 0) {
          unsigned v;
          asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(done + out.o - 1) : "memory");
          if (v >= epoch * p.ops[out.o - 1].units) atomicMax(&seen, out.o);
          atomicExch(&poll_lock, 0);
        }
        __syncwarp();
        __nanosleep(64);
        fill();
      }
      __threadfence_block();
      waited = out.o;
    }
    float acc = 0.0f;
    if (o.row_bytes > 0) {
      acc = act[o.x_off + lane];
      for (int st = out.s; st < out.end; ++st) {
        acc += XSlice(act, o, st, o.pieces);
        acc += ring.Consume(consumed);
        ++consumed;
        fill();
      }
      acc = WarpSum(acc);
      if (lane < kTileRows) act[o.y_off + out.tile * kTileRows + lane] = acc * 1e-30f + lane;
    } else if (o.emptied) {
      acc = WarpSum(act[o.x_off + lane]);
      if (lane < kTileRows) act[o.y_off + out.tile * kTileRows + lane] = acc * 1e-30f + lane;
    } else {
      const int n = min(o.x_len, 384);
      for (int i = lane; i < n; i += 32) acc += act[o.x_off + i];
      acc = WarpSum(acc);
      for (int i = lane; i < o.y_per_tile; i += 32) act[o.y_off + out.tile * o.y_per_tile + i] = acc * 1e-30f + i;
    }
    // Done: the block's count of op out.o; the last of its units reports the block's.
    out.u += tw;
    const bool last_of_op = out.u >= o.units;
    if (last_of_op) {
      const unsigned mine = OwnUnits(o, gw, tw);
      __syncwarp();
      if (lane == 0) {
        __threadfence();
        const unsigned total = BlockUnits(o, blockIdx.x, warps, tw);
        if (atomicAdd(&blk_done[out.o], mine) + mine == total) {
          __threadfence();
          asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(done + out.o), "r"(total) : "memory");
        }
      }
    }
  }
}

// ---- The step's ops.
struct Shape {
  int layers, hidden, q_dim, kv_dim, ffn, vocab;
};

// Ops whose class (Op::cls) is not in wide_mask keep one super-block a
// stage (and, in the launch mode, their many-wave grid under --one-wave).
Plan MakePlan(const Shape& m, int pieces, int wide_mask, int unit_stages, int64_t* weight_bytes, int64_t* act_floats) {
  Plan p{};
  p.pieces = pieces;
  p.unit_stages = unit_stages;
  int64_t w = 0, a = 0;
  auto add = [&](int cls, int64_t rows, int64_t cols, bool q6, int x_len, int64_t x_off, int y_per_tile_or_0) {
    Op& o = p.ops[p.n_ops++];
    o.cls = cls;
    o.pieces = (cls & wide_mask) != 0 ? pieces : 1;
    o.piece = (q6 ? 208 : 144) * o.pieces;
    o.row_bytes = rows > 0 ? cols / 256 * (q6 ? 208 : 144) : 0;
    o.tiles = rows / kTileRows;
    o.x_len = x_len;
    o.x_off = x_off;
    o.w_off = w;
    w += rows * o.row_bytes;
    o.y_per_tile = y_per_tile_or_0 > 0 ? y_per_tile_or_0 : kTileRows;
    o.y_off = a;
    a += o.tiles * o.y_per_tile;
    return o.y_off;
  };
  int64_t x = a;
  a += m.hidden;
  for (int l = 0; l < m.layers; ++l) {
    // q/k/v as one launch (Q4_K; the Q4_K_M layers with a Q6_K attn_v count as Q4_K here).
    const int64_t qkv = add(1, m.q_dim + 2 * m.kv_dim, m.hidden, false, m.hidden, x, 0);
    // Attention: one block per head, no weights, reads q/k/v, writes the heads' outputs.
    Op& at = p.ops[p.n_ops++];
    at = Op{};
    at.pieces = 1;
    at.tiles = m.q_dim / 128;
    at.x_len = m.q_dim + 2 * m.kv_dim;
    at.x_off = qkv;
    at.y_per_tile = 128;
    at.y_off = a;
    a += m.q_dim;
    const int64_t attn = at.y_off;
    x = add(2, m.hidden, m.q_dim, false, m.q_dim, attn, 0);                  // attn_output (+ residual)
    const int64_t act = add(4, 2 * m.ffn, m.hidden, false, m.hidden, x, 0);  // gate/up pairs (+ GLU: half the outputs)
    x = add(l % 2 == 1 ? 16 : 8, m.hidden, m.ffn, l % 2 == 1, m.ffn, act, 0);                  // down: Q6_K in half the layers (Q4_K_M)
  }
  add(32, m.vocab, m.hidden, true, m.hidden, x, 0);  // output head, Q6_K
  uint64_t base = 0;
  for (int i = 0; i < p.n_ops; ++i) {
    Op& o = p.ops[i];
    o.unit_base = base;
    o.n_stages = o.row_bytes > 0 ? static_cast<int>(o.row_bytes / o.piece) : 0;
    o.parts = o.row_bytes > 0 ? (o.n_stages + unit_stages - 1) / unit_stages : 1;
    o.units = static_cast<unsigned>(o.tiles * o.parts);
    base += o.units;
  }
  *weight_bytes = w;
  *act_floats = a;
  return p;
}

// Median us of step(i) on `stream` for i = 1..steps, after step(0) as a warm-up.
template <typename F>
double MedianUs(int steps, cudaStream_t stream, F&& step) {
  cudaEvent_t s, e;
  CK(cudaEventCreate(&s));
  CK(cudaEventCreate(&e));
  std::vector<float> ms;
  for (int i = 0; i <= steps; ++i) {
    CK(cudaEventRecord(s, stream));
    step(i);
    CK(cudaEventRecord(e, stream));
    CK(cudaEventSynchronize(e));
    float t;
    CK(cudaEventElapsedTime(&t, s, e));
    if (i > 0) ms.push_back(t);
  }
  CK(cudaGetLastError());
  CK(cudaEventDestroy(s));
  CK(cudaEventDestroy(e));
  std::sort(ms.begin(), ms.end());
  return 1e3 * ms[ms.size() / 2];
}

double CopyGbps() {
  const size_t n = size_t{1} << 30;
  void *a, *b;
  CK(cudaMalloc(&a, n));
  CK(cudaMalloc(&b, n));
  CK(cudaMemset(a, 1, n));
  // Median of 10 after a warm-up, as bench/cuda_copy_bw.cu.
  const double us = MedianUs(10, nullptr, [&](int) { CK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice)); });
  CK(cudaFree(a));
  CK(cudaFree(b));
  return 2.0 * n / (us * 1e-6) / 1e9;
}

size_t SharedBytes(int warps, int depth, int tiles, int pieces) {
  return static_cast<size_t>(warps) * depth * (kTileRows * tiles * kMaxPiece * pieces + 8);
}

// Median us per step over `steps` graph replays (after one warm-up).
// one_wave: each launch's grid at most the blocks resident at once.
double TimeLaunch(const Plan& p, const uint8_t* w, float* act, int warps, int steps, LaunchArgs a, bool one_wave,
                  int wide_mask, int blocks_per_sm) {
  // Each launch's shared memory for its own stage size (an op outside
  // --wide-mask keeps one super-block's slots, and so its resident blocks).
  auto* kernel = a.pf_bytes > 0 || a.evict_first ? LaunchOpKernel<true> : LaunchOpKernel<false>;
  CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                          static_cast<int>(SharedBytes(warps, a.depth, a.tiles, p.pieces))));
  int dev = 0, sms = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  auto resident = [&](size_t sh) {
    int per_sm = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, 32 * warps, sh));
    if (blocks_per_sm > 0) per_sm = std::min(per_sm, blocks_per_sm);
    return std::max(1, per_sm * sms);
  };
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cudaGraph_t g;
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < p.n_ops; ++i) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg{};
    const int64_t t = p.ops[i].row_bytes > 0 ? a.tiles : 1;
    const size_t sh = SharedBytes(warps, a.depth, a.tiles, p.ops[i].pieces);
    LaunchArgs ai = a;
    ai.resident = resident(sh);
    int64_t grid = (p.ops[i].tiles + t - 1) / t;
    if (one_wave && (p.ops[i].cls & wide_mask) != 0) grid = std::min<int64_t>(grid, ai.resident);
    Op next{};  // the next op with weights (after a product's attention: attn_output)
    for (int k = i + 1; k < p.n_ops; ++k) {
      if (p.ops[k].row_bytes > 0) {
        next = p.ops[k];
        break;
      }
    }
    cfg.gridDim = dim3(static_cast<unsigned>(grid));
    cfg.blockDim = dim3(32 * warps);
    cfg.dynamicSmemBytes = sh;
    cfg.stream = st;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    CK(cudaLaunchKernelEx(&cfg, kernel, p.ops[i], next, w, act, ai));
  }
  CK(cudaStreamEndCapture(st, &g));
  cudaGraphExec_t ge;
  CK(cudaGraphInstantiate(&ge, g, 0));
  const double us = MedianUs(steps, st, [&](int) { CK(cudaGraphLaunch(ge, st)); });
  CK(cudaGraphExecDestroy(ge));
  CK(cudaGraphDestroy(g));
  CK(cudaStreamDestroy(st));
  return us;
}

// Median us per step of a one-wave cooperative kernel (after one warm-up):
// kernel(w, act, done, epoch, depth, extra...) with epoch = step + 1 (0 when
// !wait: a target every count meets), so the op counters in `done` need no
// reset between steps.
template <typename... Extra>
double TimeCooperative(void (*kernel)(const uint8_t*, float*, unsigned*, unsigned, int, Extra...), const char* name,
                       const Plan& p, const uint8_t* w, float* act, int warps, int depth, int steps, bool wait,
                       int* grid_out, Extra... extra) {
  const size_t sh = SharedBytes(warps, depth, 1, p.pieces);
  CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sh)));
  int per_sm = 0, dev = 0, sms = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, 32 * warps, sh));
  if (per_sm < 1) {
    std::fprintf(stderr, "ggufscope-bench-step: %s: no block of %d warps and depth %d fits\n", name, warps, depth);
    std::exit(2);
  }
  const int grid = per_sm * sms;
  *grid_out = grid;
  unsigned* done;
  CK(cudaMemcpyToSymbol(c_plan, &p, sizeof(Plan)));
  CK(cudaMalloc(&done, sizeof(unsigned) * kMaxOps));
  CK(cudaMemset(done, 0, sizeof(unsigned) * kMaxOps));
  const double us = MedianUs(steps, nullptr, [&](int i) {
    unsigned epoch = wait ? static_cast<unsigned>(i + 1) : 0u;
    int d = depth;
    void* args[] = {const_cast<uint8_t**>(&w), &act, &done, &epoch, &d, &extra...};
    // Cooperative: every block resident, or the launch fails (the counters' waits need it).
    CK(cudaLaunchCooperativeKernel(reinterpret_cast<void*>(kernel), dim3(grid), dim3(32 * warps), args, sh, nullptr));
  });
  CK(cudaFree(done));
  return us;
}

std::string fmt1(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

int Usage(const char* why) {
  std::fprintf(stderr,
               "ggufscope-bench-step: %s\nusage: ggufscope-bench-step [--mode launch|persist|warps|all] [--depth D] "
               "[--warps W] [--tiles 1|2] [--pieces 1|2] [--unit-stages N] [--steps N] [--shape 7b|1.5b] [--no-wait] [--empty] "
               "[--one-wave] [--wide-mask M] [--blocks-per-sm N] [--alu N] [--evict-first] [--tail-prefetch BYTES] [--json]\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = "all", shape = "7b";
  int depth = 0, warps = 8, steps = 20, tiles = 1, pieces = 1, unit_stages = 8, tail_prefetch = 0, wide_mask = 63, blocks_per_sm = 0, alu = 0;
  bool json = false, no_wait = false, empty = false, one_wave = false, evict_first = false;
  // Options with a value: integers with their range, strings, flags.
  struct IntOpt {
    const char* name;
    int* v;
    int lo, hi;
  };
  const IntOpt ints[] = {{"--depth", &depth, 0, 8},     {"--warps", &warps, 1, 16},  {"--steps", &steps, 1, 10000},
                         {"--tiles", &tiles, 1, 2},     {"--pieces", &pieces, 1, 2}, {"--unit-stages", &unit_stages, 1, 1000},
                         {"--tail-prefetch", &tail_prefetch, 0, 1 << 20},
                         {"--wide-mask", &wide_mask, 1, 63},  {"--blocks-per-sm", &blocks_per_sm, 0, 32},
                         {"--alu", &alu, 0, 4096}};
  const std::pair<const char*, std::string*> strs[] = {{"--mode", &mode}, {"--shape", &shape}};
  const std::pair<const char*, bool*> flags[] = {{"--no-wait", &no_wait}, {"--empty", &empty}, {"--json", &json},
                                                 {"--one-wave", &one_wave}, {"--evict-first", &evict_first},
};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    bool known = false;
    for (const auto& f : flags) {
      if (a == f.first) *f.second = known = true;
    }
    for (const auto& o : strs) {
      if (a != o.first) continue;
      if (i + 1 >= argc) return Usage((a + " needs a value").c_str());
      *o.second = argv[++i];
      known = true;
    }
    for (const IntOpt& o : ints) {
      if (a != o.name) continue;
      if (i + 1 >= argc) return Usage((a + " needs a value").c_str());
      const char* v = argv[++i];
      char* end = nullptr;
      const long n = std::strtol(v, &end, 10);
      if (end == v || *end != '\0' || n < o.lo || n > o.hi) {
        return Usage((a + ": " + v + " is not an integer in " + std::to_string(o.lo) + ".." + std::to_string(o.hi))
                         .c_str());
      }
      *o.v = static_cast<int>(n);
      known = true;
    }
    if (!known) return Usage(("unknown argument " + a).c_str());
  }
  if (mode != "launch" && mode != "persist" && mode != "warps" && mode != "all") {
    return Usage("--mode must be launch, persist, warps or all");
  }
  if (shape != "7b" && shape != "1.5b") return Usage("--shape must be 7b or 1.5b");
  if ((mode == "persist" || mode == "warps") &&
      (one_wave || evict_first || tail_prefetch > 0 || alu > 0 || blocks_per_sm > 0 || wide_mask != 63)) {
    return Usage("--one-wave, --wide-mask, --blocks-per-sm, --alu, --evict-first and --tail-prefetch are the launch "
                 "mode's (--mode launch or all)");
  }
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) !=
                                                 cudaSuccess || major < 9) {
    std::fprintf(stderr, "ggufscope-bench-step: needs an sm_90 GPU (bulk copies, dependent launches)\n");
    return 2;
  }
  const Shape m = shape == "7b" ? Shape{28, 3584, 3584, 512, 18944, 152064} : Shape{28, 1536, 1536, 256, 8960, 151936};
  int64_t wbytes = 0, afloats = 0;
  Plan plan = MakePlan(m, pieces, wide_mask, unit_stages, &wbytes, &afloats);
  if (empty) {  // the step's chain of dependencies alone: every op a tile's latency, no weights
    uint64_t base = 0;
    for (int i = 0; i < plan.n_ops; ++i) {
      Op& o = plan.ops[i];
      if (o.row_bytes > 0) {
        o.row_bytes = 0;
        o.n_stages = 0;
        o.parts = 1;
        o.units = static_cast<unsigned>(o.tiles);
        o.emptied = true;
      }
      o.unit_base = base;
      base += o.units;
    }
  }
  if (plan.n_ops > kMaxOps) return Usage("too many ops");
  std::fprintf(stderr, "ggufscope-bench-step: %s shape, %d ops, %.1f MB of weights a step; measuring...\n",
               shape.c_str(), plan.n_ops, wbytes / 1e6);
  uint8_t* w;
  float* act;
  CK(cudaMalloc(&w, static_cast<size_t>(wbytes)));
  CK(cudaMemset(w, 0x11, static_cast<size_t>(wbytes)));
  CK(cudaMalloc(&act, static_cast<size_t>(afloats) * sizeof(float)));
  CK(cudaMemset(act, 0, static_cast<size_t>(afloats) * sizeof(float)));
  const double bw = CopyGbps();
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, dev));
  struct Row {
    std::string mode;
    int depth, grid;
    double us;
  };
  std::vector<Row> rows;
  std::vector<int> depths = depth > 0 ? std::vector<int>{depth} : std::vector<int>{2, 4};
  for (int d : depths) {
    const std::string nw = std::string(no_wait ? " (no wait)" : "") + (empty ? " (empty)" : "");
    if (mode == "launch" || mode == "all") {
      const std::string tl = (tiles > 1 ? " --tiles " + std::to_string(tiles) : "") +
                             (pieces > 1 ? " --pieces " + std::to_string(pieces) : "") +
                             (one_wave ? " --one-wave" : "") + (wide_mask != 63 ? " --wide-mask " + std::to_string(wide_mask) : "") +
                             (blocks_per_sm > 0 ? " --blocks-per-sm " + std::to_string(blocks_per_sm) : "") +
                             (alu > 0 ? " --alu " + std::to_string(alu) : "") + (evict_first ? " --evict-first" : "") +
                             (tail_prefetch > 0 ? " --tail-prefetch " + std::to_string(tail_prefetch) : "");
      const LaunchArgs la{d, no_wait ? 0 : 1, tiles, tail_prefetch, 0, evict_first ? 1 : 0, alu};
      rows.push_back({"launch" + tl + nw, d, 0, TimeLaunch(plan, w, act, warps, steps, la, one_wave, wide_mask, blocks_per_sm)});
    }
    if ((mode == "persist" || mode == "all") && tiles == 1) {  // (one tile a stage only)
      int grid = 0;
      const double us = TimeCooperative(PersistKernel, "persist", plan, w, act, warps, d, steps, !no_wait, &grid, 1);
      rows.push_back({"persist" + nw, d, grid, us});
      const double us2 = TimeCooperative(PersistKernel, "persist", plan, w, act, warps, d, steps, !no_wait, &grid, 0);
      rows.push_back({"persist --no-ahead" + nw, d, grid, us2});
    }
    if (mode == "warps" || mode == "all") {
      int grid = 0;
      const double us = TimeCooperative(WarpsKernel, "warps", plan, w, act, warps, d, steps, !no_wait, &grid);
      rows.push_back({"warps, units of " + std::to_string(unit_stages) + nw, d, grid, us});
    }
  }
  if (json) {
    std::printf("{\"device\": \"%s\", \"shape\": \"%s\", \"weight_bytes\": %lld, \"copy_gbps\": %.1f, \"runs\": [",
                prop.name, shape.c_str(), static_cast<long long>(wbytes), bw);
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      // --empty streams nothing: no share.
      const std::string share = empty ? "null" : std::to_string(wbytes / (r.us * 1e3) / bw);
      std::printf("%s{\"mode\": \"%s\", \"depth\": %d, \"warps\": %d, \"grid\": %d, \"step_us\": %.1f, \"tok_s\": %.1f, "
                  "\"share_of_copy\": %s}",
                  i ? ", " : "", r.mode.c_str(), r.depth, warps, r.grid, r.us, 1e6 / r.us, share.c_str());
    }
    std::printf("]}\n");
  } else {
    std::printf("%s, %s shape: %.1f MB of weights a step, copy bandwidth %.1f GB/s (the anchor)\n", prop.name,
                shape.c_str(), wbytes / 1e6, bw);
    std::printf("%-56s %5s %5s %6s %10s %9s %7s\n", "mode", "depth", "warps", "grid", "step us", "tok/s", "share");
    for (const Row& r : rows) {
      const std::string share = empty ? "-" : fmt1(100.0 * wbytes / (r.us * 1e3) / bw) + "%";
      std::printf("%-56s %5d %5d %6d %10.1f %9.1f %7s\n", r.mode.c_str(), r.depth, warps, r.grid, r.us, 1e6 / r.us,
                  share.c_str());
    }
  }
  CK(cudaFree(w));
  CK(cudaFree(act));
  return 0;
}
