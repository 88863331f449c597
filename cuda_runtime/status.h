// The error value every CUDA op returns. A failed CUDA or cuBLAS call, a bad
// argument (a shape that is not whole blocks, a null or misaligned pointer)
// or a build without CUDA all come back as a Status with a one-line message
// naming the call or argument; nothing here exits or aborts.
//
// Kept C++17 (nvcc compiles the .cu files as C++17) and free of CUDA types.
#pragma once

#include <string>
#include <utility>

namespace ggufscope::cuda {

class [[nodiscard]] Status {
 public:
  Status() = default;  // success
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  // Empty on success.
  const std::string& message() const { return message_; }

 private:
  explicit Status(std::string message) : message_(std::move(message)), failed_(true) {}
  std::string message_;
  bool failed_ = false;
};

}  // namespace ggufscope::cuda
