// How a trace comparison reads: a text table (one line per point), a layer
// gain table, a one-line summary, and the same as JSON. Shared by `compare`
// and `doctor`.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "compare/trace.h"
#include "compare/trace_compare.h"

namespace ggufscope::compare {

// "DIVERGES: first divergent op Kcur in layer 0 (...)" or "consistent: ...".
std::string SummaryLine(const TraceComparison& c);

// The full report; `only_bad`: leave out the lines of points within tolerance.
std::string ComparisonText(const TraceComparison& c, const Trace& a, const Trace& b, bool only_bad = false);

nlohmann::json ComparisonJson(const TraceComparison& c, const Trace& a, const Trace& b);

// Where a trace came from, for both reports ({source, backend, producer, ...}).
nlohmann::json TraceHeaderJson(const Trace& t);

// Whether both traces name the same model file (by sha256); nullopt when
// either does not say.
std::optional<bool> SameModel(const Trace& a, const Trace& b);

// Shared by the text and HTML reports: "1.23e-04" (0, nan, inf written as
// words), and a point's "[min, max]" (with its NaN/Inf counts when asked).
std::string Sci(double x);
std::string Range(const PointStats& s, bool with_nonfinite = false);

// A number JSON can hold: NaN and +-Inf become the strings "nan", "inf", "-inf".
nlohmann::json JsonNumber(double x);

}  // namespace ggufscope::compare
