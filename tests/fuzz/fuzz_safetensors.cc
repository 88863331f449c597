// libFuzzer target for the safetensors reader and the config.json parser of
// `import-hf`. SafetensorsFile::Parse must turn every byte string into a file
// or an Error without crashing, reading outside the input, or allocating out
// of proportion; an accepted file's tensors must convert to f32 within their
// spans. The same bytes, read as config.json text, must give ParseHfConfig a
// value or an Error, never an exception or a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "gguf/hf_import.h"
#include "gguf/mapping.h"
#include "gguf/safetensors.h"

namespace {

volatile uint64_t g_sink = 0;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ggufscope::gguf;
  Result<SafetensorsFile> f = SafetensorsFile::Parse(OwnBytes(std::vector<uint8_t>(data, data + size)));
  if (f.ok()) {
    std::vector<float> out;
    for (const StTensor& t : f->tensors()) {
      Check(t.offset >= f->data_offset() && t.offset + t.data.size() <= size);
      Check(t.data.size() == t.n_elements * StDtypeSize(t.dtype));
      Check(f->Find(t.name) != nullptr);
      out.resize(t.n_elements);  // bounded by the input: n_elements <= size / 2
      Check(ToF32(t, out).ok());
      for (float v : out) g_sink = g_sink + (v == v);
    }
  }
  Result<HfConfig> c = ParseHfConfig(std::string_view(reinterpret_cast<const char*>(data), size));
  if (c.ok()) Check(c->arch != nullptr && c->n_head % c->n_head_kv == 0);
  return 0;
}
