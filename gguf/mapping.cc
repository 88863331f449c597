#include "gguf/mapping.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ggufscope::gguf {
namespace {

class MmapMapping final : public Mapping {
 public:
  MmapMapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  ~MmapMapping() override {
    if (addr_ != nullptr) munmap(addr_, size_);
  }
  MmapMapping(const MmapMapping&) = delete;
  MmapMapping& operator=(const MmapMapping&) = delete;
  std::span<const uint8_t> bytes() const override {
    return {static_cast<const uint8_t*>(addr_), size_};
  }

 private:
  void* addr_;
  size_t size_;
};

class VectorMapping final : public Mapping {
 public:
  explicit VectorMapping(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {}
  std::span<const uint8_t> bytes() const override { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

Error IoError(const std::string& path, const char* what) {
  return Error{ErrorCode::kIo, path, Error::kNoOffset, "a readable file", std::string(what) + ": " + std::strerror(errno)};
}

}  // namespace

Result<std::shared_ptr<const Mapping>> MapFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError(path, "cannot open");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Error e = IoError(path, "cannot stat");
    ::close(fd);
    return e;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error{ErrorCode::kIo, path, Error::kNoOffset, "a regular file", "not a regular file"};
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return std::shared_ptr<const Mapping>(std::make_shared<VectorMapping>(std::vector<uint8_t>{}));
  }
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (addr == MAP_FAILED) {
    Error e = IoError(path, "cannot mmap");
    ::close(fd);
    return e;
  }
  ::close(fd);  // the mapping keeps the file alive
  return std::shared_ptr<const Mapping>(std::make_shared<MmapMapping>(addr, size));
}

std::shared_ptr<const Mapping> OwnBytes(std::vector<uint8_t> bytes) {
  return std::make_shared<VectorMapping>(std::move(bytes));
}

}  // namespace ggufscope::gguf
