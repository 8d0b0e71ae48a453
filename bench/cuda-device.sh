#!/usr/bin/env bash
# One prepared script for a session that has the GPU device machine (see issue 3). UNTESTED ON A GPU: written
# and dry-run on a CPU-only machine (the `pack` step and the CPU path of `run`); the CUDA path has not run yet.
#
#   bash bench/cuda-device.sh pack   # HERE (dev machine): .tmp/cuda-kit.tar.xz = node binary + N-API headers
#                                    # + node-addon-api (about 30 MB; a device call carries 64 MiB at most)
#   run tool: command "bash bench/cuda-device.sh run", carry [".tmp/cuda-kit.tar.xz"], timeout_s ~ 540
#
# `run` (on the device machine, repository root): unpacks the kit, builds the addon with g++ straight against
# the libtorch inside the PyTorch of `python3` there (no node-gyp, no network), checks CUDA, then runs the paper
# preset training step in both engines: fp32, then TF32 + bf16 autocast + channels_last_3d. Results land in
# $OUT (bench JSON + log). Anchor (issue 3, H100, PyTorch 2.11): 86 ms/step fp32, 18.6 ms/step TF32+bf16+CL.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KIT="$ROOT/.tmp/cuda-kit.tar.xz"
cd "$ROOT"

pack() {
  mkdir -p .tmp/cuda-kit/include/node .tmp/cuda-kit/node-addon-api .tmp/cuda-kit/bin
  cp "$(command -v node)" .tmp/cuda-kit/bin/node
  nodeinc="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")/include/node"
  [ -f "$nodeinc/node_api.h" ] || nodeinc=/usr/include/node
  cp "$nodeinc"/{node_api.h,node_api_types.h,js_native_api.h,js_native_api_types.h} .tmp/cuda-kit/include/node/
  cp node_modules/node-addon-api/{napi.h,napi-inl.h,napi-inl.deprecated.h} .tmp/cuda-kit/node-addon-api/
  tar -C .tmp -cJf "$KIT" cuda-kit
  rm -rf .tmp/cuda-kit
  ls -la "$KIT"
}

run() {
  OUTDIR="${OUT:-$ROOT/bench/out}"
  mkdir -p "$OUTDIR"
  exec > >(tee "$OUTDIR/cuda-device.log") 2>&1
  [ -f "$KIT" ] || { echo "cuda-device: $KIT missing: run 'bash bench/cuda-device.sh pack' first and carry it"; exit 1; }
  tar -C .tmp -xJf "$KIT"
  NODE="$ROOT/.tmp/cuda-kit/bin/node"
  "$NODE" --version
  PY="${SF_BENCH_PYTHON:-python3}"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  TORCH="$("$PY" -c 'import torch,os;print(os.path.dirname(torch.__file__))' 2>/dev/null || true)"
  if [ -n "$TORCH" ] && [ -d "$TORCH/include/torch" ]; then
    INC="-I$TORCH/include -I$TORCH/include/torch/csrc/api/include"; LIB="$TORCH/lib"
    ABI="$("$PY" -c 'import torch;print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
  else
    echo "cuda-device: $PY has no torch with headers; falling back to Debian libtorch (CPU)"
    INC="-I/usr/include -I/usr/include/torch/csrc/api/include"; LIB=/usr/lib/x86_64-linux-gnu; ABI=1
  fi
  "$PY" -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
  LIBS="-ltorch -ltorch_cpu -lc10"
  for l in torch_cuda c10_cuda; do [ -f "$LIB/lib$l.so" ] && LIBS="$LIBS -l$l"; done
  mkdir -p native-models/build/Release
  echo "cuda-device: compiling against $LIB ($LIBS, CXX11 ABI $ABI)"
  time g++ -std=c++17 -O2 -fPIC -shared -fexceptions -frtti -Wno-deprecated-declarations \
    -D_GLIBCXX_USE_CXX11_ABI="$ABI" -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED \
    -I.tmp/cuda-kit/include/node -I.tmp/cuda-kit/node-addon-api $INC \
    native-models/src/*.cc -o native-models/build/Release/sliceform_native.node \
    -L"$LIB" -Wl,-rpath,"$LIB" -Wl,--no-as-needed $LIBS -Wl,--as-needed
  "$NODE" -e "const n=require('./native-models/build/Release/sliceform_native.node');console.log('addon: libtorch',n.torchVersion(),'cuda',n.cudaAvailable())"
  DEV=cpu
  if "$NODE" -e "process.exit(require('./native-models/build/Release/sliceform_native.node').cudaAvailable()?0:1)"; then DEV=cuda; fi
  export SF_BENCH_PYTHON="$PY"
  if [ "$DEV" = cuda ]; then
    "$NODE" bench/engine.bench.mjs --device cuda --precision fp32 --no-channels-last --only paper --threads 8
    "$NODE" bench/engine.bench.mjs --device cuda --precision bf16 --only paper --threads 8
  else
    echo "cuda-device: no CUDA device visible; CPU smoke run of the small case only"
    "$NODE" bench/engine.bench.mjs --quick --no-paper --only infer
  fi
  cp bench/out/engine-*.json "$OUTDIR/" 2>/dev/null || true
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: bash bench/cuda-device.sh pack|run"; exit 2 ;;
esac
