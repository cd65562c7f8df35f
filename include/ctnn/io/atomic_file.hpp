// Writing a file so that readers see either the old contents or the complete new ones, never a
// torn mix: an interrupted or failed save must not destroy the previous checkpoint (or CSV, SVG...).
// POSIX only (open/fsync/rename).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <ostream>
#include <streambuf>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "ctnn/io/error.hpp"

namespace ctnn {

namespace detail {

inline std::string errno_text(int error) { return std::generic_category().message(error); }

// Writes all of [data, data + size) to fd, retrying short writes and EINTR. Returns 0 or errno.
inline int write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ::ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    size -= std::size_t(n);
  }
  return 0;
}

// A buffered streambuf over a file descriptor that remembers the first errno it met, because
// std::ostream only reports "bad" and the user deserves "No space left on device".
class FdStreamBuf : public std::streambuf {
 public:
  explicit FdStreamBuf(int fd) : fd_(fd), buffer_(1 << 16) { setp(buffer_.data(), buffer_.data() + buffer_.size()); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type c) override {
    if (flush_buffer() != 0) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (n >= std::streamsize(buffer_.size())) {  // large blocks skip the copy into the buffer
      if (flush_buffer() != 0) return 0;
      if (const int e = write_all(fd_, s, std::size_t(n)); e != 0) {
        if (!error_) error_ = e;
        return 0;
      }
      return n;
    }
    return std::streambuf::xsputn(s, n);
  }
  int sync() override { return flush_buffer() == 0 ? 0 : -1; }

 private:
  int flush_buffer() {
    if (error_) return error_;
    const std::size_t pending = std::size_t(pptr() - pbase());
    if (pending > 0) error_ = write_all(fd_, pbase(), pending);
    setp(buffer_.data(), buffer_.data() + buffer_.size());
    return error_;
  }

  int fd_;
  std::vector<char> buffer_;
  int error_ = 0;
};

}  // namespace detail

/// AtomicFile: writes `target` as a whole or not at all. Bytes go to a new temporary file in the
/// target's directory (same file system, so the final rename is atomic); commit() flushes, fsyncs
/// and renames it over the target. An AtomicFile destroyed without commit() (an exception, a
/// failed write) deletes its temporary file and leaves any previous target untouched.
/// A replaced target keeps its permission bits; a symbolic link at `target` is replaced, not followed.
class AtomicFile {
 public:
  /// Creates the temporary file; throws io_error if the directory does not accept it.
  explicit AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
    namespace fs = std::filesystem;
    if (target_.filename().empty()) throw io_error("ctnn: cannot write '" + target_.string() + "': not a file name");
    // Keep the previous file's permissions; a new file gets 0666 minus the umask, as ofstream would.
    ::mode_t mode = 0666;
    struct ::stat existing {};
    const bool replace_mode = ::stat(target_.c_str(), &existing) == 0 && S_ISREG(existing.st_mode);
    static std::atomic<unsigned> counter{0};
    int error = 0;
    for (int attempt = 0; attempt < 100; ++attempt) {
      const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
      std::string name(1, '.');  // hidden, and never matched by a glob for the real files
      name += target_.filename().string();
      name += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) + "-" +
              std::to_string(stamp % 1000000007);
      temporary_ = target_.has_parent_path() ? target_.parent_path() / name : fs::path(name);
      fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
      if (fd_ >= 0) break;
      error = errno;
      if (error != EEXIST) break;
    }
    if (fd_ < 0)
      throw io_error("ctnn: cannot write '" + target_.string() + "': cannot create a temporary file in its directory (" +
                     detail::errno_text(error) + ")");
    if (replace_mode) (void)::fchmod(fd_, existing.st_mode & 07777);
    buffer_ = std::make_unique<detail::FdStreamBuf>(fd_);
    stream_ = std::make_unique<std::ostream>(buffer_.get());
  }

  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  ~AtomicFile() {
    if (committed_) return;
    stream_.reset();
    buffer_.reset();
    if (fd_ >= 0) ::close(fd_);
    ::unlink(temporary_.c_str());
  }

  /// Appends raw bytes; throws io_error (with the system's reason) as soon as a write fails.
  void write(const void* data, std::size_t size) {
    stream_->write(static_cast<const char*>(data), std::streamsize(size));
    if (!*stream_) fail("writing");
  }

  /// The file as a std::ostream, for text writers (CSV, SVG). Write errors surface at commit().
  std::ostream& stream() { return *stream_; }

  /// Makes the new contents durable and visible under the target name. After a throw the target
  /// is unchanged (and the temporary file is removed when this object is destroyed).
  void commit() {
    if (committed_) throw io_error("ctnn: '" + target_.string() + "' was already committed");
    stream_->flush();
    if (!*stream_) fail("writing");
    if (::fsync(fd_) != 0) fail("flushing to disk", errno);
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) fail("closing", errno);
    if (::rename(temporary_.c_str(), target_.c_str()) != 0) fail("renaming the temporary file over it", errno);
    committed_ = true;
    // Persist the rename itself; best effort, since the data is already safe under one name or the other.
    const std::filesystem::path directory = target_.has_parent_path() ? target_.parent_path() : ".";
    if (const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
      (void)::fsync(dir);
      ::close(dir);
    }
  }

  /// Deletes the temporary files that writers of `target` killed mid-write (SIGKILL, power loss)
  /// left behind: those whose process no longer exists. Returns how many it removed.
  static std::size_t remove_orphans(const std::filesystem::path& target) {
    namespace fs = std::filesystem;
    const fs::path directory = target.has_parent_path() ? target.parent_path() : ".";
    const std::string prefix = "." + target.filename().string() + ".tmp-";
    std::size_t removed = 0;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(directory, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind(prefix, 0) != 0) continue;
      const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
      const bool writer_alive = pid > 0 && (::kill(::pid_t(pid), 0) == 0 || errno == EPERM);
      if (!writer_alive && fs::remove(entry.path(), ec)) ++removed;
    }
    return removed;
  }

  const std::filesystem::path& target() const { return target_; }
  const std::filesystem::path& temporary_path() const { return temporary_; }

 private:
  [[noreturn]] void fail(const std::string& what, int error = 0) {
    if (error == 0) error = buffer_->error();
    throw io_error("ctnn: " + what + " '" + target_.string() + "' failed" +
                   (error ? " (" + detail::errno_text(error) + ")" : std::string()) + "; the previous file is unchanged");
  }

  std::filesystem::path target_;
  std::filesystem::path temporary_;
  int fd_ = -1;
  std::unique_ptr<detail::FdStreamBuf> buffer_;
  std::unique_ptr<std::ostream> stream_;
  bool committed_ = false;
};

/// Writes `target` atomically: calls write(std::ostream&) on the temporary file, then commits.
/// If write throws, the exception propagates and the previous target is untouched.
template <class Writer>
void write_file_atomically(const std::filesystem::path& target, Writer&& write) {
  AtomicFile file(target);
  write(file.stream());
  file.commit();
}

}  // namespace ctnn
