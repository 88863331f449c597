// The IQ codebooks on the device. The tables are gguf/iq_tables.inc (the one
// copy in the repository), packed by iq_grids.cu into one blob that
// Context::Create uploads; kernels receive an IqGrids of pointers into it by
// value. Global memory rather than __constant__: lookups diverge across a
// warp, which constant memory would serialize.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ggufscope::cuda::internal {

struct IqGrids {
  const uint8_t* iq2xxs;  // [256][8]
  const uint8_t* iq2xs;   // [512][8]
  const uint8_t* iq2s;    // [1024][8]
  const uint8_t* iq3xxs;  // [256][4]
  const uint8_t* iq3s;    // [512][4]
  const int8_t* iq1s;     // [2048][8]
};

// Bytes of the packed blob (every table starts 8-byte aligned within it).
size_t IqGridBytes();
// Writes the blob to host memory `dst` of IqGridBytes() bytes.
void PackIqGrids(uint8_t* dst);
// Pointers into a blob at `base` (device or host).
IqGrids IqGridsAt(const void* base);

}  // namespace ggufscope::cuda::internal
