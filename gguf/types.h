// The ggml tensor type table: every id GGUF files can carry (0..42), with the
// block geometry needed to size tensors. The numbers are facts of the ggml
// format (ggml.h / ggml-common.h) and are checked against gguf-py's
// GGML_QUANT_SIZES in tests/oracle.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ggufscope::gguf {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  // 4 (Q4_2) and 5 (Q4_3) were removed from ggml.
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  // 31..33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) were removed: repacking is now done at load time.
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  // 36..38 (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8) were removed likewise.
  kMXFP4 = 39,
  kNVFP4 = 40,
  kQ1_0 = 41,
  kQ2_0 = 42,
};

inline constexpr uint32_t kGgmlTypeCount = 43;

enum class TypeStatus : uint8_t {
  kActive,   // a type files may carry today
  kRemoved,  // an id ggml once used and no longer accepts
};

struct TypeTraits {
  uint32_t id;
  std::string_view name;
  TypeStatus status;
  uint32_t block_size;  // elements per block (1 for plain scalars); 0 if removed
  uint32_t type_size;   // bytes per block; 0 if removed
  bool is_quantized;
};

// The traits of `id`, or nullopt when the id is past the table (unknown).
// Removed ids return traits with status kRemoved.
std::optional<TypeTraits> LookupType(uint32_t id);

// Traits of a known, active type. Aborts on a removed or unknown id: use it
// only with values that came out of a parsed, validated file.
const TypeTraits& Traits(GgmlType type);

std::string_view TypeName(GgmlType type);

// Parses a type name ("Q4_K", case-insensitive); nullopt if unknown.
std::optional<GgmlType> TypeFromName(std::string_view name);

// Bytes taken by `n_elements` elements of `type` laid out in whole blocks.
// nullopt if n_elements is not a multiple of the block size or on overflow.
std::optional<uint64_t> BytesFor(GgmlType type, uint64_t n_elements);

}  // namespace ggufscope::gguf
