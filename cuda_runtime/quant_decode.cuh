// Internal to cuda_runtime: one decoder per ggml block type, shared by the
// dequantization, embedding and mat-vec kernels.
//
// (type_dispatch.cuh adds the plain types and the runtime-to-template
// switches.)
//
// Unit of work: 32 consecutive elements of a block (every block size is a
// multiple of 32). Quant<T>::Unit(block, u, grids, v) writes elements
// 32u .. 32u+31 of the block at `block` to v[0..31], in element order.
//
// Exactness: each value is computed with the f32 operations of
// gguf/dequant.cc, in the same order (the layouts and formulas are spelled
// out there, above each CPU kernel). These files are compiled with
// --fmad=false so no multiply and add fuse into one differently rounded FMA;
// small integer codes convert to float exactly (SmallIntToFloat). So a
// dequantized value is bit-identical to gguf::Dequantize's for every finite
// input. (NaN payloads may differ: the GPU's float operations return a
// canonical NaN.)
//
// The decoders are __host__ __device__ so they can be checked on a machine
// without a GPU; the loads use the read-only cache (__ldg) on the device.
// Block data is read with 8- and 16-bit loads: blocks are only 2-byte
// aligned (Q4_0 is 18 bytes), MXFP4 (17 bytes) not even that.
#pragma once

#include <cstdint>
#include <cstring>

#include "cuda_runtime/iq_grids.cuh"
#include "gguf/types.h"

#define GGUFSCOPE_HD __host__ __device__ __forceinline__
// Unrolled on the device (so v[] stays in registers); the host compiler
// knows no such pragma.
#if defined(__CUDA_ARCH__)
#define GGUFSCOPE_UNROLL _Pragma("unroll")
#else
#define GGUFSCOPE_UNROLL
#endif

namespace ggufscope::cuda::internal {

using gguf::GgmlType;

// ---------------------------------------------------------------- loads and bits

GGUFSCOPE_HD uint32_t Ld8(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(p);
#else
  return *p;
#endif
}

// p must be 2-byte aligned.
GGUFSCOPE_HD uint32_t Ld16(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(reinterpret_cast<const unsigned short*>(p));
#else
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
#endif
}

// Little-endian u32 at a 2-byte aligned address.
GGUFSCOPE_HD uint32_t Ld32A2(const uint8_t* p) { return Ld16(p) | (Ld16(p + 2) << 16); }

GGUFSCOPE_HD float AsFloat(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

GGUFSCOPE_HD uint32_t AsBits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

GGUFSCOPE_HD uint32_t Popcount(uint32_t v) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint32_t>(__popc(v));
#else
  return static_cast<uint32_t>(__builtin_popcount(v));
#endif
}

// float(q), exactly, for |q| < 2^22, in two cheap ALU operations instead of
// a (quarter-rate) int-to-float conversion: 1.5 * 2^23 + q has q in its low
// mantissa bits, and subtracting 1.5 * 2^23 leaves q exactly.
GGUFSCOPE_HD float SmallIntToFloat(int q) {
  return AsFloat(0x4B400000u + static_cast<uint32_t>(q)) - 12582912.0f;
}

// IEEE half to float, as gguf/dequant.cc's HalfToFloatInline (integer
// operations plus one exact subtraction for subnormals).
GGUFSCOPE_HD float HalfBitsToFloat(uint32_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  const uint32_t em = (h & 0x7FFFu) << 13;
  const uint32_t exp = em & 0x0F800000u;
  if (exp == 0x0F800000u) return AsFloat(sign | 0x7F800000u | em);  // inf / NaN, payload kept
  if (exp == 0) return AsFloat(sign | AsBits(AsFloat(em + (113u << 23)) - 0x1p-14f));
  return AsFloat(sign | (em + ((127u - 15u) << 23)));
}

GGUFSCOPE_HD float LoadF16(const uint8_t* p) { return HalfBitsToFloat(Ld16(p)); }

// Sixteen int8 codebook values packed four to a word, little-endian.
struct Codebook16 {
  uint32_t w0, w1, w2, w3;
};
constexpr uint32_t Pack4(int a, int b, int c, int d) {
  return (static_cast<uint32_t>(a) & 0xFF) | ((static_cast<uint32_t>(b) & 0xFF) << 8) |
         ((static_cast<uint32_t>(c) & 0xFF) << 16) | ((static_cast<uint32_t>(d) & 0xFF) << 24);
}
// IQ4_NL / IQ4_XS non-uniform grid (ggml's kvalues_iq4nl).
constexpr Codebook16 kIq4nl{Pack4(-127, -104, -83, -65), Pack4(-49, -35, -22, -10),
                            Pack4(1, 13, 25, 38), Pack4(53, 69, 89, 113)};
// MXFP4 / NVFP4: E2M1 values doubled (ggml's kvalues_mxfp4).
constexpr Codebook16 kE2m1{Pack4(0, 1, 2, 3), Pack4(4, 6, 8, 12), Pack4(0, -1, -2, -3),
                           Pack4(-4, -6, -8, -12)};

// Codebook entry i (0..15), in registers: byte permutes instead of a table
// in memory that divergent indices would serialize on.
GGUFSCOPE_HD int Pick16(Codebook16 c, uint32_t i) {
#if defined(__CUDA_ARCH__)
  const uint32_t lo = __byte_perm(c.w0, c.w1, i & 7);
  const uint32_t hi = __byte_perm(c.w2, c.w3, i & 7);
  return static_cast<int8_t>(((i & 8) ? hi : lo) & 0xFF);
#else
  const uint32_t w[4] = {c.w0, c.w1, c.w2, c.w3};
  return static_cast<int8_t>((w[i >> 2] >> (8 * (i & 3))) & 0xFF);
#endif
}

// (d * q) + m; a NaN product passes through as is (gguf/dequant.cc MulAdd).
GGUFSCOPE_HD float MulAddKeepNan(float d, float q, float m) {
  const float p = d * q;
  const float sum = p + m;
  return p != p ? p : sum;
}

// IQ2/IQ3 sign indices: 7 stored bits, the 8th is even parity.
GGUFSCOPE_HD uint32_t KSigns(uint32_t i) { return i | ((Popcount(i) & 1u) << 7); }

// v with its sign bit flipped when `bit` is set, unless the scale is NaN
// (flip_mask 0), as gguf/dequant.cc FlipSign.
GGUFSCOPE_HD float FlipSign(float v, uint32_t bit, uint32_t flip_mask) {
  return AsFloat(AsBits(v) ^ ((bit << 31) & flip_mask));
}
GGUFSCOPE_HD uint32_t SignFlipMask(float scale) { return scale == scale ? 0x80000000u : 0u; }

// An 8-byte grid row (8-byte aligned) as two little-endian words.
GGUFSCOPE_HD void LoadGrid8(const uint8_t* row, uint32_t* lo, uint32_t* hi) {
#if defined(__CUDA_ARCH__)
  const uint2 v = __ldg(reinterpret_cast<const uint2*>(row));
  *lo = v.x;
  *hi = v.y;
#else
  std::memcpy(lo, row, 4);
  std::memcpy(hi, row + 4, 4);
#endif
}
GGUFSCOPE_HD uint32_t LoadGrid4(const uint8_t* row) {
#if defined(__CUDA_ARCH__)
  return __ldg(reinterpret_cast<const unsigned int*>(row));
#else
  uint32_t v;
  std::memcpy(&v, row, 4);
  return v;
#endif
}
GGUFSCOPE_HD uint32_t ByteOf(uint32_t w, int k) { return (w >> (8 * k)) & 0xFFu; }

// Writes 8 values db * grid[j] with sign bit j of `signs` (grid: two words).
GGUFSCOPE_HD void EmitSigned8(float db, uint32_t flip, uint32_t g_lo, uint32_t g_hi, uint32_t signs,
                              float* v) {
  GGUFSCOPE_UNROLL
  for (int j = 0; j < 8; ++j) {
    const uint32_t g = ByteOf(j < 4 ? g_lo : g_hi, j & 3);
    v[j] = FlipSign(db * SmallIntToFloat(static_cast<int>(g)), (signs >> j) & 1u, flip);
  }
}

// Writes 8 values dl * (grid[j] + delta), grid signed bytes.
GGUFSCOPE_HD void EmitIq1(float dl, float delta, uint32_t g_lo, uint32_t g_hi, float* v) {
  GGUFSCOPE_UNROLL
  for (int j = 0; j < 8; ++j) {
    const int g = static_cast<int8_t>(ByteOf(j < 4 ? g_lo : g_hi, j & 3));
    v[j] = dl * (SmallIntToFloat(g) + delta);
  }
}

// +0.125 or -0.125 (IQ1's grid offset).
GGUFSCOPE_HD float Iq1Delta(uint32_t negative) {
  return AsFloat(0x3E000000u | (negative != 0 ? 0x80000000u : 0u));
}

// ---------------------------------------------------------------- block decoders

template <GgmlType T>
struct Quant;  // specialized for every block type below

template <>
struct Quant<GgmlType::kQ4_0> {
  static constexpr int kBlock = 32, kBytes = 18;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int, const IqGrids&, float* v) {
    const float d = LoadF16(b);
    GGUFSCOPE_UNROLL
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = Ld32A2(b + 2 + 4 * i);
      GGUFSCOPE_UNROLL
      for (int k = 0; k < 4; ++k) {
        const uint32_t q = ByteOf(w, k);
        v[4 * i + k] = d * SmallIntToFloat(static_cast<int>(q & 0xF) - 8);
        v[4 * i + k + 16] = d * SmallIntToFloat(static_cast<int>(q >> 4) - 8);
      }
    }
  }
};

template <>
struct Quant<GgmlType::kQ4_1> {
  static constexpr int kBlock = 32, kBytes = 20;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int, const IqGrids&, float* v) {
    const float d = LoadF16(b);
    const float m = LoadF16(b + 2);
    GGUFSCOPE_UNROLL
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = Ld32A2(b + 4 + 4 * i);
      GGUFSCOPE_UNROLL
      for (int k = 0; k < 4; ++k) {
        const uint32_t q = ByteOf(w, k);
        v[4 * i + k] = MulAddKeepNan(d, SmallIntToFloat(static_cast<int>(q & 0xF)), m);
        v[4 * i + k + 16] = MulAddKeepNan(d, SmallIntToFloat(static_cast<int>(q >> 4)), m);
      }
    }
  }
};

template <>
struct Quant<GgmlType::kQ5_0> {
  static constexpr int kBlock = 32, kBytes = 22;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int, const IqGrids&, float* v) {
    const float d = LoadF16(b);
    const uint32_t qh = Ld32A2(b + 2);
    GGUFSCOPE_UNROLL
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = Ld32A2(b + 6 + 4 * i);
      GGUFSCOPE_UNROLL
      for (int k = 0; k < 4; ++k) {
        const int j = 4 * i + k;
        const uint32_t q = ByteOf(w, k);
        const uint32_t lo = (q & 0xF) | (((qh >> j) & 1u) << 4);
        const uint32_t hi = (q >> 4) | (((qh >> (j + 16)) & 1u) << 4);
        v[j] = d * SmallIntToFloat(static_cast<int>(lo) - 16);
        v[j + 16] = d * SmallIntToFloat(static_cast<int>(hi) - 16);
      }
    }
  }
};

template <>
struct Quant<GgmlType::kQ5_1> {
  static constexpr int kBlock = 32, kBytes = 24;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int, const IqGrids&, float* v) {
    const float d = LoadF16(b);
    const float m = LoadF16(b + 2);
    const uint32_t qh = Ld32A2(b + 4);
    GGUFSCOPE_UNROLL
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = Ld32A2(b + 8 + 4 * i);
      GGUFSCOPE_UNROLL
      for (int k = 0; k < 4; ++k) {
        const int j = 4 * i + k;
        const uint32_t q = ByteOf(w, k);
        const uint32_t lo = (q & 0xF) | (((qh >> j) & 1u) << 4);
        const uint32_t hi = (q >> 4) | (((qh >> (j + 16)) & 1u) << 4);
        v[j] = MulAddKeepNan(d, SmallIntToFloat(static_cast<int>(lo)), m);
        v[j + 16] = MulAddKeepNan(d, SmallIntToFloat(static_cast<int>(hi)), m);
      }
    }
  }
};

// Q8_0 (qs at 2) and Q8_1 (f16 s at 2, qs at 4): value = d * q.
template <int kQsOffset, int kBlockBytes>
struct Q8Block {
  static constexpr int kBlock = 32, kBytes = kBlockBytes;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int, const IqGrids&, float* v) {
    const float d = LoadF16(b);
    GGUFSCOPE_UNROLL
    for (int i = 0; i < 8; ++i) {
      const uint32_t w = Ld32A2(b + kQsOffset + 4 * i);
      GGUFSCOPE_UNROLL
      for (int k = 0; k < 4; ++k) {
        v[4 * i + k] = d * SmallIntToFloat(static_cast<int8_t>(ByteOf(w, k)));
      }
    }
  }
};
template <>
struct Quant<GgmlType::kQ8_0> : Q8Block<2, 34> {};
template <>
struct Quant<GgmlType::kQ8_1> : Q8Block<4, 36> {};

template <>
struct Quant<GgmlType::kIQ4_NL> {
  static constexpr int kBlock = 32, kBytes = 18;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int, const IqGrids&, float* v) {
    const float d = LoadF16(b);
    GGUFSCOPE_UNROLL
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = Ld32A2(b + 2 + 4 * i);
      GGUFSCOPE_UNROLL
      for (int k = 0; k < 4; ++k) {
        const uint32_t q = ByteOf(w, k);
        v[4 * i + k] = d * SmallIntToFloat(Pick16(kIq4nl, q & 0xF));
        v[4 * i + k + 16] = d * SmallIntToFloat(Pick16(kIq4nl, q >> 4));
      }
    }
  }
};

// 2^(e-127) / 2 as float bits (ggml_e8m0_to_fp32_half).
GGUFSCOPE_HD float E8m0Half(uint32_t e) {
  return AsFloat(e < 2 ? (0x00200000u << e) : ((e - 1) << 23));
}

template <>
struct Quant<GgmlType::kMXFP4> {
  static constexpr int kBlock = 32, kBytes = 17;  // odd: byte loads only
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int, const IqGrids&, float* v) {
    const float d = E8m0Half(Ld8(b));
    GGUFSCOPE_UNROLL
    for (int j = 0; j < 16; ++j) {
      const uint32_t q = Ld8(b + 1 + j);
      v[j] = d * SmallIntToFloat(Pick16(kE2m1, q & 0xF));
      v[j + 16] = d * SmallIntToFloat(Pick16(kE2m1, q >> 4));
    }
  }
};

// Unsigned E4M3 (bit 7 ignored) times 1/2; 0x00 and 0x7F decode as 0.
GGUFSCOPE_HD float Ue4m3Half(uint32_t x) {
  if (x == 0 || x == 0x7F) return 0.0f;
  const uint32_t exp = (x >> 3) & 0xF;
  const float man = SmallIntToFloat(static_cast<int>(x & 7));
  const float raw = exp == 0 ? man * 0x1p-9f : (1.0f + man / 8.0f) * AsFloat((exp - 7 + 127) << 23);
  return raw * 0.5f;
}

template <>
struct Quant<GgmlType::kNVFP4> {
  static constexpr int kBlock = 64, kBytes = 36;
  // Unit u is sub-blocks 2u and 2u+1 (16 elements each).
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids&, float* v) {
    GGUFSCOPE_UNROLL
    for (int h = 0; h < 2; ++h) {
      const int s = 2 * u + h;
      const float d = Ue4m3Half(Ld8(b + s));
      const uint32_t w0 = Ld32A2(b + 4 + 8 * s), w1 = Ld32A2(b + 8 + 8 * s);
      GGUFSCOPE_UNROLL
      for (int j = 0; j < 8; ++j) {
        const uint32_t q = ByteOf(j < 4 ? w0 : w1, j & 3);
        v[16 * h + j] = d * SmallIntToFloat(Pick16(kE2m1, q & 0xF));
        v[16 * h + j + 8] = d * SmallIntToFloat(Pick16(kE2m1, q >> 4));
      }
    }
  }
};

template <>
struct Quant<GgmlType::kQ1_0> {
  static constexpr int kBlock = 128, kBytes = 18;
  // Bit set gives +d, clear -d (the sign bit of d flipped, NaN included).
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids&, float* v) {
    const uint32_t d_bits = AsBits(LoadF16(b));
    const uint32_t bits = Ld32A2(b + 2 + 4 * u);
    GGUFSCOPE_UNROLL
    for (int j = 0; j < 32; ++j) v[j] = AsFloat(d_bits ^ ((~(bits >> j) & 1u) << 31));
  }
};

template <>
struct Quant<GgmlType::kQ2_0> {
  static constexpr int kBlock = 64, kBytes = 18;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids&, float* v) {
    const float d = LoadF16(b);
    GGUFSCOPE_UNROLL
    for (int i = 0; i < 2; ++i) {
      const uint32_t w = Ld32A2(b + 2 + 8 * u + 4 * i);
      GGUFSCOPE_UNROLL
      for (int j = 0; j < 16; ++j) {
        const int code = static_cast<int>((w >> (2 * j)) & 3u) - 1;
        v[16 * i + j] = SmallIntToFloat(code) * d;
      }
    }
  }
};

// ---------------------------------------------------------------- K quants

template <>
struct Quant<GgmlType::kQ2_K> {
  static constexpr int kBlock = 256, kBytes = 84;
  // Unit u = groups 2u, 2u+1 of 16: half h = u/4, shift s = u%4.
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids&, float* v) {
    const float d = LoadF16(b + 80);
    const float dmin = LoadF16(b + 82);
    const int h = u / 4, s = u % 4;
    GGUFSCOPE_UNROLL
    for (int r = 0; r < 2; ++r) {
      const uint32_t sc = Ld8(b + 2 * u + r);
      const float dl = d * SmallIntToFloat(static_cast<int>(sc & 0xF));
      const float ml = dmin * SmallIntToFloat(static_cast<int>(sc >> 4));
      GGUFSCOPE_UNROLL
      for (int i = 0; i < 4; ++i) {
        const uint32_t w = Ld32A2(b + 16 + 32 * h + 16 * r + 4 * i);
        GGUFSCOPE_UNROLL
        for (int k = 0; k < 4; ++k) {
          const int q = static_cast<int>((ByteOf(w, k) >> (2 * s)) & 3u);
          v[16 * r + 4 * i + k] = dl * SmallIntToFloat(q) - ml;
        }
      }
    }
  }
};

template <>
struct Quant<GgmlType::kQ3_K> {
  static constexpr int kBlock = 256, kBytes = 110;
  // Unit u = groups 2u, 2u+1 of 16: half h = u/4, shift s = u%4; the high
  // bit of element l of the unit is bit u of hmask[l].
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids&, float* v) {
    const float d = LoadF16(b + 108);
    const int h = u / 4, s = u % 4;
    GGUFSCOPE_UNROLL
    for (int r = 0; r < 2; ++r) {
      const int g = 2 * u + r;
      const int lo = static_cast<int>((Ld8(b + 96 + g % 8) >> (4 * (g / 8))) & 0xF);
      const int hi = static_cast<int>((Ld8(b + 96 + 8 + g % 4) >> (2 * (g / 4))) & 3);
      const float dl = d * SmallIntToFloat((lo | (hi << 4)) - 32);
      GGUFSCOPE_UNROLL
      for (int i = 0; i < 4; ++i) {
        const uint32_t wq = Ld32A2(b + 32 + 32 * h + 16 * r + 4 * i);
        const uint32_t wm = Ld32A2(b + 16 * r + 4 * i);
        GGUFSCOPE_UNROLL
        for (int k = 0; k < 4; ++k) {
          const int low = static_cast<int>((ByteOf(wq, k) >> (2 * s)) & 3u);
          const int sub = ((ByteOf(wm, k) >> u) & 1u) ? 0 : 4;
          v[16 * r + 4 * i + k] = dl * SmallIntToFloat(low - sub);
        }
      }
    }
  }
};

// Q4_K/Q5_K's 6-bit scale and min of sub-block j from the 12 bytes at s.
GGUFSCOPE_HD void ScaleMinK4(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = static_cast<int>(Ld8(s + j) & 0x3F);
    *m = static_cast<int>(Ld8(s + j + 4) & 0x3F);
  } else {
    *sc = static_cast<int>((Ld8(s + j + 4) & 0xF) | ((Ld8(s + j - 4) >> 2) & 0x30));
    *m = static_cast<int>((Ld8(s + j + 4) >> 4) | ((Ld8(s + j) >> 2) & 0x30));
  }
}

// Q4_K (144 B) and Q5_K (176 B, with qh[32]): unit j = sub-block j.
template <bool kHasHighBit>
struct Q45K {
  static constexpr int kBlock = 256, kBytes = kHasHighBit ? 176 : 144;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int j, const IqGrids&, float* v) {
    const float d = LoadF16(b);
    const float dmin = LoadF16(b + 2);
    int sc, m;
    ScaleMinK4(b + 4, j, &sc, &m);
    const float dl = d * SmallIntToFloat(sc);
    const float ml = dmin * SmallIntToFloat(m);
    const uint8_t* qs = b + (kHasHighBit ? 48 : 16) + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    GGUFSCOPE_UNROLL
    for (int i = 0; i < 8; ++i) {
      const uint32_t w = Ld32A2(qs + 4 * i);
      uint32_t wh = 0;
      if constexpr (kHasHighBit) wh = Ld32A2(b + 16 + 4 * i);
      GGUFSCOPE_UNROLL
      for (int k = 0; k < 4; ++k) {
        uint32_t q = (ByteOf(w, k) >> shift) & 0xF;
        if constexpr (kHasHighBit) q |= ((ByteOf(wh, k) >> j) & 1u) << 4;
        v[4 * i + k] = dl * SmallIntToFloat(static_cast<int>(q)) - ml;
      }
    }
  }
};
template <>
struct Quant<GgmlType::kQ4_K> : Q45K<false> {};
template <>
struct Quant<GgmlType::kQ5_K> : Q45K<true> {};

template <>
struct Quant<GgmlType::kQ6_K> {
  static constexpr int kBlock = 256, kBytes = 210;
  // Unit u: half h = u/4, k = u%4. Element l takes nibble k/2 of
  // ql[64h + 32(k%2) + l], bits 2k.. of qh[32h + l], scale sc[8h + 2k + l/16].
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids&, float* v) {
    const float d = LoadF16(b + 208);
    const int h = u / 4, k = u % 4;
    const uint8_t* ql = b + 64 * h + 32 * (k % 2);
    const uint8_t* qh = b + 128 + 32 * h;
    GGUFSCOPE_UNROLL
    for (int r = 0; r < 2; ++r) {
      const float dl = d * SmallIntToFloat(static_cast<int8_t>(Ld8(b + 192 + 8 * h + 2 * k + r)));
      GGUFSCOPE_UNROLL
      for (int i = 0; i < 4; ++i) {
        const uint32_t wl = Ld32A2(ql + 16 * r + 4 * i);
        const uint32_t wh = Ld32A2(qh + 16 * r + 4 * i);
        GGUFSCOPE_UNROLL
        for (int c = 0; c < 4; ++c) {
          const uint32_t q =
              ((ByteOf(wl, c) >> (4 * (k / 2))) & 0xF) | (((ByteOf(wh, c) >> (2 * k)) & 3u) << 4);
          v[16 * r + 4 * i + c] = dl * SmallIntToFloat(static_cast<int>(q) - 32);
        }
      }
    }
  }
};

template <>
struct Quant<GgmlType::kQ8_K> {
  static constexpr int kBlock = 256, kBytes = 292;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids&, float* v) {
    const float d = AsFloat(Ld32A2(b));
    GGUFSCOPE_UNROLL
    for (int i = 0; i < 8; ++i) {
      const uint32_t w = Ld32A2(b + 4 + 32 * u + 4 * i);
      GGUFSCOPE_UNROLL
      for (int k = 0; k < 4; ++k) {
        v[4 * i + k] = d * SmallIntToFloat(static_cast<int8_t>(ByteOf(w, k)));
      }
    }
  }
};

// ---------------------------------------------------------------- ternary

GGUFSCOPE_HD float Tq1Digit(uint32_t byte, uint32_t pow3) {
  const uint32_t shifted = (byte * pow3) & 0xFFu;
  return SmallIntToFloat(static_cast<int>((shifted * 3u) >> 8) - 1);
}
GGUFSCOPE_HD uint32_t Pow3(int k) {
  return k == 0 ? 1 : k == 1 ? 3 : k == 2 ? 9 : k == 3 ? 27 : 81;
}

template <>
struct Quant<GgmlType::kTQ1_0> {
  static constexpr int kBlock = 256, kBytes = 54;
  // Elements 0..159: digit e/32 of qs[e%32]; 160..239: digit (e-160)/16 of
  // qs[32 + e%16]; 240..255: digit (e-240)/4 of qh[e%4].
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids&, float* v) {
    const float d = LoadF16(b + 52);
    GGUFSCOPE_UNROLL
    for (int l = 0; l < 32; ++l) {
      const int e = 32 * u + l;
      uint32_t byte, pow3;
      if (e < 160) {
        byte = Ld8(b + (e % 32));
        pow3 = Pow3(e / 32);
      } else if (e < 240) {
        byte = Ld8(b + 32 + (e - 160) % 16);
        pow3 = Pow3((e - 160) / 16);
      } else {
        byte = Ld8(b + 48 + (e - 240) % 4);
        pow3 = Pow3((e - 240) / 4);
      }
      v[l] = d * Tq1Digit(byte, pow3);
    }
  }
};

template <>
struct Quant<GgmlType::kTQ2_0> {
  static constexpr int kBlock = 256, kBytes = 66;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids&, float* v) {
    const float d = LoadF16(b + 64);
    const int h = u / 4, s = u % 4;
    GGUFSCOPE_UNROLL
    for (int i = 0; i < 8; ++i) {
      const uint32_t w = Ld32A2(b + 32 * h + 4 * i);
      GGUFSCOPE_UNROLL
      for (int k = 0; k < 4; ++k) {
        const int q = static_cast<int>((ByteOf(w, k) >> (2 * s)) & 3u);
        v[4 * i + k] = d * SmallIntToFloat(q - 1);
      }
    }
  }
};

// ---------------------------------------------------------------- IQ quants

template <>
struct Quant<GgmlType::kIQ2_XXS> {
  static constexpr int kBlock = 256, kBytes = 66;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids& g, float* v) {
    const float d = LoadF16(b);
    const uint32_t aux0 = Ld32A2(b + 2 + 8 * u);
    const uint32_t aux1 = Ld32A2(b + 6 + 8 * u);
    const float db = d * (0.5f + SmallIntToFloat(static_cast<int>(aux1 >> 28))) * 0.25f;
    const uint32_t flip = SignFlipMask(db);
    GGUFSCOPE_UNROLL
    for (int l = 0; l < 4; ++l) {
      uint32_t lo, hi;
      LoadGrid8(g.iq2xxs + 8 * ByteOf(aux0, l), &lo, &hi);
      EmitSigned8(db, flip, lo, hi, KSigns((aux1 >> (7 * l)) & 0x7F), v + 8 * l);
    }
  }
};

// IQ2_XS and IQ2_S: unit u is entries 4u..4u+3 (8 elements each); the two
// 4-bit scales are the nibbles of scales[u].
template <>
struct Quant<GgmlType::kIQ2_XS> {
  static constexpr int kBlock = 256, kBytes = 74;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids& g, float* v) {
    const float d = LoadF16(b);
    const uint32_t scales = Ld8(b + 66 + u);
    GGUFSCOPE_UNROLL
    for (int half = 0; half < 2; ++half) {
      const int ls = static_cast<int>((scales >> (4 * half)) & 0xF);
      const float db = d * (0.5f + SmallIntToFloat(ls)) * 0.25f;
      const uint32_t flip = SignFlipMask(db);
      GGUFSCOPE_UNROLL
      for (int e = 0; e < 2; ++e) {
        const int k = 4 * u + 2 * half + e;
        const uint32_t q = Ld16(b + 2 + 2 * k);
        uint32_t lo, hi;
        LoadGrid8(g.iq2xs + 8 * (q & 511), &lo, &hi);
        EmitSigned8(db, flip, lo, hi, KSigns(q >> 9), v + 8 * (2 * half + e));
      }
    }
  }
};

template <>
struct Quant<GgmlType::kIQ2_S> {
  static constexpr int kBlock = 256, kBytes = 82;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids& g, float* v) {
    const float d = LoadF16(b);
    const uint32_t scales = Ld8(b + 74 + u);
    const uint32_t qh = Ld8(b + 66 + u);
    GGUFSCOPE_UNROLL
    for (int half = 0; half < 2; ++half) {
      const int ls = static_cast<int>((scales >> (4 * half)) & 0xF);
      const float db = d * (0.5f + SmallIntToFloat(ls)) * 0.25f;
      const uint32_t flip = SignFlipMask(db);
      GGUFSCOPE_UNROLL
      for (int e = 0; e < 2; ++e) {
        const int k = 4 * u + 2 * half + e;
        const uint32_t idx = Ld8(b + 2 + k) | (((qh >> (2 * (k % 4))) & 3u) << 8);
        uint32_t lo, hi;
        LoadGrid8(g.iq2s + 8 * idx, &lo, &hi);
        EmitSigned8(db, flip, lo, hi, Ld8(b + 34 + k), v + 8 * (2 * half + e));
      }
    }
  }
};

template <>
struct Quant<GgmlType::kIQ3_XXS> {
  static constexpr int kBlock = 256, kBytes = 98;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids& g, float* v) {
    const float d = LoadF16(b);
    const uint32_t aux = Ld32A2(b + 66 + 4 * u);
    const float db = d * (0.5f + SmallIntToFloat(static_cast<int>(aux >> 28))) * 0.5f;
    const uint32_t flip = SignFlipMask(db);
    GGUFSCOPE_UNROLL
    for (int l = 0; l < 4; ++l) {
      const uint32_t lo = LoadGrid4(g.iq3xxs + 4 * Ld8(b + 2 + 8 * u + 2 * l));
      const uint32_t hi = LoadGrid4(g.iq3xxs + 4 * Ld8(b + 2 + 8 * u + 2 * l + 1));
      EmitSigned8(db, flip, lo, hi, KSigns((aux >> (7 * l)) & 0x7F), v + 8 * l);
    }
  }
};

template <>
struct Quant<GgmlType::kIQ3_S> {
  static constexpr int kBlock = 256, kBytes = 110;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids& g, float* v) {
    const float d = LoadF16(b);
    const int ls = static_cast<int>((Ld8(b + 106 + u / 2) >> (4 * (u % 2))) & 0xF);
    const float db = d * SmallIntToFloat(1 + 2 * ls);
    const uint32_t flip = SignFlipMask(db);
    const uint32_t qh = Ld8(b + 66 + u);
    GGUFSCOPE_UNROLL
    for (int l = 0; l < 4; ++l) {
      const int gi = 8 * u + 2 * l;
      const uint32_t i0 = Ld8(b + 2 + gi) | (((qh >> (2 * l)) & 1u) << 8);
      const uint32_t i1 = Ld8(b + 2 + gi + 1) | (((qh >> (2 * l + 1)) & 1u) << 8);
      EmitSigned8(db, flip, LoadGrid4(g.iq3s + 4 * i0), LoadGrid4(g.iq3s + 4 * i1),
                  Ld8(b + 74 + 4 * u + l), v + 8 * l);
    }
  }
};

template <>
struct Quant<GgmlType::kIQ1_S> {
  static constexpr int kBlock = 256, kBytes = 50;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids& g, float* v) {
    const float d = LoadF16(b);
    const uint32_t qh = Ld16(b + 34 + 2 * u);
    const float dl = d * SmallIntToFloat(static_cast<int>(2 * ((qh >> 12) & 7) + 1));
    const float delta = Iq1Delta(qh & 0x8000);
    GGUFSCOPE_UNROLL
    for (int l = 0; l < 4; ++l) {
      const uint32_t idx = Ld8(b + 2 + 4 * u + l) | (((qh >> (3 * l)) & 7u) << 8);
      uint32_t lo, hi;
      LoadGrid8(reinterpret_cast<const uint8_t*>(g.iq1s) + 8 * idx, &lo, &hi);
      EmitIq1(dl, delta, lo, hi, v + 8 * l);
    }
  }
};

template <>
struct Quant<GgmlType::kIQ1_M> {
  static constexpr int kBlock = 256, kBytes = 56;
  // Unit u = runs 2u, 2u+1 of 16 elements, one 3-bit scale per run.
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids& g, float* v) {
    uint32_t sc[4];
    GGUFSCOPE_UNROLL
    for (int i = 0; i < 4; ++i) sc[i] = Ld16(b + 48 + 2 * i);
    const uint32_t d_bits =
        (sc[0] >> 12) | ((sc[1] >> 8) & 0xF0) | ((sc[2] >> 4) & 0xF00) | (sc[3] & 0xF000);
    const float d = HalfBitsToFloat(d_bits);
    GGUFSCOPE_UNROLL
    for (int rr = 0; rr < 2; ++rr) {
      const int r = 2 * u + rr;
      const uint32_t s = (sc[r / 4] >> (3 * (r % 4))) & 7;
      const float dl = d * SmallIntToFloat(static_cast<int>(2 * s + 1));
      const uint32_t qh = Ld8(b + 32 + r);
      const uint32_t lo = qh & 0xF, hi = qh >> 4;
      uint32_t g0, g1;
      LoadGrid8(reinterpret_cast<const uint8_t*>(g.iq1s) + 8 * (Ld8(b + 2 * r) | ((lo & 7) << 8)),
                &g0, &g1);
      EmitIq1(dl, Iq1Delta(lo & 8), g0, g1, v + 16 * rr);
      LoadGrid8(
          reinterpret_cast<const uint8_t*>(g.iq1s) + 8 * (Ld8(b + 2 * r + 1) | ((hi & 7) << 8)),
          &g0, &g1);
      EmitIq1(dl, Iq1Delta(hi & 8), g0, g1, v + 16 * rr + 8);
    }
  }
};

template <>
struct Quant<GgmlType::kIQ4_XS> {
  static constexpr int kBlock = 256, kBytes = 136;
  static GGUFSCOPE_HD void Unit(const uint8_t* b, int u, const IqGrids&, float* v) {
    const float d = LoadF16(b);
    const uint32_t scales_h = Ld16(b + 2);
    const int ls = static_cast<int>(((Ld8(b + 4 + u / 2) >> (4 * (u % 2))) & 0xF) |
                                    (((scales_h >> (2 * u)) & 3u) << 4));
    const float dl = d * SmallIntToFloat(ls - 32);
    GGUFSCOPE_UNROLL
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = Ld32A2(b + 8 + 16 * u + 4 * i);
      GGUFSCOPE_UNROLL
      for (int k = 0; k < 4; ++k) {
        const uint32_t q = ByteOf(w, k);
        v[4 * i + k] = dl * SmallIntToFloat(Pick16(kIq4nl, q & 0xF));
        v[4 * i + k + 16] = dl * SmallIntToFloat(Pick16(kIq4nl, q >> 4));
      }
    }
  }
};

}  // namespace ggufscope::cuda::internal
