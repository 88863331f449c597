// ggufscope's exit codes, the same for every subcommand (docs/USER-GUIDE.md).
#pragma once

namespace ggufscope::cli {

inline constexpr int kExitOk = 0;           // done; for checks: nothing wrong found
inline constexpr int kExitSuspicious = 1;   // checks: evidence worth a look, no proof of damage
inline constexpr int kExitDiverges = 1;     // compare: a trace point is beyond tolerance (0: consistent)
inline constexpr int kExitCorrupt = 2;      // checks: proof of damage (hash mismatch, NaN, ...)
inline constexpr int kExitUnreadable = 3;   // the file cannot be opened or is not valid GGUF; trace/compare:
                                            // an input (model, trace, name map) cannot be read
inline constexpr int kExitUsage = 64;       // bad command line (as sysexits' EX_USAGE)
inline constexpr int kExitUnavailable = 69; // a resource the command needs is missing: no CUDA device (EX_UNAVAILABLE)
inline constexpr int kExitIo = 74;          // an output could not be written (EX_IOERR)

}  // namespace ggufscope::cli
