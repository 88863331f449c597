// Trace files (docs/TRACE-FORMAT.md): a GGUF file with one f32 tensor per
// trace point and statistics and provenance as metadata, or a directory of
// .npy files named by trace point; and name maps that rename another
// engine's tensor names to ours.
#pragma once

#include <map>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "compare/trace.h"
#include "gguf/error.h"
#include "gguf/file.h"

namespace ggufscope::compare {

// trace.version this build writes and the newest it reads.
inline constexpr uint32_t kTraceVersion = 1;

// Metadata keys (docs/TRACE-FORMAT.md); per-point keys are
// "trace.point." + name + "." + one of kStatKeys.
inline constexpr std::string_view kKeyVersion = "trace.version";
inline constexpr std::string_view kKeyProducer = "trace.producer";
inline constexpr std::string_view kKeyBackend = "trace.backend";
inline constexpr std::string_view kKeyPrecision = "trace.precision";
inline constexpr std::string_view kKeyModelPath = "trace.model.path";
inline constexpr std::string_view kKeyModelSize = "trace.model.size";
inline constexpr std::string_view kKeyModelSha256 = "trace.model.sha256";
inline constexpr std::string_view kKeyModelArch = "trace.model.arch";
inline constexpr std::string_view kKeyTokens = "trace.tokens";
inline constexpr std::string_view kKeyStatsOnly = "trace.stats_only";
inline constexpr std::string_view kKeyPoints = "trace.points";
inline constexpr std::string_view kPointKeyPrefix = "trace.point.";

std::string PointKey(std::string_view point, std::string_view stat);  // "trace.point.attn_norm-3.rms"

// Writes `t` (with each point's tensor unless t.header.stats_only) through
// gguf::Writer: path.tmp, then renamed.
gguf::Status WriteTraceGguf(const Trace& t, const std::string& path);

// Renames foreign tensor names: exact names first, then the first rule whose
// regex matches the whole name (its replacement may use $1..$9). A name
// mapped to "" is dropped; a name nothing matches is kept as it is.
class NameMap {
 public:
  // {"names": {"blk.0.attn_norm": "attn_norm-0", ...},
  //  "rules": [{"match": "^blk\\.(\\d+)\\.attn_norm$", "name": "attn_norm-$1"}, ...]}
  // or a flat {"foreign": "ours", ...} object.
  static gguf::Result<NameMap> Parse(std::string_view json, const std::string& what);
  static gguf::Result<NameMap> Load(const std::string& path);

  std::string Apply(const std::string& name) const;
  bool empty() const { return names_.empty() && rules_.empty(); }

 private:
  struct Rule {
    std::string pattern;
    std::regex re;
    std::string replacement;
  };
  std::map<std::string, std::string, std::less<>> names_;
  std::vector<Rule> rules_;
};

// A trace from a GGUF trace file or a directory of .npy files (see the
// format doc for how shapes become (n_tokens, width)); `map` (may be null)
// renames its points. Errors name the file and what is wrong with it.
gguf::Result<Trace> ReadTrace(const std::string& path, const NameMap* map);
gguf::Result<Trace> ReadTraceGguf(const gguf::GgufFile& f, const std::string& source, const NameMap* map);
gguf::Result<Trace> ReadTraceNpyDir(const std::string& dir, const NameMap* map);

// NumPy-order dims (outermost first) as a (rows, cols) point: leading 1s
// (a batch axis) dropped while more than two dims remain, 1-D as one row,
// every dim after the first folded into the width ((n, n_head, head_dim) ->
// (n, n_head * head_dim)); a zero dim after the first gives width 0. The
// product of the non-zero dims must fit int64 (the readers check it).
std::pair<int64_t, int64_t> AsRowsCols(const std::vector<int64_t>& numpy_shape);

}  // namespace ggufscope::compare
