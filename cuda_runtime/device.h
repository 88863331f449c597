// CUDA device discovery and the context object every CUDA op takes: it owns
// the stream, the cuBLAS handle, a scratch workspace and the device copy of
// the IQ grids (no globals, so two models can live in one process for
// comparison). Without a GPU, ListDevices() says why.
//
// Host-facing: no CUDA types (handles are void*), C++17 so nvcc can include it.
#pragma once

#include <cstddef>
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
  void* workspace_ = nullptr;   // device, workspace_bytes_ bytes
  size_t workspace_bytes_ = 0;
};

}  // namespace ggufscope::cuda
