#include "gguf/error.h"

#include <fmt/format.h>

namespace ggufscope::gguf {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kIo: return "io-error";
    case ErrorCode::kBadMagic: return "bad-magic";
    case ErrorCode::kBigEndian: return "big-endian";
    case ErrorCode::kUnsupportedVersion: return "unsupported-version";
    case ErrorCode::kTruncated: return "truncated";
    case ErrorCode::kTooLarge: return "too-large";
    case ErrorCode::kBadValueType: return "bad-value-type";
    case ErrorCode::kNestingTooDeep: return "nesting-too-deep";
    case ErrorCode::kDuplicateKey: return "duplicate-key";
    case ErrorCode::kBadAlignment: return "bad-alignment";
    case ErrorCode::kBadDims: return "bad-dims";
    case ErrorCode::kUnknownType: return "unknown-type";
    case ErrorCode::kRemovedType: return "removed-type";
    case ErrorCode::kBadBlockMultiple: return "bad-block-multiple";
    case ErrorCode::kDuplicateTensor: return "duplicate-tensor";
    case ErrorCode::kMisalignedOffset: return "misaligned-offset";
    case ErrorCode::kOverlap: return "overlap";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kInvalidArgument: return "invalid-argument";
    case ErrorCode::kBadJson: return "bad-json";
  }
  return "unknown-error";
}

std::string Error::Message() const {
  std::string msg = has_offset() ? fmt::format("{}: {} at byte {}", ErrorCodeName(code), field, offset)
                                 : fmt::format("{}: {}", ErrorCodeName(code), field);
  if (!expected.empty() || !actual.empty()) {
    msg += fmt::format(": expected {}, found {}", expected.empty() ? "?" : expected,
                       actual.empty() ? "?" : actual);
  }
  return msg;
}

}  // namespace ggufscope::gguf
