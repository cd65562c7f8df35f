// The one exception type of ctnn's file I/O, so callers can tell a bad file from a bad argument.
#pragma once

#include <stdexcept>
#include <string>

namespace ctnn {

/// io_error: a file could not be read or written, or its contents are invalid (truncated,
/// corrupt, or not what the model expects). what() names the file and, where there is one, the
/// tensor or record at fault, so the message alone is enough to find the problem.
class io_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ctnn
