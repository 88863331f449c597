// Fault injection: writes a copy of a GGUF file with one controlled defect,
// so users can see how an engine (and ggufscope's audit) reacts to a known
// kind of damage, and tests can produce every kind on demand.
//
// Each call makes exactly one change. Values are changed where a real fault
// would change them: float tensors element by element, quantized tensors in
// their block scale fields (gguf/block_scales.h), whose corruption is the
// kind that turns a whole block into garbage. Every other tensor keeps its
// bytes; the output is laid out by gguf::Writer (packed, llama.cpp's layout).
#pragma once

#include <cstdint>
#include <string>

#include "gguf/error.h"
#include "gguf/file.h"

namespace ggufscope::inspect {

enum class CorruptMode {
  kScale,     // multiply values (float types) or block scales (quantized) by `scale`
  kBitflip,   // flip `bit` of element `index` (float) or of block `index`'s first scale
  kNan,       // element `index` / block `index`'s first scale becomes NaN
  kInf,       // ... becomes +Inf
  kZeroRows,  // zero the bytes of the first `rows` rows
  kNoise,     // add N(0, (sigma * rms)^2), seeded; quantized tensors become F32
  kSwap,      // exchange the data of `tensor` and `other`
  kTruncate,  // the file ends `truncate_bytes` bytes into `tensor`'s data
  kSetKey,    // set metadata `key` to `value` (parsed as the key's existing type)
};

struct CorruptSpec {
  CorruptMode mode = CorruptMode::kScale;
  std::string tensor;           // every mode but kSetKey
  double scale = 1.0;           // kScale
  uint32_t bit = 0;             // kBitflip
  uint64_t index = 0;           // kBitflip, kNan, kInf: element (float types) or block (quantized)
  uint64_t rows = 0;            // kZeroRows
  double sigma = 0.0;           // kNoise, in units of the tensor's rms
  uint64_t seed = 0;            // kNoise
  std::string other;            // kSwap
  uint64_t truncate_bytes = 0;  // kTruncate
  std::string key;              // kSetKey
  std::string value;            // kSetKey
};

// Writes `in` with the change `spec` describes to `out_path` (atomically:
// a failure never leaves a partial file under that name). `what_changed`
// (if not null) receives one line naming the tensor or key, the element or
// block and the old -> new value.
//
// Errors: kInvalidArgument for a spec that does not fit the file (unknown
// tensor or key, bit or index out of range, swap of unlike tensors, a value
// that does not parse), kUnsupported for a mode the tensor's type cannot
// express (e.g. --inf on an E8M0 scale), kIo when the output can't be written.
gguf::Status Corrupt(const gguf::GgufFile& in, const std::string& out_path, const CorruptSpec& spec,
                     std::string* what_changed);

// IEEE half / bfloat16 bits nearest to x (round to nearest, ties to even;
// overflow gives Inf, NaN stays NaN). Rounding from double directly avoids
// the double rounding of going through float.
uint16_t DoubleToHalf(double x);
uint16_t DoubleToBf16(double x);

}  // namespace ggufscope::inspect
