# Shared by the scripts in scripts/: package checks and the build.
# shellcheck shell=bash

CTNN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# ccache hashes paths relative to the checkout, so a fresh clone elsewhere reuses the cache.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$CTNN_ROOT}"
CTNN_PACKAGES=(cmake g++ make pkg-config libeigen3-dev libboost-test-dev nlohmann-json3-dev zlib1g-dev libcli11-dev libstb-dev ccache)

# ensure_packages PKG...: installs the Debian packages that are missing (as root), or prints the
# exact command and fails.
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "ctnn: installing missing packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "ctnn: missing packages: ${missing[*]}" >&2
    echo "ctnn: install them with:  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

# configure BUILD_DIR [cmake args...]: a Release build tree, compiled through ccache when present.
configure() {
  local dir="$1"
  shift
  local launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S "$CTNN_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" "$@" >/dev/null
}

# build BUILD_DIR [targets...]: builds the targets (all when none are named) on every core.
build() {
  local dir="$1"
  shift
  local targets=()
  [ $# -gt 0 ] && targets=(--target "$@")
  cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
}
