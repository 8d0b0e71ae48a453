#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine (run as root, or with sudo available):
# apt packages, npm ci, native addon build, TypeScript and renderer build. Safe to run again: each step
# is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

# Packages: libtorch (engine), tifffile (independent reader for round-trip tests), chromium (E2E), 7zip
# (electron-builder), build tools, scikit-image and zarr (oracles of the objects tests). python3-torch is installed by the benchmark only.
APT_PKGS=(libtorch-dev python3-tifffile python3-numpy python3-h5py python3-pil python3-skimage python3-zarr chromium 7zip g++ make python3)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing apt packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm ci only when the lockfile changed since the last install. Electron's own binary cannot be
# downloaded here: the npm package installs for its types, the binary is never fetched.
export ELECTRON_SKIP_BINARY_DOWNLOAD=1
stamp=node_modules/.sliceform-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
fi

# Builds are incremental (make for the addon, tsc, vite).
npm run --silent build
echo "setup: ready"
