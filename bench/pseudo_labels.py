#!/usr/bin/python3
"""Teacher experiment (issue 18 item 4): sparse labels plus forest pseudo-labels on extra planes.

The forest (fitted on the paint; its full-resolution probabilities from `bench/quality.mjs --keep`) labels the
voxels it is confident about (max probability >= --confidence) on extra planes per axis, the planes of
`make-sparse --slices 2k+1` that the paint does not already have; painted voxels are kept as they are. The
result is a label TIFF for `sliceform densify --labels`; score it on the ORIGINAL paint's unannotated voxels.

  python3 bench/pseudo_labels.py --sparse sparse.tif --forest forest.tif --k 1 --out pseudo.tif [--confidence 0.9]
"""
import argparse
import json

import numpy as np
import tifffile


def evenly_spaced(n, k):
    return [int(((i + 0.5) * n) // k) for i in range(k)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sparse', required=True)
    ap.add_argument('--forest', required=True)
    ap.add_argument('--k', type=int, required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--confidence', type=float, default=0.9)
    a = ap.parse_args()
    sparse = tifffile.imread(a.sparse)
    p = tifffile.imread(a.forest).astype(np.float32)  # (Z, 2, Y, X)
    p2 = p[:, 1] / np.maximum(p[:, 0] + p[:, 1], 1e-12)
    conf = np.maximum(p2, 1 - p2) >= a.confidence
    pseudo = np.where(p2 > 0.5, 2, 1).astype(np.uint8)
    planes = np.zeros(sparse.shape, bool)
    own = [set(evenly_spaced(n, a.k)) for n in sparse.shape]
    for ax, n in enumerate(sparse.shape):
        for i in evenly_spaced(n, 2 * a.k + 1):
            if i in own[ax]:
                continue
            sl = [slice(None)] * 3
            sl[ax] = i
            planes[tuple(sl)] = True
    add = planes & conf & (sparse == 0)
    out = sparse.copy()
    out[add] = pseudo[add]
    tifffile.imwrite(a.out, out, imagej=True, metadata={'axes': 'ZYX'})
    print(json.dumps({'painted': int((sparse > 0).sum()), 'pseudo': int(add.sum()), 'pseudoClass2': int((out[add] == 2).sum()),
                      'pseudoAccuracyNote': 'scored offline against the truth', 'planeVoxels': int(planes.sum())}))


if __name__ == '__main__':
    main()
