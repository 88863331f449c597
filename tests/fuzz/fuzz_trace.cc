// libFuzzer target for the trace inputs of `compare`: the same bytes as a
// .npy file (ParseNpy), as a GGUF trace file (ReadTraceGguf) and as a name
// map (NameMap::Parse). Each must give a value or an Error, never a crash,
// a read outside the input, or an allocation out of proportion to it; an
// accepted trace compares with itself as consistent.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "compare/npy_reader.h"
#include "compare/trace_compare.h"
#include "compare/trace_io.h"
#include "gguf/mapping.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ggufscope;
  const std::span<const uint8_t> bytes(data, size);
  gguf::Result<compare::NpyArray> npy = compare::ParseNpy(bytes, "fuzz.npy");
  if (npy.ok()) {
    uint64_t n = 1;
    for (int64_t d : npy->shape) n *= static_cast<uint64_t>(d);
    Check(n == npy->data.size());
  }
  gguf::Result<gguf::GgufFile> f = gguf::GgufFile::Parse(gguf::OwnBytes(std::vector<uint8_t>(data, data + size)));
  if (f.ok()) {
    gguf::Result<compare::Trace> t = compare::ReadTraceGguf(*f, "fuzz.gguf", nullptr);
    if (t.ok()) {
      gguf::Result<compare::TraceComparison> c = compare::CompareTraces(*t, *t, {});
      Check(c.ok());
      for (const compare::PointComparison& p : c->points) {
        Check(p.verdict == compare::Verdict::kOk || p.verdict == compare::Verdict::kUnjudged);
      }
    }
  }
  (void)compare::NameMap::Parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
  return 0;
}
