// CUDA device discovery and the context object every CUDA op takes: it owns
// the stream, the cuBLAS handle, a scratch workspace and the device copy of
// the IQ grids (no globals, so two models can live in one process for
// comparison). Without a GPU, ListDevices() says why.
//
// Host-facing: no CUDA types (handles are void*), C++17 so nvcc can include it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuda_runtime/status.h"

namespace ggufscope::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  size_t total_memory = 0;
  int sm_count = 0;
};

// True if this build includes the CUDA runtime.
bool Built();

// The visible devices; empty with a reason in *why when there are none
// (no driver, no GPU, or a build without CUDA).
std::vector<DeviceInfo> ListDevices(std::string* why);

// Owns a CUDA stream, a cuBLAS handle bound to it, a growable scratch
// buffer and the IQ grid tables, all on one device. Every op runs on the
// stream, in call order; none of them synchronizes unless it says so.
class Context {
 public:
  // nullptr with *why set if the device cannot be used.
  static std::unique_ptr<Context> Create(int device, std::string* why);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int device() const { return device_; }
  int multiprocessors() const { return multiprocessors_; }  // SMs, read once by Create
  bool cluster_launch() const { return cluster_launch_; }   // thread-block clusters (sm_90+)
  // Programmatic dependent launch (sm_90+): the decode kernels may start
  // while the kernel before them finishes (op_common.cuh, LaunchDependent).
  // On by default where the device has it; GGUFSCOPE_PDL=0 at Create, or
  // set_dependent_launch(false), launches every kernel after the previous
  // one has finished (the results are the same either way).
  bool dependent_launch() const { return dependent_launch_; }
  void set_dependent_launch(bool on) { dependent_launch_ = on && dependent_launch_supported_; }
  void* stream() const { return stream_; }        // cudaStream_t
  void* cublas() const { return cublas_; }        // cublasHandle_t

  // Device copy of gguf/iq_tables.inc, uploaded once by Create (layout:
  // cuda_runtime/iq_grids.cuh).
  const void* iq_grids() const { return iq_grids_; }

  // x's digit table for the table-fed mat-vec launches (matvec.cu,
  // MatVecXTableKernel): kXTableBytes, fixed for the context's life (a
  // recorded graph keeps its address); each such launch writes it anew.
  static constexpr size_t kXTableBytes = size_t{1} << 20;
  void* x_table() const { return x_table_; }

  // L2 prefetches for the next mat-vec launch that can issue them: ranges of
  // weights a later launch of the step will read, requested into L2 by the
  // launch's blocks before they wait for the kernel ahead of them (a decode
  // step's q/k/v, attention and attn_output launches leave the memory bus
  // mostly idle while gate/up's weights wait; forward.cc). A range is rows
  // [0, rows) of a matrix at `base`, the first `bytes` of each row
  // (`row_bytes` apart): base, bytes and row_bytes multiples of 16, bytes
  // at most row_bytes (checked by set_l2_prefetch, which refuses the hint
  // otherwise). A prefetch is a hint: it changes no result. The next
  // MatVecParts takes the hint and clears it (matvec.cu); the tensor-core
  // kernels issue it, any other launch drops it.
  struct L2Range {
    const void* base = nullptr;
    int64_t rows = 0;
    int64_t row_bytes = 0;
    int64_t bytes = 0;
  };
  static constexpr int kMaxL2Ranges = 3;
  // false (and no hint) where a range breaks the rules above or n is not in
  // [0, kMaxL2Ranges].
  bool set_l2_prefetch(const L2Range* ranges, int n) {
    n_l2_prefetch_ = 0;
    if (n < 0 || n > kMaxL2Ranges || (n > 0 && ranges == nullptr)) return false;
    for (int i = 0; i < n; ++i) {
      const L2Range& r = ranges[i];
      if (r.base == nullptr || reinterpret_cast<uintptr_t>(r.base) % 16 != 0 || r.rows < 0 || r.bytes <= 0 ||
          r.bytes % 16 != 0 || r.row_bytes % 16 != 0 || (r.rows > 1 && r.bytes > r.row_bytes) ||
          r.bytes > (int64_t{1} << 30)) {
        return false;
      }
    }
    for (int i = 0; i < n; ++i) l2_prefetch_[i] = ranges[i];
    n_l2_prefetch_ = n;
    return true;
  }
  // The pending ranges into out[kMaxL2Ranges]; their count (0: none).
  int take_l2_prefetch(L2Range* out) {
    const int n = n_l2_prefetch_;
    for (int i = 0; i < n; ++i) out[i] = l2_prefetch_[i];
    n_l2_prefetch_ = 0;
    return n;
  }

  // Scratch of at least `bytes` bytes (256-byte aligned), reused by ops that
  // need temporary buffers (dequantized weights for cuBLAS). Growing it waits
  // for the stream first, so work already queued never sees it freed. Valid
  // until the next call to Workspace.
  Status Workspace(size_t bytes, void** ptr);

  // Waits for every op queued on the stream; reports an asynchronous error.
  Status Synchronize();

 private:
  Context() = default;
  int device_ = 0;
  int multiprocessors_ = 1;
  bool cluster_launch_ = false;
  bool dependent_launch_supported_ = false;
  bool dependent_launch_ = false;
  void* stream_ = nullptr;
  void* cublas_ = nullptr;
  void* iq_grids_ = nullptr;   // device, IqGridBytes() bytes
  void* x_table_ = nullptr;     // device, kXTableBytes
  L2Range l2_prefetch_[kMaxL2Ranges];
  int n_l2_prefetch_ = 0;
  void* workspace_ = nullptr;   // device, workspace_bytes_ bytes
  size_t workspace_bytes_ = 0;
};

}  // namespace ggufscope::cuda
