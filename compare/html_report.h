// A trace comparison as one self-contained HTML page (`compare --html`):
// the verdict, both sides, an SVG plot of the relative L2 error of every op
// family by layer (log scale, tolerance dashed, the first divergent op
// ringed), an SVG plot of the hidden-state ranges (l_out-L of both sides), a
// table of every point and the layer gain table. Inline CSS and SVG only: no
// script, font, image or link that would reach the network. Every string that
// comes from a trace (point names, sources, producers) is escaped.
#pragma once

#include <string>
#include <string_view>

#include "compare/trace.h"
#include "compare/trace_compare.h"

namespace ggufscope::compare {

// `s` as HTML/XML text or attribute value: & < > " ' as entities; control
// characters (other than tab and newline) and bytes that are not valid UTF-8
// become U+FFFD, so the result is valid XML text as well.
std::string HtmlEscape(std::string_view s);

// The whole page (<!DOCTYPE html> ... </html>), UTF-8.
std::string ComparisonHtml(const TraceComparison& c, const Trace& a, const Trace& b);

}  // namespace ggufscope::compare
