// Internal to cuda_runtime: the plain element types (F32 F16 BF16 F64 and
// the integers), read as gguf::Dequantize reads them, and the switches that
// turn a runtime GgmlType into a compile-time one for the kernel templates.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cuda_runtime/quant_decode.cuh"
#include "gguf/types.h"

namespace ggufscope::cuda::internal {

// ---------------------------------------------------------------- plain types

// Element i of a plain array, converted as gguf::Dequantize converts it
// (round to nearest for F64 and the wide integers).
template <GgmlType T>
struct Plain;

template <>
struct Plain<GgmlType::kF32> {
  static constexpr int kBytes = 4;
  static GGUFSCOPE_HD float Get(const uint8_t* p, int64_t i) {
#if defined(__CUDA_ARCH__)
    return __ldg(reinterpret_cast<const float*>(p) + i);
#else
    float v;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
#endif
  }
};
template <>
struct Plain<GgmlType::kF16> {
  static constexpr int kBytes = 2;
  static GGUFSCOPE_HD float Get(const uint8_t* p, int64_t i) { return LoadF16(p + 2 * i); }
};
template <>
struct Plain<GgmlType::kBF16> {
  static constexpr int kBytes = 2;
  static GGUFSCOPE_HD float Get(const uint8_t* p, int64_t i) {
    return AsFloat(Ld16(p + 2 * i) << 16);
  }
};

// F64, I8, I16, I32, I64: static_cast<float> of the stored value.
template <typename Stored, int kSize>
struct PlainCast {
  static constexpr int kBytes = kSize;
  static GGUFSCOPE_HD float Get(const uint8_t* p, int64_t i) {
#if defined(__CUDA_ARCH__)
    using Load = std::conditional_t<std::is_same_v<Stored, int64_t>, long long, Stored>;
    return static_cast<float>(__ldg(reinterpret_cast<const Load*>(p) + i));
#else
    Stored v;
    std::memcpy(&v, p + kSize * i, kSize);
    return static_cast<float>(v);
#endif
  }
};
template <>
struct Plain<GgmlType::kF64> : PlainCast<double, 8> {};
template <>
struct Plain<GgmlType::kI8> : PlainCast<int8_t, 1> {};
template <>
struct Plain<GgmlType::kI16> : PlainCast<int16_t, 2> {};
template <>
struct Plain<GgmlType::kI32> : PlainCast<int32_t, 4> {};
template <>
struct Plain<GgmlType::kI64> : PlainCast<int64_t, 8> {};

// ---------------------------------------------------------------- dispatch

template <GgmlType T>
using TypeTag = std::integral_constant<GgmlType, T>;

// Calls f(TypeTag<t>{}) for a block type and returns its result; returns
// `otherwise` for a plain or unknown type.
template <typename F, typename R>
R VisitBlockType(GgmlType t, F&& f, R otherwise) {
  switch (t) {
#define GGUFSCOPE_BLOCK_CASE(name) \
  case GgmlType::name:             \
    return f(TypeTag<GgmlType::name>{});
    GGUFSCOPE_BLOCK_CASE(kQ4_0)
    GGUFSCOPE_BLOCK_CASE(kQ4_1)
    GGUFSCOPE_BLOCK_CASE(kQ5_0)
    GGUFSCOPE_BLOCK_CASE(kQ5_1)
    GGUFSCOPE_BLOCK_CASE(kQ8_0)
    GGUFSCOPE_BLOCK_CASE(kQ8_1)
    GGUFSCOPE_BLOCK_CASE(kQ2_K)
    GGUFSCOPE_BLOCK_CASE(kQ3_K)
    GGUFSCOPE_BLOCK_CASE(kQ4_K)
    GGUFSCOPE_BLOCK_CASE(kQ5_K)
    GGUFSCOPE_BLOCK_CASE(kQ6_K)
    GGUFSCOPE_BLOCK_CASE(kQ8_K)
    GGUFSCOPE_BLOCK_CASE(kIQ2_XXS)
    GGUFSCOPE_BLOCK_CASE(kIQ2_XS)
    GGUFSCOPE_BLOCK_CASE(kIQ2_S)
    GGUFSCOPE_BLOCK_CASE(kIQ3_XXS)
    GGUFSCOPE_BLOCK_CASE(kIQ3_S)
    GGUFSCOPE_BLOCK_CASE(kIQ1_S)
    GGUFSCOPE_BLOCK_CASE(kIQ1_M)
    GGUFSCOPE_BLOCK_CASE(kIQ4_NL)
    GGUFSCOPE_BLOCK_CASE(kIQ4_XS)
    GGUFSCOPE_BLOCK_CASE(kTQ1_0)
    GGUFSCOPE_BLOCK_CASE(kTQ2_0)
    GGUFSCOPE_BLOCK_CASE(kMXFP4)
    GGUFSCOPE_BLOCK_CASE(kNVFP4)
    GGUFSCOPE_BLOCK_CASE(kQ1_0)
    GGUFSCOPE_BLOCK_CASE(kQ2_0)
#undef GGUFSCOPE_BLOCK_CASE
    default:
      return otherwise;
  }
}

// As VisitBlockType, for the plain element types.
template <typename F, typename R>
R VisitPlainType(GgmlType t, F&& f, R otherwise) {
  switch (t) {
    case GgmlType::kF32:
      return f(TypeTag<GgmlType::kF32>{});
    case GgmlType::kF16:
      return f(TypeTag<GgmlType::kF16>{});
    case GgmlType::kBF16:
      return f(TypeTag<GgmlType::kBF16>{});
    case GgmlType::kF64:
      return f(TypeTag<GgmlType::kF64>{});
    case GgmlType::kI8:
      return f(TypeTag<GgmlType::kI8>{});
    case GgmlType::kI16:
      return f(TypeTag<GgmlType::kI16>{});
    case GgmlType::kI32:
      return f(TypeTag<GgmlType::kI32>{});
    case GgmlType::kI64:
      return f(TypeTag<GgmlType::kI64>{});
    default:
      return otherwise;
  }
}

}  // namespace ggufscope::cuda::internal
