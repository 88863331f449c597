// Device-to-device copy bandwidth (read + write bytes / time), 1 GiB, median of 10.
#include <cstdio>
#include <algorithm>
#include <vector>
#include <cuda_runtime.h>
int main() {
  const size_t n = size_t{1} << 30;
  void *a, *b;
  cudaMalloc(&a, n); cudaMalloc(&b, n); cudaMemset(a, 1, n);
  cudaEvent_t s, e; cudaEventCreate(&s); cudaEventCreate(&e);
  std::vector<float> ms;
  for (int i = 0; i < 11; ++i) {
    cudaEventRecord(s); cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice); cudaEventRecord(e); cudaEventSynchronize(e);
    float t; cudaEventElapsedTime(&t, s, e); if (i) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  printf("d2d_copy_GBps %.1f\n", 2.0 * n / (ms[ms.size() / 2] * 1e-3) / 1e9);
}
