#include "gguf/types.h"

#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace ggufscope::gguf {
namespace {

constexpr TypeStatus A = TypeStatus::kActive;
constexpr TypeStatus R = TypeStatus::kRemoved;

// Indexed by id. QK_K = 256 for the K, IQ and TQ families.
constexpr std::array<TypeTraits, kGgmlTypeCount> kTable = {{
    {0, "F32", A, 1, 4, false},
    {1, "F16", A, 1, 2, false},
    {2, "Q4_0", A, 32, 18, true},   // f16 d, 16 B nibbles
    {3, "Q4_1", A, 32, 20, true},   // f16 d, f16 m, 16 B nibbles
    {4, "Q4_2", R, 0, 0, true},
    {5, "Q4_3", R, 0, 0, true},
    {6, "Q5_0", A, 32, 22, true},   // f16 d, u32 high bits, 16 B nibbles
    {7, "Q5_1", A, 32, 24, true},   // f16 d, f16 m, u32 high bits, 16 B nibbles
    {8, "Q8_0", A, 32, 34, true},   // f16 d, 32 x i8
    {9, "Q8_1", A, 32, 36, true},   // f16 d, f16 s (= d * sum q), 32 x i8
    {10, "Q2_K", A, 256, 84, true},
    {11, "Q3_K", A, 256, 110, true},
    {12, "Q4_K", A, 256, 144, true},
    {13, "Q5_K", A, 256, 176, true},
    {14, "Q6_K", A, 256, 210, true},
    {15, "Q8_K", A, 256, 292, true},  // f32 d, 256 x i8, 16 x i16 block sums
    {16, "IQ2_XXS", A, 256, 66, true},
    {17, "IQ2_XS", A, 256, 74, true},
    {18, "IQ3_XXS", A, 256, 98, true},
    {19, "IQ1_S", A, 256, 50, true},
    {20, "IQ4_NL", A, 32, 18, true},
    {21, "IQ3_S", A, 256, 110, true},
    {22, "IQ2_S", A, 256, 82, true},
    {23, "IQ4_XS", A, 256, 136, true},
    {24, "I8", A, 1, 1, false},
    {25, "I16", A, 1, 2, false},
    {26, "I32", A, 1, 4, false},
    {27, "I64", A, 1, 8, false},
    {28, "F64", A, 1, 8, false},
    {29, "IQ1_M", A, 256, 56, true},
    {30, "BF16", A, 1, 2, false},
    {31, "Q4_0_4_4", R, 0, 0, true},
    {32, "Q4_0_4_8", R, 0, 0, true},
    {33, "Q4_0_8_8", R, 0, 0, true},
    {34, "TQ1_0", A, 256, 54, true},
    {35, "TQ2_0", A, 256, 66, true},
    {36, "IQ4_NL_4_4", R, 0, 0, true},
    {37, "IQ4_NL_4_8", R, 0, 0, true},
    {38, "IQ4_NL_8_8", R, 0, 0, true},
    {39, "MXFP4", A, 32, 17, true},  // e8m0 scale, 16 B of e2m1 nibbles
    {40, "NVFP4", A, 64, 36, true},  // 4 x ue4m3 scales (one per 16), 32 B of e2m1 nibbles
    {41, "Q1_0", A, 128, 18, true},  // f16 d, 128 sign bits
    {42, "Q2_0", A, 64, 18, true},   // f16 d, 64 x 2-bit codes (q - 1) * d
}};

static_assert([] {
  for (uint32_t i = 0; i < kTable.size(); ++i) {
    if (kTable[i].id != i) return false;
  }
  return true;
}());

}  // namespace

std::optional<TypeTraits> LookupType(uint32_t id) {
  if (id >= kTable.size()) return std::nullopt;
  return kTable[id];
}

const TypeTraits& Traits(GgmlType type) {
  const auto id = static_cast<uint32_t>(type);
  if (id >= kTable.size() || kTable[id].status != TypeStatus::kActive) {
    std::fprintf(stderr, "%s:%d: Traits() called with invalid ggml type %u\n", __FILE__, __LINE__,
                 id);
    std::abort();
  }
  return kTable[id];
}

std::string_view TypeName(GgmlType type) {
  const auto id = static_cast<uint32_t>(type);
  return id < kTable.size() ? kTable[id].name : std::string_view("?");
}

std::optional<GgmlType> TypeFromName(std::string_view name) {
  for (const TypeTraits& t : kTable) {
    if (t.status != TypeStatus::kActive || t.name.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i) {
      same = std::toupper(static_cast<unsigned char>(name[i])) == t.name[i];
    }
    if (same) return static_cast<GgmlType>(t.id);
  }
  return std::nullopt;
}

std::optional<uint64_t> BytesFor(GgmlType type, uint64_t n_elements) {
  const auto id = static_cast<uint32_t>(type);
  if (id >= kTable.size() || kTable[id].status != TypeStatus::kActive) return std::nullopt;
  const TypeTraits& t = kTable[id];
  if (n_elements % t.block_size != 0) return std::nullopt;
  const uint64_t blocks = n_elements / t.block_size;
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(blocks, uint64_t{t.type_size}, &bytes)) return std::nullopt;
  return bytes;
}

}  // namespace ggufscope::gguf
