#include "cuda_runtime/graph.h"

#include "cuda_runtime/check.cuh"

namespace ggufscope::cuda {

StreamGraph::~StreamGraph() { Reset(); }

void StreamGraph::Reset() {
  if (exec_ != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  exec_ = nullptr;
}

Status StreamGraph::BeginCapture(Context& ctx) {
  Reset();
  GGUFSCOPE_CUDA_TRY(cudaSetDevice(ctx.device()));
  GGUFSCOPE_CUDA_TRY(
      cudaStreamBeginCapture(internal::StreamOf(ctx), cudaStreamCaptureModeThreadLocal));
  return {};
}

Status StreamGraph::EndCapture(Context& ctx, bool keep) {
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(internal::StreamOf(ctx), &graph);
  if (!keep || end != cudaSuccess) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();  // an invalidated capture leaves its error behind
    if (end != cudaSuccess) return internal::CudaFailure("cudaStreamEndCapture", end, __FILE__, __LINE__);
    return {};
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (inst != cudaSuccess) return internal::CudaFailure("cudaGraphInstantiate", inst, __FILE__, __LINE__);
  exec_ = exec;
  return {};
}

Status StreamGraph::Launch(Context& ctx) {
  if (exec_ == nullptr) return Status::Error("StreamGraph::Launch: nothing captured");
  GGUFSCOPE_CUDA_TRY(cudaSetDevice(ctx.device()));
  GGUFSCOPE_CUDA_TRY(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), internal::StreamOf(ctx)));
  return {};
}

}  // namespace ggufscope::cuda
