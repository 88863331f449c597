// A CUDA graph captured from a context's stream and replayed as one launch:
// the decode step of the forward pass is some 15 launches per layer, and
// replaying them as a graph removes the launch gaps between them.
//
// Host-facing: no CUDA types (the handles are void*), C++17.
#pragma once

#include "cuda_runtime/device.h"
#include "cuda_runtime/status.h"

namespace ggufscope::cuda {

class StreamGraph {
 public:
  StreamGraph() = default;
  ~StreamGraph();
  StreamGraph(const StreamGraph&) = delete;
  StreamGraph& operator=(const StreamGraph&) = delete;

  // Starts recording the work queued on ctx's stream instead of running it
  // (thread-local capture mode: other threads' CUDA calls are unaffected).
  // Between Begin and End only kernel launches and async copies may be
  // queued: nothing that synchronizes or allocates.
  Status BeginCapture(Context& ctx);
  // Ends the recording and instantiates it. When `keep` is false (an op
  // failed while recording) the recording is dropped and the stream is
  // usable again; the graph stays empty.
  Status EndCapture(Context& ctx, bool keep = true);
  // Queues one replay on ctx's stream.
  Status Launch(Context& ctx);

  bool ready() const { return exec_ != nullptr; }
  void Reset();

 private:
  void* exec_ = nullptr;  // cudaGraphExec_t
};

}  // namespace ggufscope::cuda
