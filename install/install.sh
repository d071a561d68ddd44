#!/usr/bin/env bash
# Installs paver's binaries on a CI runner (the PR check's action.yml, install/action.yml):
#
#   install.sh TOOL...          TOOL: paver-lint, paver
#
# A released version (a tag: v1.2.3) downloads the release's archive for this machine,
# paver-<version>-<target>.tar.gz, checks it against the release's SHA-256 checksum
# (<archive>.sha256), and unpacks it: seconds. Anything else (a branch such as `main`, or
# nothing) is built from source with `cargo install --git`: minutes. A tool already on
# PATH is kept.
#
# Environment:
#   PAVER_VERSION     the tag (v1.2.3) or branch; empty: main
#   PAVER_REPOSITORY  where releases and sources are (default https://github.com/paver-dev/paver);
#                     archives are at $PAVER_REPOSITORY/releases/download/<tag>/
#   PAVER_INSTALL_DIR where the binaries go (default $RUNNER_TEMP/paver/bin); added to
#                     $GITHUB_PATH when that is set
set -euo pipefail

version="${PAVER_VERSION:-}"
[ -n "$version" ] || version=main
repository="${PAVER_REPOSITORY:-https://github.com/paver-dev/paver}"
repository="${repository%/}"
dest="${PAVER_INSTALL_DIR:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/paver/bin}"
[ $# -gt 0 ] || { echo "usage: install.sh paver-lint|paver..." >&2; exit 2; }

missing=()
for tool in "$@"; do
  case "$tool" in
    paver | paver-lint) ;;
    *) echo "install.sh: unknown tool \`$tool\` (paver-lint, paver)" >&2; exit 2 ;;
  esac
  if command -v "$tool" >/dev/null 2>&1; then
    echo "$tool is on PATH: $(command -v "$tool") ($("$tool" --version))"
  else
    missing+=("$tool")
  fi
done
[ ${#missing[@]} -gt 0 ] || exit 0
mkdir -p "$dest"

# The Rust target of this runner, as the release workflow names its archives.
target() {
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) echo x86_64-unknown-linux-gnu ;;
    Linux/aarch64 | Linux/arm64) echo aarch64-unknown-linux-gnu ;;
    Darwin/arm64 | Darwin/aarch64) echo aarch64-apple-darwin ;;
    Darwin/x86_64) echo x86_64-apple-darwin ;;
    *) return 1 ;;
  esac
}

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

if [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] && triple="$(target)"; then
  archive="paver-$version-$triple.tar.gz"
  url="$repository/releases/download/$version/$archive"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "downloading $url"
  curl -fsSL --retry 3 --retry-delay 2 -o "$work/$archive" "$url"
  curl -fsSL --retry 3 --retry-delay 2 -o "$work/$archive.sha256" "$url.sha256"
  expected="$(cut -d' ' -f1 <"$work/$archive.sha256")"
  actual="$(sha256 "$work/$archive")"
  if [ "$expected" != "$actual" ]; then
    echo "::error title=paver install::checksum mismatch for $archive: expected $expected, got $actual" >&2
    echo "install.sh: the SHA-256 of $archive is $actual, the release says $expected: not installed" >&2
    exit 1
  fi
  echo "checksum ok: $actual"
  tar -xzf "$work/$archive" -C "$work"
  for tool in "${missing[@]}"; do
    install -m 755 "$work/paver-$version-$triple/$tool" "$dest/$tool"
  done
else
  echo "$version is not a release (or there is no archive for $(uname -s)/$(uname -m)): building from source"
  for tool in "${missing[@]}"; do
    cargo install --locked --quiet --root "${dest%/bin}" --git "$repository" --branch "$version" "$tool"
  done
fi
if [ -n "${GITHUB_PATH:-}" ]; then
  echo "$dest" >>"$GITHUB_PATH"
fi
for tool in "${missing[@]}"; do
  echo "installed $tool: $("$dest/$tool" --version)"
done
