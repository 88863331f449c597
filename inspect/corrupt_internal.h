// Internals of inspect/corrupt shared by its two files: corrupt_values.cc
// rewrites stored numbers (plain elements and block scale fields),
// corrupt.cc does everything else (noise, swap, truncation, metadata, output).
// Not an API: include inspect/corrupt.h.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "gguf/error.h"
#include "gguf/file.h"
#include "inspect/corrupt.h"

namespace ggufscope::inspect::corrupt_internal {

// A spec that does not fit the file (-> exit 64).
gguf::Error BadArg(std::string field, std::string expected, std::string actual);
// A mode the tensor's type cannot express; `why` is the whole explanation (-> exit 64).
gguf::Error Refused(std::string field, std::string why);

// Names come from the file: quoted and escaped so a hostile one can't garble a terminal.
std::string Quoted(const std::string& s);
std::string TensorLabel(const gguf::TensorInfo& t);  // tensor "name" (TYPE)

// IEEE-style rounding to nearest even from double (see DoubleToHalf).
uint32_t EncodeBinary(double x, int exp_bits, int man_bits);

bool IsFloatType(gguf::GgmlType t);  // F32, F16, BF16, F64
bool IsIntType(gguf::GgmlType t);    // I8..I64

// Plain (float or integer) elements: value, stored word of a value (float
// types, rounded to nearest even), and "value (0xbits)" for messages.
double LoadElement(gguf::GgmlType t, const uint8_t* p);
uint64_t FloatWord(gguf::GgmlType t, double v);
void StoreWord(uint8_t* p, size_t n, uint64_t w);
std::string DescribeElement(gguf::GgmlType t, const uint8_t* p);

// The in-place modes; `data` is a copy of the tensor's bytes.
gguf::Status ScaleTensor(const gguf::TensorInfo& t, std::span<uint8_t> data, double scale,
                         std::string* line);
// --bitflip, --nan and --inf.
gguf::Status PokeTensor(const gguf::TensorInfo& t, std::span<uint8_t> data, const CorruptSpec& spec,
                        std::string* line);
gguf::Status ZeroRows(const gguf::TensorInfo& t, std::span<uint8_t> data, uint64_t rows,
                      std::string* line);

}  // namespace ggufscope::inspect::corrupt_internal
