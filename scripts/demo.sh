#!/usr/bin/env bash
# The main job, end to end on the bundled sample (plant nuclei 1135, MIT): ground truth on ONE slice per axis
# (xy, xz, yz through the middle) as the "painted" sparse labels, densify -> dense 3D segmentation, IoU
# against the full ground truth on every voxel that was not annotated, and a PNG snapshot.
# About 5 minutes on 2 CPU cores (4 minutes of training). MINUTES=… changes the training budget.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

OUT=${OUT:-demo-out}
MINUTES=${MINUTES:-4}
SAMPLE=resources/samples/1135_mini.h5
mkdir -p "$OUT"

echo "demo: sparse labels = ground truth on the middle xy, xz and yz slices"
node bin/sliceform.js make-sparse --truth "$SAMPLE" --dataset label --slices 1 --out "$OUT/sparse.tif" >"$OUT/sparse.json"

echo "demo: densify (${MINUTES} min of training, then overlap-tile prediction)"
node bin/sliceform.js densify --image "$SAMPLE" --dataset raw --labels "$OUT/sparse.tif" \
  --out "$OUT/segmentation.tif" --minutes "$MINUTES" --model "$OUT/model" --snapshot "$OUT/segmentation.png" \
  --truth "$SAMPLE" --truth-dataset label >"$OUT/densify.json"

node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const iou = r.truth.iou["2"];
console.log(`demo: nucleus IoU over the ${r.truth.scoredVoxels} unannotated voxels: ${iou.toFixed(3)}`);
console.log(`demo: ${r.training.iterations} training iterations in ${r.training.seconds.toFixed(0)} s, prediction ${r.predictSeconds.toFixed(0)} s`);
console.log(`demo: wrote ${r.out}, ${r.snapshot} and the model folder`);
' "$OUT/densify.json"
