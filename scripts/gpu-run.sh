#!/usr/bin/env bash
# Runs the DHTA benchmarks on a GPU host from a pack made by scripts/gpu-pack.sh (issue 8, "GPU hosts"; see
# bench/README.md). Needs no Node.js, npm or Vulkan loader on the host: it unpacks the packed Node binary,
# dawn.node and the Vulkan loader into a work folder, points the loader at NVIDIA's Vulkan ICD and runs, most
# wanted figure first:
#   1. dhta doctor --json                                                    -> doctor.json
#   2. dhta bench attack --preset vgg11 --batch 32 --iters 10 --peer torch --json, PyTorch on CUDA
#      (DHTA_TORCH_DEVICE=cuda), where python3's torch sees a CUDA device    -> attack-torch.json
#      (our run, PyTorch's, the check that both give the same codes, the ratio)
#   3. dhta bench attack ... without the peer, only where step 2 did not run or failed -> attack.json
#   4. dhta bench hamming --n 16777216 --bits 64 --queries 100 --k 1000 --backend gpu --json -> hamming.json
#      (and --peer faiss -> hamming-faiss.json, only where python3 imports faiss)
#   5. dhta bench kernels --json                                             -> kernels.json
# each under its own time limit, all inside one budget (default 360 s; the device tool allows 600 s per
# command and 15 minutes of device time per session), so that one hang loses only its own step. A step that
# fails leaves {"step", "error", "rc", "stderr", "stdout"} in its file; the log of everything is gpu-run.log.
# At most 7 files: the device tool brings back 8.
#
# Usage: bash scripts/gpu-run.sh [--quick] [--out DIR] [--budget S] [--iters N] [--batch B]
#                                [--llvmpipe] [--torch-cpu] [--no-torch]
#   --out DIR    where the JSON goes (default $OUT when set, else ./gpu-out)
#   --quick      small sizes for a smoke test: attack vgg11 --size 32 --batch 2 --iters 2 --check-iters 1,
#                hamming --n 65536, kernels --groups fc --reps 1
#   --budget S   seconds for all steps together (default 360)
#   --iters N, --batch B   the attack's timed iterations (default 10) and batch (default 32)
#   --llvmpipe   do not select NVIDIA's ICD: the loader finds whatever ICDs the host has (Mesa's llvmpipe on
#                the development machine)
#   --torch-cpu  run the PyTorch peer on the CPU where there is no CUDA (tests the plumbing)
#   --no-torch   skip the PyTorch peer
# Environment: DHTA_GPU_WORK (work folder, default a new /tmp/dhta-gpu.XXXXXX), DHTA_PYTHON (the Python with
# PyTorch, default python3 on PATH), DHTA_VK_ICD (an ICD .json to use instead of the search below),
# DHTA_VK_LOADER=system (use the host's libvulkan.so.1 instead of the packed one).
set -uo pipefail

PACK=$(cd "$(dirname "$0")/.." && pwd)
OUTDIR=${OUT:-$PWD/gpu-out}
QUICK=0
BUDGET=360
ITERS=10
BATCH=32
LLVMPIPE=0
TORCH=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) OUTDIR=$2; shift ;;
    --budget) BUDGET=$2; shift ;;
    --iters) ITERS=$2; shift ;;
    --batch) BATCH=$2; shift ;;
    --llvmpipe) LLVMPIPE=1 ;;
    --torch-cpu) TORCH=cpu ;;
    --no-torch) TORCH=no ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-run: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUTDIR" || exit 1
OUTDIR=$(cd "$OUTDIR" && pwd)
LOG=$OUTDIR/gpu-run.log
START=$(date +%s)

log() { echo "gpu-run [$(($(date +%s) - START))s]: $*"; }

# xz -d, or Python's lzma where xz is missing.
unxz_to() {
  if command -v xz >/dev/null; then
    xz -dc "$1" >"$2"
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  fi
}

# dpkg-deb -x, or a few lines of Python (ar archive, then data.tar.*) where dpkg-deb is missing. No root needed.
extract_deb() {
  if command -v dpkg-deb >/dev/null; then
    dpkg-deb -x "$1" "$2"
  else
    python3 - "$1" "$2" <<'EOF'
import io, sys, tarfile
raw = open(sys.argv[1], 'rb').read()
assert raw[:8] == b'!<arch>\n', 'not a .deb'
i = 8
while i < len(raw):
    name, size = raw[i:i + 16].decode().strip().rstrip('/'), int(raw[i + 48:i + 58])
    if name.startswith('data.tar'):
        safe = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}
        tarfile.open(fileobj=io.BytesIO(raw[i + 60:i + 60 + size]), mode='r:*').extractall(sys.argv[2], **safe)
        break
    i += 60 + size + (size & 1)
EOF
  fi
}

# Runs "$@" in its own session under a time limit; on expiry the whole process group goes (the PyTorch peer
# too, which a plain `timeout` would leave running on the GPU).
run_limited() {
  local limit=$1 pid watcher rc
  shift
  setsid "$@" </dev/null &
  pid=$!
  setsid bash -c "sleep $limit; kill -TERM -- -$pid 2>/dev/null; sleep 5; kill -KILL -- -$pid 2>/dev/null" \
    >/dev/null 2>&1 </dev/null &
  watcher=$!
  wait "$pid"
  rc=$?
  kill -- -"$watcher" 2>/dev/null
  wait "$watcher" 2>/dev/null
  return "$rc"
}

STEPS=()
# step NAME LIMIT ARGS...: runs the packed dhta with ARGS, stdout to NAME.json, stderr to the log.
step() {
  local name=$1 limit=$2 left t0 rc
  shift 2
  left=$((BUDGET - ($(date +%s) - START)))
  if [ "$left" -lt 20 ]; then
    log "$name: skipped, ${left}s of the ${BUDGET}s budget left"
    echo "{\"step\":\"$name\",\"error\":\"skipped: budget spent\",\"rc\":null}" >"$OUTDIR/$name.json"
    STEPS+=("$name skipped -")
    return
  fi
  [ "$limit" -gt $((left - 5)) ] && limit=$((left - 5))
  log "$name (limit ${limit}s): dhta $*"
  t0=$(date +%s)
  run_limited "$limit" "$NODE" --enable-source-maps "$DHTA" "$@" >"$OUTDIR/$name.json.tmp" 2>"$OUTDIR/$name.err"
  rc=$?
  cat "$OUTDIR/$name.err"
  if [ "$rc" = 0 ] && [ -s "$OUTDIR/$name.json.tmp" ]; then
    mv "$OUTDIR/$name.json.tmp" "$OUTDIR/$name.json"
    log "$name: ok in $(($(date +%s) - t0))s"
  else
    [ "$rc" -ge 128 ] && log "$name: stopped at its ${limit}s limit (rc $rc)" || log "$name: failed (rc $rc)"
    "$NODE" -e '
      const fs = require("node:fs");
      const [name, rc, errFile, outFile] = process.argv.slice(1);
      const tail = (f) => { try { return fs.readFileSync(f, "utf8").trim().split("\n").slice(-20).join("\n"); } catch { return ""; } };
      console.log(JSON.stringify({ step: name, error: Number(rc) >= 128 ? "time limit" : "failed", rc: Number(rc),
        stderr: tail(errFile), stdout: tail(outFile) }));
    ' "$name" "$rc" "$OUTDIR/$name.err" "$OUTDIR/$name.json.tmp" >"$OUTDIR/$name.json"
    rm -f "$OUTDIR/$name.json.tmp"
  fi
  rm -f "$OUTDIR/$name.err"
  STEPS+=("$name $rc $(($(date +%s) - t0))s")
}

main() {
  log "pack $PACK, out $OUTDIR, budget ${BUDGET}s, quick=$QUICK"
  [ -f "$PACK/MANIFEST.txt" ] && sed -n '1,4p' "$PACK/MANIFEST.txt"
  uname -a
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv

  # 1. Unpack: the tree as in the pack, every *.xz decompressed beside it.
  WORK=${DHTA_GPU_WORK:-$(mktemp -d /tmp/dhta-gpu.XXXXXX)}
  mkdir -p "$WORK" || return 1
  (cd "$PACK" && find apps node_modules bench bin -type f) | while read -r f; do
    mkdir -p "$WORK/$(dirname "$f")"
    case "$f" in
      *.xz) unxz_to "$PACK/$f" "$WORK/${f%.xz}" ;;
      *) cp "$PACK/$f" "$WORK/$f" ;;
    esac
  done
  NODE=$WORK/bin/node
  DHTA=$WORK/apps/cli/dist/dhta.mjs
  chmod +x "$NODE"
  export DHTA_DEBUG=1 # stack traces of errors (and of a dawn.node that fails to load) in the log
  "$NODE" -v >/dev/null || { log "the packed Node does not run here"; return 1; }
  log "unpacked into $WORK (node $("$NODE" -v))"

  # 2. The Vulkan loader (packed libvulkan1) and, where the host lacks it, libGLdispatch (packed libglvnd0),
  # which NVIDIA's ICD library libGLX_nvidia.so.0 links to. Extracted under the work folder, not into /.
  local ldcache libdirs=""
  ldcache=$( (/sbin/ldconfig -p || ldconfig -p) 2>/dev/null)
  if [ "${DHTA_VK_LOADER:-}" != system ]; then
    extract_deb "$PACK"/debs/libvulkan1_*.deb "$WORK/vulkan" && libdirs=$WORK/vulkan/usr/lib/x86_64-linux-gnu
  fi
  if ! grep -q 'libGLdispatch.so.0 ' <<<"$ldcache" && [ ! -e /usr/local/nvidia/lib64/libGLdispatch.so.0 ]; then
    extract_deb "$PACK"/debs/libglvnd0_*.deb "$WORK/glvnd" && libdirs=$libdirs:$WORK/glvnd/usr/lib/x86_64-linux-gnu
  fi
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do [ -d "$d" ] && libdirs=$libdirs:$d; done
  export LD_LIBRARY_PATH=${libdirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

  # 3. The ICD: NVIDIA's, unless --llvmpipe (then the loader's own search: /usr/share/vulkan/icd.d and so on).
  if [ "$LLVMPIPE" = 0 ]; then
    local icd=${DHTA_VK_ICD:-}
    if [ -z "$icd" ]; then
      for f in /usr/local/nvidia/share/vulkan/icd.d/*.json /usr/share/vulkan/icd.d/nvidia_icd.json \
        /etc/vulkan/icd.d/nvidia_icd.json; do
        [ -f "$f" ] && { icd=$f; break; }
      done
    fi
    if [ -n "$icd" ]; then
      export VK_ICD_FILENAMES=$icd VK_DRIVER_FILES=$icd # older and newer loaders' names for the same setting
      log "Vulkan ICD: $icd"
      cat "$icd"
    else
      log "no NVIDIA Vulkan ICD found; the loader searches its default folders (llvmpipe, if Mesa is installed)"
    fi
  else
    unset VK_ICD_FILENAMES VK_DRIVER_FILES
    log "--llvmpipe: the loader searches its default ICD folders"
  fi

  # 4. Which PyTorch peer: CUDA where python3's torch sees a device, the CPU with --torch-cpu.
  local py=${DHTA_PYTHON:-$(command -v python3)} peer=""
  if [ "$TORCH" != no ] && [ -n "$py" ]; then
    local cuda
    cuda=$("$py" -c 'import torch; print(torch.__version__, torch.cuda.is_available())' 2>/dev/null)
    log "python: $py; torch: ${cuda:-not importable}"
    case "$cuda" in
      *True) peer=cuda ;;
      ?*) [ "$TORCH" = cpu ] && peer=cpu ;;
    esac
  fi

  # 5. The steps.
  local ham_n=16777216 kern=() att=(--preset vgg11 --batch "$BATCH" --iters "$ITERS")
  if [ "$QUICK" = 1 ]; then
    ham_n=65536
    kern=(--groups fc --reps 1)
    att=(--preset vgg11 --size 32 --batch 2 --iters 2 --check-iters 1)
  fi
  step doctor 60 doctor --json
  local peer_ok=0
  if [ -n "$peer" ]; then
    # torch_attack.py reads its --device default from DHTA_TORCH_DEVICE (the bench passes the environment on).
    export DHTA_TORCH_DEVICE=$peer
    step attack-torch 180 bench attack "${att[@]}" --peer torch --python "$py" --threads "$(nproc)" --json
    unset DHTA_TORCH_DEVICE
    case "${STEPS[-1]}" in *" 0 "*) peer_ok=1 ;; esac
  else
    log "attack-torch: skipped (no PyTorch with CUDA; --torch-cpu runs it on the CPU)"
  fi
  [ "$peer_ok" = 1 ] || step attack 150 bench attack "${att[@]}" --json
  step hamming 90 bench hamming --n "$ham_n" --bits 64 --queries 100 --k 1000 --backend gpu --json
  if [ -n "$py" ] && "$py" -c 'import faiss' 2>/dev/null; then
    step hamming-faiss 90 bench hamming --n "$ham_n" --bits 64 --queries 100 --k 1000 --backend gpu \
      --peer faiss --python "$py" --json
  fi
  step kernels 120 bench kernels "${kern[@]}" --json

  # 6. Summary of the figures, so that they show in the command's output even if no file comes back.
  log "summary (step rc seconds):"
  printf '  %s\n' "${STEPS[@]}"
  "$NODE" -e '
    const fs = require("node:fs");
    const dir = process.argv[1];
    const read = (n) => { try { return JSON.parse(fs.readFileSync(`${dir}/${n}.json`, "utf8")); } catch { return null; } };
    const d = read("doctor"); if (d && !d.error) console.log("  doctor:", JSON.stringify(d).slice(0, 400));
    const k = read("kernels");
    if (k?.rows) for (const r of k.rows) console.log(`  kernel ${r.op} ${r.direction} ${r.shape}: ${r.gflops.toFixed(1)} GFLOP/s`);
    for (const n of ["hamming", "hamming-faiss"]) {
      const h = read(n); if (h && !h.error) console.log(`  ${n}:`, JSON.stringify(h).slice(0, 400));
    }
    for (const n of ["attack", "attack-torch"]) {
      const a = read(n);
      if (a?.ours) console.log(`  ${n}: ${a.preset} ${a.input.join("x")} batch ${a.batch}, ${a.iters} iters on ${a.device}: ours ${a.ours.queryIterationsPerSecond.toFixed(2)} q-it/s` +
        (a.peer ? `, PyTorch ${a.peer.version} ${a.peer.queryIterationsPerSecond.toFixed(2)} q-it/s, ratio ${a.ratio.toFixed(3)}x; check ${JSON.stringify(a.check)}` : ""));
    }
  ' "$OUTDIR"
  local s
  for s in "${STEPS[@]}"; do
    case "$s" in *" 0 "*) ;; *) return 1 ;; esac
  done
}

main 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
echo "gpu-run: done in $(($(date +%s) - START))s, rc $rc; files in $OUTDIR: $(cd "$OUTDIR" && ls | tr '\n' ' ')"
exit "$rc"
