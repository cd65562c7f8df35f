// Line charts as standalone SVG (what the seed draws with matplotlib), no dependencies.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace examples {

struct Series {
  std::string name;
  std::string color;
  std::vector<std::pair<double, double>> points;  // (x, y)
};

struct Panel {
  std::string title, x_label, y_label;
  std::vector<Series> series;
};

namespace chart_detail {
inline std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
inline std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}
// A "nice" tick step giving about `target` ticks over span.
inline double tick_step(double span, int target = 5) {
  const double raw = span / target, magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * magnitude) return m * magnitude;
  return 10 * magnitude;
}
}  // namespace chart_detail

/// Writes the panels side by side as one SVG document.
inline void write_svg(std::ostream& out, const std::vector<Panel>& panels) {
  using namespace chart_detail;
  constexpr double panel_w = 480, panel_h = 340, left = 60, right = 20, top = 40, bottom = 50;
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << panel_w * double(panels.size()) << "\" height=\""
      << panel_h << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const Panel& panel = panels[p];
    const double x0 = double(p) * panel_w + left, x1 = double(p + 1) * panel_w - right, y0 = panel_h - bottom, y1 = top;
    double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
    for (const auto& s : panel.series)
      for (auto [x, y] : s.points)
        if (std::isfinite(y)) xmin = std::min(xmin, x), xmax = std::max(xmax, x), ymin = std::min(ymin, y), ymax = std::max(ymax, y);
    if (xmin > xmax) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
    if (xmax == xmin) xmax = xmin + 1;
    if (ymax == ymin) ymax = ymin + 1;
    const double ystep = tick_step(ymax - ymin), xstep = tick_step(xmax - xmin);
    ymin = std::floor(ymin / ystep) * ystep, ymax = std::ceil(ymax / ystep) * ystep;
    auto sx = [&](double x) { return x0 + (x - xmin) / (xmax - xmin) * (x1 - x0); };
    auto sy = [&](double y) { return y0 - (y - ymin) / (ymax - ymin) * (y0 - y1); };
    out << "<text x=\"" << (x0 + x1) / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" << escape(panel.title)
        << "</text>\n";
    for (double y = ymin; y <= ymax + ystep / 2; y += ystep)
      out << "<line x1=\"" << x0 << "\" x2=\"" << x1 << "\" y1=\"" << sy(y) << "\" y2=\"" << sy(y)
          << "\" stroke=\"#ddd\"/><text x=\"" << x0 - 6 << "\" y=\"" << sy(y) + 4 << "\" text-anchor=\"end\">"
          << number(y) << "</text>\n";
    for (double x = std::ceil(xmin / xstep) * xstep; x <= xmax + xstep / 2; x += xstep)
      out << "<text x=\"" << sx(x) << "\" y=\"" << y0 + 16 << "\" text-anchor=\"middle\">" << number(x) << "</text>\n";
    out << "<rect x=\"" << x0 << "\" y=\"" << y1 << "\" width=\"" << x1 - x0 << "\" height=\"" << y0 - y1
        << "\" fill=\"none\" stroke=\"#333\"/>\n"
        << "<text x=\"" << (x0 + x1) / 2 << "\" y=\"" << panel_h - 12 << "\" text-anchor=\"middle\">"
        << escape(panel.x_label) << "</text>\n"
        << "<text transform=\"translate(16," << (y0 + y1) / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
        << escape(panel.y_label) << "</text>\n";
    for (std::size_t k = 0; k < panel.series.size(); ++k) {
      const Series& s = panel.series[k];
      out << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"1.5\" points=\"";
      for (auto [x, y] : s.points)
        if (std::isfinite(y)) out << sx(x) << ',' << sy(y) << ' ';
      out << "\"/>\n<text x=\"" << x1 - 8 << "\" y=\"" << y1 + 16 + 15 * double(k) << "\" text-anchor=\"end\" fill=\""
          << s.color << "\">" << escape(s.name) << "</text>\n";
    }
  }
  out << "</svg>\n";
}

}  // namespace examples
