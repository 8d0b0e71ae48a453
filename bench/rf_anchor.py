#!/usr/bin/python3
"""Random-forest anchor of the sparse-label protocol (issue 18): the figure densify must beat.

scikit-image multiscale_basic_features(intensity, edges, texture, sigma_min=1, sigma_max=8) on the float image,
scikit-learn RandomForestClassifier(n_estimators=100, max_depth=10, max_samples=0.05, random_state=0) fitted on
the annotated voxels: the truth's classes on K evenly spaced slices per axis (xy, xz, yz; slice i of K at
floor((i + 0.5) * n / K), exactly `sliceform make-sparse`). Score: IoU of class 2 over the unannotated voxels.

Benchmarks and tests only: the product never runs Python (main/classical/ is the TypeScript learner).

  python3 bench/rf_anchor.py --image H5 --dataset raw --truth F --truth-dataset label|'' \
      --mode instances|membrane --slices K [--features-out F.npy] [--jobs N]

prints one JSON line {iou, seconds, featureSeconds, fitSeconds, predictSeconds, ...}.
"""
import argparse
import json
import sys
import time

import numpy as np


def read_volume(path, dataset):
    if path.endswith(('.h5', '.hdf5', '.hdf')):
        import h5py

        with h5py.File(path, 'r') as f:
            if not dataset:
                sys.exit(f'{path}: HDF5 needs a dataset (--dataset / --truth-dataset)')
            return np.asarray(f[dataset])
    import tifffile

    return np.asarray(tifffile.imread(path))


def truth_classes(truth, mode):
    if mode == 'instances':
        return np.where(truth > 0, 2, 1).astype(np.uint8)
    if mode == 'membrane':
        vals = set(np.unique(truth).tolist())
        if not vals <= {0, 255}:
            sys.exit(f'membrane truth must hold only 0 and 255, found {sorted(vals)[:8]}')
        return np.where(truth == 255, 2, 1).astype(np.uint8)
    sys.exit(f'--mode must be instances or membrane, got {mode}')


def evenly_spaced(n, k, rule='centres'):
    m = max(0, min(n, k))
    if rule == 'inner':  # i * n / (k + 1): 25, 50, 75 of 100 (what some earlier k = 3 anchors used)
        return [int(((i + 1) * n) // (m + 1)) for i in range(m)]
    return [int(((i + 0.5) * n) // m) for i in range(m)]  # make-sparse: 16, 50, 83 of 100


def sparse_labels(classes, k, rule='centres'):
    sparse = np.zeros_like(classes)
    Z, Y, X = classes.shape
    for i in evenly_spaced(Z, k, rule):
        sparse[i] = classes[i]
    for i in evenly_spaced(Y, k, rule):
        sparse[:, i] = classes[:, i]
    for i in evenly_spaced(X, k, rule):
        sparse[:, :, i] = classes[:, :, i]
    return sparse


def features(raw):
    from skimage.feature import multiscale_basic_features

    img = raw.astype(np.float32)
    return multiscale_basic_features(img, intensity=True, edges=True, texture=True, sigma_min=1, sigma_max=8)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--image', required=True)
    p.add_argument('--dataset', default='raw')
    p.add_argument('--truth', required=True)
    p.add_argument('--truth-dataset', default='label')
    p.add_argument('--mode', default='instances', choices=['instances', 'membrane'])
    p.add_argument('--slices', type=int, default=1)
    p.add_argument('--slice-rule', default='centres', choices=['centres', 'inner'],
                   help="centres (default) = sliceform make-sparse's floor((i + 0.5) n / k); inner = (i + 1) n / (k + 1)")
    p.add_argument('--jobs', type=int, default=1, help='n_jobs of the forest (default 1)')
    p.add_argument('--features-out', help='write the feature stack (Z, Y, X, F) float32 as .npy (for tests)')
    a = p.parse_args()
    from sklearn.ensemble import RandomForestClassifier

    t0 = time.time()
    raw = read_volume(a.image, a.dataset)
    truth = read_volume(a.truth, a.truth_dataset)
    if raw.ndim != 3 or raw.shape != truth.shape:
        sys.exit(f'image {raw.shape} and truth {truth.shape} must be the same 3D shape')
    classes = truth_classes(truth, a.mode)
    sparse = sparse_labels(classes, a.slices, a.slice_rule)
    t1 = time.time()
    feats = features(raw)
    if a.features_out:
        np.save(a.features_out, feats)
    t2 = time.time()
    ann = sparse > 0
    clf = RandomForestClassifier(n_estimators=100, max_depth=10, max_samples=0.05, random_state=0, n_jobs=a.jobs)
    clf.fit(feats[ann], sparse[ann])
    t3 = time.time()
    un = ~ann
    pred = clf.predict(feats[un])
    t4 = time.time()
    tr = classes[un]
    inter = int(np.sum((pred == 2) & (tr == 2)))
    union = int(np.sum((pred == 2) | (tr == 2)))
    print(json.dumps({
        'iou': inter / union if union else None,
        'seconds': t4 - t0,
        'featureSeconds': t2 - t1,
        'fitSeconds': t3 - t2,
        'predictSeconds': t4 - t3,
        'annotatedVoxels': int(ann.sum()),
        'slices': a.slices,
        'sliceRule': a.slice_rule,
        'mode': a.mode,
        'predictedFraction': float(np.mean(pred == 2)),
        'truthFraction': float(np.mean(tr == 2)),
    }))


if __name__ == '__main__':
    main()
