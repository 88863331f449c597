// ggufscope-bench-matvec: the decode mat-vec kernels' bandwidth, per type and
// shape, on one GPU. For each case: weight bytes / time (median of 7 timed
// rounds of 20 launches, CUDA events, after a warm-up), with enough weight
// copies rotated that they do not fit in L2 (so DRAM, not the cache, is
// measured). Weights are random bytes with every f16 block scale replaced by
// a finite one (so no NaN/Inf shortcuts), x random in [-1, 1].
//   ggufscope-bench-matvec [--copy-gbps G] [--type Q4_K] [--shape 3584x18944] [--op matvec|glu|glu-norm]
//   (G: the measured copy bandwidth, for the share column; --type/--shape keep one type/shape, and
//   --shape RxC of a shape not in the list times that one;
//   --op glu: MatVecGlu over a gate and an up matrix of the shape, SwiGLU, as the decode step's
//   ffn products (MB: both matrices); glu-norm: the same with the RMSNorm folded in (NormFold),
//   as the forward pass calls it)
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_runtime/buffer.h"
#include "cuda_runtime/device.h"
#include "cuda_runtime/ops.h"
#include "gguf/types.h"

namespace {

using ggufscope::gguf::GgmlType;
namespace cu = ggufscope::cuda;

bool Check(const cu::Status& s, const char* what) {
  if (s.ok()) return true;
  std::fprintf(stderr, "%s: %s\n", what, s.message().c_str());
  return false;
}

// Random bytes; in block types, every 16-bit word is made a finite, modest f16
// (exponent forced to 0x0C..0x0F) so scales are sane wherever they sit.
std::vector<uint8_t> RandomWeights(GgmlType type, size_t bytes, std::mt19937_64& rng) {
  std::vector<uint8_t> v(bytes);
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    const uint64_t r = rng();
    std::memcpy(&v[i], &r, 8);
  }
  const auto& t = ggufscope::gguf::Traits(type);
  const bool plain16 = type == GgmlType::kF16 || type == GgmlType::kBF16;
  if (plain16 || t.block_size > 1) {
    for (size_t i = 0; i + 1 < bytes; i += 2) v[i + 1] = static_cast<uint8_t>((v[i + 1] & 0x83) | 0x30);
  } else if (type == GgmlType::kF32) {
    for (size_t i = 0; i + 3 < bytes; i += 4) v[i + 3] = static_cast<uint8_t>((v[i + 3] & 0x80) | 0x3E);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  double copy_gbps = 0;
  std::string only_type, only_shape;  // e.g. Q4_K, 3584x18944 (profiling one kernel)
  cu::MatVecPath path = cu::MatVecPath::kAuto;  // --path auto|direct|tc|cublas
  std::string op = "matvec";
  for (int i = 1; i + 1 < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--copy-gbps") copy_gbps = std::atof(argv[i + 1]);
    if (a == "--type") only_type = argv[i + 1];
    if (a == "--shape") only_shape = argv[i + 1];
    if (a == "--op") op = argv[i + 1];
    if (a == "--path") {
      const std::string v = argv[i + 1];
      path = v == "direct" ? cu::MatVecPath::kDirect
             : v == "tc"   ? cu::MatVecPath::kIntegerTensorCore
             : v == "cublas" ? cu::MatVecPath::kDequantCublas
                             : cu::MatVecPath::kAuto;
    }
  }
  if (op != "matvec" && op != "glu" && op != "glu-norm") {
    std::fprintf(stderr, "--op: matvec, glu or glu-norm, not %s\n", op.c_str());
    return 2;
  }
  const bool glu = op != "matvec", fold = op == "glu-norm";
  // --shape RxC, listed below or not (at most 2^34 elements: one copy of F32
  // weights is then 64 GiB, more than a card holds).
  long long want_rows = 0, want_cols = 0;
  if (!only_shape.empty()) {
    char tail = 0;
    if (std::sscanf(only_shape.c_str(), "%lldx%lld%c", &want_rows, &want_cols, &tail) != 2 || want_rows <= 0 ||
        want_cols <= 0 || want_rows > (1LL << 31) || want_cols > (1LL << 31) || want_rows * want_cols > (1LL << 34)) {
      std::fprintf(stderr, "--shape: ROWSxCOLS, positive, at most 2^34 elements, not %s\n", only_shape.c_str());
      return 2;
    }
  }
  std::string why;
  auto ctx = cu::Context::Create(0, &why);
  if (!ctx) {
    std::fprintf(stderr, "no CUDA device: %s\n", why.c_str());
    return 2;
  }
  auto stream = static_cast<cudaStream_t>(ctx->stream());
  const GgmlType types[] = {GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kQ8_0,
                            GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kF16,
                            GgmlType::kBF16, GgmlType::kF32};
  // (rows, cols): Qwen2.5-7B ffn_up/gate, ffn_down, attn_q/o; 1.5B ffn_up,
  // ffn_down, attn_q; 7B attn_k/v; the 7B output matrix.
  std::vector<std::pair<int64_t, int64_t>> shapes = {{18944, 3584}, {3584, 18944}, {3584, 3584},
                                                     {8960, 1536},  {1536, 8960},  {1536, 1536},
                                                     {512, 3584},   {152064, 3584}};
  if (want_rows > 0 && std::none_of(shapes.begin(), shapes.end(), [&](const auto& sh) {
        return sh.first == want_rows && sh.second == want_cols;
      })) {
    shapes.emplace_back(want_rows, want_cols);  // --shape of a shape not listed: that one alone
  }

  std::mt19937_64 rng(1234);
  std::printf("%-6s %8s %8s %10s %10s %9s %7s\n", "type", "rows", "cols", "MB", "us", "GB/s", "share");
  for (const GgmlType type : types) {
    const auto& t = ggufscope::gguf::Traits(type);
    if (!only_type.empty() && only_type != t.name) continue;
    for (const auto& shape : shapes) {
      const int64_t rows = shape.first, cols = shape.second;
      if (want_rows > 0 && (rows != want_rows || cols != want_cols)) continue;
      if (type == GgmlType::kF32 && rows > 100000) continue;  // 2.2 GB per copy: skip
      if (cols % t.block_size != 0) {  // (a --shape of any width)
        const std::string name(t.name);
        std::printf("%-6s %8lld %8lld  skipped: %lld columns are no whole %s blocks\n", name.c_str(),
                    static_cast<long long>(rows), static_cast<long long>(cols), static_cast<long long>(cols),
                    name.c_str());
        continue;
      }
      const size_t bytes = static_cast<size_t>(rows) * cols / t.block_size * t.type_size;
      if (glu && rows > 100000) continue;  // no GLU that wide
      // glu: copies 2i (gate) and 2i + 1 (up) of one launch.
      const int copies = static_cast<int>(std::max<size_t>(1, (size_t{256} << 20) / bytes + 1)) * (glu ? 2 : 1);
      const std::vector<uint8_t> host = RandomWeights(type, bytes, rng);
      std::vector<cu::DeviceBuffer> w;
      bool ok = true;
      for (int c = 0; c < copies && ok; ++c) {
        w.emplace_back();
        ok = Check(w.back().Allocate(*ctx, bytes), "alloc") &&
             Check(cu::CopyToDevice(*ctx, w.back().data(), host.data(), bytes), "copy");
      }
      std::vector<float> hx(cols);
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      for (float& v : hx) v = u(rng);
      cu::DeviceBuffer x, y, gate, up, nw, normed;
      ok = ok && Check(x.Allocate(*ctx, cols * sizeof(float)), "alloc") &&
           Check(y.Allocate(*ctx, rows * sizeof(float)), "alloc") &&
           Check(gate.Allocate(*ctx, rows * sizeof(float)), "alloc") &&
           Check(up.Allocate(*ctx, rows * sizeof(float)), "alloc") &&
           Check(nw.Allocate(*ctx, cols * sizeof(float)), "alloc") &&
           Check(normed.Allocate(*ctx, cols * sizeof(float)), "alloc") &&
           Check(cu::CopyToDevice(*ctx, x.data(), hx.data(), cols * sizeof(float)), "copy") &&
           Check(cu::CopyToDevice(*ctx, nw.data(), hx.data(), cols * sizeof(float)), "copy");
      if (!ok) return 1;
      const cu::NormFold norm{nw.as<float>(), 1e-6f, normed.as<float>()};
      const auto run = [&](int i) {
        if (glu) {
          const int g = (2 * i) % copies;
          return cu::MatVecGlu(*ctx, type, w[g].data(), w[g + 1].data(), rows, cols, x.as<float>(),
                               cu::GluKind::kSwiglu, gate.as<float>(), up.as<float>(), y.as<float>(),
                               fold ? &norm : nullptr);
        }
        return cu::MatVec(*ctx, type, w[i % copies].data(), rows, cols, x.as<float>(), y.as<float>(), path);
      };
      for (int i = 0; i < 2 * copies; ++i)
        if (!Check(run(i), "MatVec")) return 1;
      cudaEvent_t e0, e1;
      cudaEventCreate(&e0);
      cudaEventCreate(&e1);
      std::vector<float> us;
      constexpr int kLaunches = 20;
      for (int round = 0; round < 7; ++round) {
        cudaEventRecord(e0, stream);
        for (int i = 0; i < kLaunches; ++i) (void)run(i);
        cudaEventRecord(e1, stream);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        us.push_back(1000.0f * ms / kLaunches);
      }
      if (!Check(ctx->Synchronize(), "sync")) return 1;
      cudaEventDestroy(e0);
      cudaEventDestroy(e1);
      std::sort(us.begin(), us.end());
      const double med = us[us.size() / 2];
      const double moved = static_cast<double>(bytes) * (glu ? 2 : 1);
      const double gbps = moved / (med * 1e-6) / 1e9;
      std::printf("%-6s %8lld %8lld %10.2f %10.2f %9.1f %6.0f%%\n", std::string(t.name).c_str(),
                  static_cast<long long>(rows), static_cast<long long>(cols), moved / 1e6, med, gbps,
                  copy_gbps > 0 ? 100.0 * gbps / copy_gbps : 0.0);
    }
  }
  return 0;
}
