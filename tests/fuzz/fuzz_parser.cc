// libFuzzer target for the GGUF parser. Parse() must turn every byte string
// into either a GgufFile or an Error, without crashing, reading outside the
// input, hanging or allocating out of proportion; and when it accepts a file,
// everything it hands out (tensor views, metadata values, lookups) must be
// safe to use. The input is a heap copy of exactly `size` bytes, so
// AddressSanitizer reports any read past it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gguf/dequant.h"
#include "gguf/error.h"
#include "inspect/audit.h"
#include "inspect/info.h"
#include "gguf/file.h"
#include "gguf/value.h"

namespace {

using ggufscope::gguf::GgufFile;
using ggufscope::gguf::KeyValue;
using ggufscope::gguf::Result;
using ggufscope::gguf::TensorInfo;
using ggufscope::gguf::Value;
using ggufscope::gguf::ValueType;

// Results are folded into this so the compiler cannot drop the reads.
volatile uint64_t g_sink = 0;

// An accepted file broke a promise of the GgufFile API: make libFuzzer keep
// the input as a crash.
void Check(bool ok) {
  if (!ok) __builtin_trap();
}

uint64_t TouchValue(const Value& v, int depth) {
  uint64_t acc = static_cast<uint64_t>(v.type);
  acc += v.AsUint().value_or(0);
  acc += static_cast<uint64_t>(v.AsInt().value_or(0));
  acc += static_cast<uint64_t>(v.AsDouble().value_or(0.0) != 0.0);
  acc += v.s.size();
  if (v.type != ValueType::kArray) return acc;
  // The parser bounds nesting; a deeper value here means it let one through.
  Check(depth <= ggufscope::gguf::kMaxArrayDepth);
  const size_t n = v.array_size();
  acc += n;
  // First, middle and last element: enough to catch a size that disagrees
  // with the storage behind it, without making every input quadratic.
  const size_t picks[] = {0, n / 2, n - 1};
  for (size_t i : picks) {
    if (i >= n) continue;
    const Value item = v.ArrayItem(i);
    Check(item.type == v.elem_type);
    acc += TouchValue(item, depth + 1);
  }
  return acc;
}

uint64_t TouchFile(const GgufFile& f) {
  uint64_t acc = f.version() + f.alignment();
  Check(f.alignment() != 0 && (f.alignment() & (f.alignment() - 1)) == 0);
  Check(f.header_end() <= f.file_size());
  Check(f.data_offset() % f.alignment() == 0 && f.data_offset() >= f.header_end());
  for (const KeyValue& kv : f.metadata()) {
    Check(f.FindKey(kv.key) == &kv);  // keys are unique
    acc += kv.key.size() + kv.offset;
    acc += TouchValue(kv.value, 0);
  }
  const std::span<const uint8_t> file = f.bytes();
  for (const TensorInfo& t : f.tensors()) {
    Check(f.FindTensor(t.name) == &t);  // names are unique
    Check(t.n_dims >= 1 && t.n_dims <= ggufscope::gguf::kMaxDims);
    Check(t.offset % f.alignment() == 0);
    const std::span<const uint8_t> data = f.TensorData(t);
    Check(data.size() == t.n_bytes);
    if (data.empty()) continue;
    Check(data.data() >= file.data() && data.data() + data.size() <= file.data() + file.size());
    // Every byte, so ASan sees any view that reaches past the input.
    uint8_t x = 0;
    for (uint8_t b : data) x ^= b;
    acc += x + t.n_rows();
    // Dequantize the first row (bounded, so big tensors don't slow the fuzzer).
    const uint64_t row = std::min<uint64_t>(static_cast<uint64_t>(t.ne[0]), 1 << 16);
    const auto& tr = ggufscope::gguf::Traits(t.type);
    if (row > 0 && row % tr.block_size == 0) {
      std::vector<float> out(row);
      const ggufscope::gguf::Status st =
          ggufscope::gguf::Dequantize(t.type, data.subspan(0, row / tr.block_size * tr.type_size), row, out);
      Check(st.ok());
      for (float v : out) acc += v == 0.0f;
    }
  }
  acc += f.GetString("general.architecture").value_or("").size();
  acc += f.GetUint("general.alignment").value_or(0);
  acc += static_cast<uint64_t>(f.GetDouble("general.alignment").value_or(0.0));
  acc += f.warnings().size();
  return acc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Result<GgufFile> r = GgufFile::Parse(std::span<const uint8_t>(data, size));
  if (!r.ok()) {
    // What a user sees for a bad file; building it must be safe for any error.
    g_sink = g_sink + r.error().Message().size();
    return 0;
  }
  const GgufFile& f = r.value();
  g_sink = g_sink + TouchFile(f);
  // What `info` and `audit` do with a file, minus the threads: rendering and
  // the structure/metadata checks see every hostile field.
  ggufscope::inspect::InfoOptions opt;
  g_sink = g_sink + ggufscope::inspect::InfoText(f, "fuzz", opt).size();
  g_sink = g_sink + ggufscope::inspect::DumpJson(ggufscope::inspect::InfoJson(f, "fuzz", opt)).size();
  std::vector<ggufscope::inspect::Finding> findings;
  ggufscope::inspect::CheckStructure(f, findings);
  ggufscope::inspect::CheckMetadata(f, findings);
  uint64_t elements = 0;
  for (const auto& t : f.tensors()) elements += t.n_elements;
  if (elements <= (1u << 20)) {
    ggufscope::inspect::StatsOptions so;
    so.threads = 1;
    const auto stats = ggufscope::inspect::ComputeStats(f, so);
    ggufscope::inspect::CheckValues(f, stats, findings);
    ggufscope::inspect::CheckConsistency(f, stats, findings);
  }
  g_sink = g_sink + findings.size();
  return 0;
}
