#include <cstdint>
#include <cstring>

#include "cuda_runtime/iq_grids.cuh"

namespace ggufscope::cuda::internal {
namespace {

// Host-side constexpr arrays; only their bytes travel to the device.
#include "gguf/iq_tables.inc"

// Offsets of each table in the blob, in IqGrids order. Every size is a
// multiple of 8, so every table stays 8-byte aligned for uint2 loads.
constexpr size_t kOff2xxs = 0;
constexpr size_t kOff2xs = kOff2xxs + sizeof(kIq2xxsGrid);
constexpr size_t kOff2s = kOff2xs + sizeof(kIq2xsGrid);
constexpr size_t kOff3xxs = kOff2s + sizeof(kIq2sGrid);
constexpr size_t kOff3s = kOff3xxs + sizeof(kIq3xxsGrid);
constexpr size_t kOff1s = kOff3s + sizeof(kIq3sGrid);
constexpr size_t kTotal = kOff1s + sizeof(kIq1sGrid);
static_assert(kOff2xs % 8 == 0 && kOff2s % 8 == 0 && kOff3xxs % 8 == 0 && kOff3s % 8 == 0 &&
              kOff1s % 8 == 0);
static_assert(sizeof(kIq2xxsGrid) == 256 * 8 && sizeof(kIq2xsGrid) == 512 * 8 &&
              sizeof(kIq2sGrid) == 1024 * 8 && sizeof(kIq3xxsGrid) == 256 * 4 &&
              sizeof(kIq3sGrid) == 512 * 4 && sizeof(kIq1sGrid) == 2048 * 8);

}  // namespace

size_t IqGridBytes() { return kTotal; }

void PackIqGrids(uint8_t* dst) {
  std::memcpy(dst + kOff2xxs, kIq2xxsGrid, sizeof(kIq2xxsGrid));
  std::memcpy(dst + kOff2xs, kIq2xsGrid, sizeof(kIq2xsGrid));
  std::memcpy(dst + kOff2s, kIq2sGrid, sizeof(kIq2sGrid));
  std::memcpy(dst + kOff3xxs, kIq3xxsGrid, sizeof(kIq3xxsGrid));
  std::memcpy(dst + kOff3s, kIq3sGrid, sizeof(kIq3sGrid));
  std::memcpy(dst + kOff1s, kIq1sGrid, sizeof(kIq1sGrid));
}

IqGrids IqGridsAt(const void* base) {
  const auto* b = static_cast<const uint8_t*>(base);
  return {b + kOff2xxs, b + kOff2xs, b + kOff2s,
          b + kOff3xxs, b + kOff3s,  reinterpret_cast<const int8_t*>(b + kOff1s)};
}

}  // namespace ggufscope::cuda::internal
