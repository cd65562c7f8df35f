// How the example programs end on an error: a one-line message and an exit code, no stack trace.
#pragma once

#include <ctnn/io/error.hpp>

#include <cstdio>
#include <exception>

namespace examples {

/// Returns body()'s exit code; an exception becomes "program: message" on stderr and exit code 2
/// for a missing, unreadable or malformed input file (ctnn::io_error), 1 for anything else.
template <class Body>
int report_errors(const char* program, Body&& body) {
  try {
    return body();
  } catch (const ctnn::io_error& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace examples
