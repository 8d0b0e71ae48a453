#!/usr/bin/python3
"""Offline experiments on the recipe's mix and decision, from the runs `bench/quality.mjs --keep DIR` kept.

Each kept run has the network's and the forest's full-resolution probabilities apart (cnn.tif, forest.tif:
`segment` with the forest weight 0 and 1; the product mixes at the working resolution and interpolates
trilinearly, which is linear, so a mix of the two files is the product's mix exactly), the sparse labels and
the bench's JSON row. Every candidate rule below decides from those and from the painted voxels only (never
from the scored ones); the score is the bench's: IoU of class 2 over the unannotated voxels.

Then leave-one-task-out (LOTO): for each task, the candidate with the best mean IoU - RF over the other two
tasks' cells (k = 1, 3, every seed) is what the held-out task would have got.

  python3 bench/quality_mix.py --keep bench/out/q1-keep --bench bench/out/quality-full-q1.json [--json F]
      [--variants full,trees300,depth14]   (the forest variants of bench/forest_variants.ts instead)
      [--post]   (the full-resolution forest, forest-full.f32: its weight, the painted-fraction cut, 3D fill
                  holes / small-component removal sized from the paint, smoothing)
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
import tifffile

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'data')


def truth_classes(task):
    if task in ('1135', '1136'):
        import h5py

        with h5py.File(os.path.join(DATA, 'plantseg_nuclei_mini', f'{task}_mini.h5'), 'r') as f:
            return np.where(np.asarray(f['label']) > 0, 2, 1).astype(np.uint8)
    t = tifffile.imread(os.path.join(DATA, 'plantseg_ovule_membrane', 'sample_ovule_membrane_truth.tif'))
    return np.where(t == 255, 2, 1).astype(np.uint8)


def fg(path):
    """class-2 probability of a (Z, 2, Y, X) float32 hyperstack."""
    a = tifffile.imread(path).astype(np.float32)
    if a.ndim != 4 or a.shape[1] != 2:
        sys.exit(f'{path}: expected (Z, 2, Y, X) probabilities, got {a.shape}')
    return a[:, 1] / np.maximum(a[:, 0] + a[:, 1], 1e-12)


def iou(pred2, truth2, mask):
    p, t = pred2[mask], truth2[mask]
    u = np.logical_or(p, t).sum()
    return float(np.logical_and(p, t).sum() / u) if u else 1.0


def fg_iou_painted(pred2, sparse):
    m = sparse > 0
    return iou(pred2, sparse == 2, m)


def sharpen(p, T):
    """temperature on the two-class probabilities: logit / T."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    z = np.log(p / (1 - p)) / T
    return 1 / (1 + np.exp(-z))


def cut_for_fraction(score, frac):
    """threshold so that a fraction `frac` of `score` lies above it."""
    if frac <= 0:
        return np.inf
    return np.quantile(score, 1 - frac)


def candidates(c, f, sparse):
    """name -> boolean class-2 prediction; each uses the painted voxels (sparse > 0) at most."""
    painted = sparse > 0
    paint_frac = float((sparse == 2).sum() / painted.sum())
    out = {}
    mix = {w: (1 - w) * c + w * f for w in (0, 0.3, 0.4, 0.5, 0.6, 0.7, 1)}
    for w, m in mix.items():
        out[f'w{w}'] = m > 0.5
    for T in (0.5, 2):
        for w in (0.5,):
            out[f'w{w}_T{T}'] = ((1 - w) * sharpen(c, T) + w * f) > 0.5
    # the weight that maximises the foreground IoU on the painted voxels (which both learners were fitted on)
    best = max((0.3, 0.5, 0.7), key=lambda w: (fg_iou_painted(mix[w] > 0.5, sparse), -abs(w - 0.5)))
    out['w_painted_best'] = mix[best] > 0.5
    # inverse-error weights from the painted voxels: the member that errs less there weighs more
    ec = float(((c > 0.5) != (sparse == 2))[painted].mean())
    ef = float(((f > 0.5) != (sparse == 2))[painted].mean())
    wa = ec / (ec + ef) if ec + ef > 0 else 0.5
    out['w_inverse_error'] = ((1 - wa) * c + wa * f) > 0.5
    # decision by the painted class fraction: the cut on the w=0.5 mix such that...
    m = mix[0.5]
    # ...the painted voxels' predicted class-2 fraction equals the painted one
    out['w0.5_cut_painted_fraction'] = m > cut_for_fraction(m[painted], paint_frac)
    for w in (0, 0.3, 0.7, 1):
        out[f'w{w}_cut_painted_fraction'] = mix[w] > cut_for_fraction(mix[w][painted], paint_frac)
    # ...the whole volume's predicted class-2 fraction equals the painted one
    out['w0.5_cut_volume_fraction'] = m > cut_for_fraction(m.ravel(), paint_frac)
    return out, {'inverse_error_weight': wa, 'painted_best_weight': best, 'paint_fraction': paint_frac}


def painted_planes(sparse):
    """(axis, index) of the painted planes: at least 10 % of the plane painted (make-sparse paints whole planes)."""
    out = []
    for ax in range(3):
        frac = (sparse > 0).mean(axis=tuple(a for a in range(3) if a != ax))
        out += [(ax, int(i)) for i in np.nonzero(frac >= 0.1)[0]]
    return out


def plane(a, ax, i):
    return np.take(a, i, axis=ax)


def paint_stats(sparse):
    """What the paint says about the objects, from its planes only: the class-2 2D component areas and how much
    painted class 1 lies inside class-2 outlines (holes: large for membranes around cells, ~0 for nuclei)."""
    from scipy import ndimage

    areas, enclosed, bg = [], 0, 0
    for ax, i in painted_planes(sparse):
        s = plane(sparse, ax, i)
        fg2 = s == 2
        lab, n = ndimage.label(fg2)
        if n:
            areas += list(np.bincount(lab.ravel())[1:])
        filled = ndimage.binary_fill_holes(fg2)
        enclosed += int((filled & (s == 1)).sum())
        bg += int((s == 1).sum())
    return {'areas': areas, 'enclosed_bg_fraction': enclosed / max(bg, 1)}


def remove_small(pred, size):
    from scipy import ndimage

    lab, n = ndimage.label(pred)
    if n == 0 or size <= 1:
        return pred
    sizes = np.bincount(lab.ravel())
    keep = sizes >= size
    keep[0] = False
    return keep[lab]


def post_candidates(c, f, ffull, sparse):
    """The full-resolution forest (forest-full.f32) mixed with the network, then mixing rules, the painted-
    fraction cut and 3D post-processing; every rule reads the painted voxels at most."""
    from scipy import ndimage

    painted = sparse > 0
    paint_frac = float((sparse == 2).sum() / painted.sum())
    st = paint_stats(sparse)
    areas = np.array(st['areas'] or [1])
    out = {'w0.5': (0.5 * c + 0.5 * f) > 0.5}
    mix = {w: (1 - w) * c + w * ffull for w in (0.3, 0.4, 0.5, 0.6, 0.7)}
    for w, m in mix.items():
        out[f'full_w{w}'] = m > 0.5
    best = max((0.3, 0.5, 0.7), key=lambda w: (fg_iou_painted(mix[w] > 0.5, sparse), -abs(w - 0.5)))
    out['full_w_painted_best'] = mix[best] > 0.5
    m = mix[0.5]
    out['full_w0.5_cut_painted_fraction'] = m > cut_for_fraction(m[painted], paint_frac)
    base = out['full_w0.5']
    filled = ndimage.binary_fill_holes(base)
    out['full_w0.5_fill'] = filled
    # fill holes only where the paint has none (class-1 paint enclosed by class-2 outlines on its planes < 1 %)
    holes = st['enclosed_bg_fraction'] >= 0.01
    out['full_w0.5_fill_if_paint'] = base if holes else filled
    for name, size in (('rm10', 10), ('rm50', 50), ('rm200', 200),
                       ('rm_paint_min', int(areas.min())), ('rm_paint_p10', int(np.percentile(areas, 10)))):
        out[f'full_w0.5_{name}'] = remove_small(base, size)
    out['full_w0.5_fill_if_paint_rm_paint_p10'] = remove_small(out['full_w0.5_fill_if_paint'], int(np.percentile(areas, 10)))
    # a guard on the paint: post-processing kept only when the painted voxels' foreground IoU does not drop
    pp = out['full_w0.5_fill_if_paint_rm_paint_p10']
    out['full_w0.5_post_if_paint_ok'] = pp if fg_iou_painted(pp, sparse) >= fg_iou_painted(base, sparse) - 1e-9 else base
    # smoothing the mixed probabilities before the cut (sigma 1 voxel)
    out['full_w0.5_smooth1'] = ndimage.gaussian_filter(m, 1.0) > 0.5
    return out, {'paint_fraction': paint_frac, 'enclosed_bg_fraction': st['enclosed_bg_fraction'],
                 'paint_area_min': int(areas.min()), 'paint_area_p10': int(np.percentile(areas, 10)),
                 'painted_best_weight_full': best}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--keep', required=True)
    ap.add_argument('--bench', required=True, help="the bench's JSON (rows with anchors)")
    ap.add_argument('--json')
    ap.add_argument('--variants', help='forest variants to compare instead, e.g. full,trees300,depth14')
    ap.add_argument('--post', action='store_true', help='full-resolution forest (forest-full.f32): mixing rules, cuts, 3D post-processing')
    a = ap.parse_args()
    bench = json.load(open(a.bench))
    rows = {(r['task'], r['k'], r['seed']): r for r in bench['rows']}
    truths = {}
    results = []  # (task, k, seed, name, iou, rf)
    info = {}
    for d in sorted(glob.glob(os.path.join(a.keep, '*-k*-s*'))):
        name = os.path.basename(d)
        task, ks, ss = name.split('-')
        k, seed = int(ks[1:]), int(ss[1:])
        if (task, k, seed) not in rows or not os.path.exists(os.path.join(d, 'forest.tif')):
            continue
        r = rows[(task, k, seed)]
        truths.setdefault(task, truth_classes(task))
        t2 = truths[task] == 2
        sparse = tifffile.imread(os.path.join(d, 'sparse.tif'))
        if sparse.shape != t2.shape:
            sys.exit(f'{d}: sparse {sparse.shape} vs truth {t2.shape}')
        c, f = fg(os.path.join(d, 'cnn.tif')), fg(os.path.join(d, 'forest.tif'))
        scored = sparse == 0
        if a.post:
            x = os.path.join(d, 'forest-full.f32')
            if not os.path.exists(x):
                continue
            cands, extra = post_candidates(c, f, np.fromfile(x, np.float32).reshape(c.shape), sparse)
            info[name] = extra
        elif a.variants:
            # forest variants (bench/forest_variants.ts) in the default mix; only runs that have all of them
            files = {v: os.path.join(d, f'forest-{v}.f32') for v in a.variants.split(',')}
            if not all(os.path.exists(x) for x in files.values()):
                continue
            cands = {'w0.5': (0.5 * c + 0.5 * f) > 0.5}
            for v, x in files.items():
                fv = np.fromfile(x, np.float32).reshape(c.shape)
                for w in (0.5, 0.7):
                    cands[f'{v}_w{w}'] = ((1 - w) * c + w * fv) > 0.5
        else:
            cands, extra = candidates(c, f, sparse)
            info[name] = extra
        for cn, pred in cands.items():
            results.append((task, k, seed, cn, iou(pred, t2, scored), r['anchor']))
        # the product's own result must be the w0.5 candidate (a check of this script)
        mine = [x for x in results if x[:4] == (task, k, seed, 'w0.5')][0][4]
        if r['iou'] is not None and abs(mine - r['iou']) > 2e-3:
            print(f'warning: {name}: w0.5 here {mine:.4f}, bench {r["iou"]:.4f}', file=sys.stderr)
    if not results:
        sys.exit('no kept runs with probabilities')
    names = list(dict.fromkeys(x[3] for x in results))
    tasks = sorted(set(x[0] for x in results))
    cells = sorted(set((x[0], x[1]) for x in results))

    def diffs(name, task_set):
        # one value per (task, k) cell, the mean over its seeds, so a cell with more seeds does not weigh more
        out = []
        for t, k in cells:
            if t in task_set:
                v = [x[4] - x[5] for x in results if x[3] == name and x[0] == t and x[1] == k]
                if v:
                    out.append(float(np.mean(v)))
        return out

    print(f'runs: {len(results) // len(names)}; cells (task, k): {cells}\n')
    print('| candidate | ' + ' | '.join(f'{t} k={k}' for t, k in cells) + ' | mean IoU − RF | worst cell mean − RF |')
    print('| --- |' + ' --- |' * (len(cells) + 2))
    for n in names:
        cellv = []
        for t, k in cells:
            v = [x for x in results if x[3] == n and x[0] == t and x[1] == k]
            cellv.append((np.mean([x[4] for x in v]), np.mean([x[4] - x[5] for x in v]), len(v)))
        print(f'| {n} | ' + ' | '.join(f'{m:.3f} ({d:+.3f})' for m, d, _ in cellv) + f' | {np.mean(diffs(n, tasks)):+.4f} | {min(d for _, d, _ in cellv):+.3f} |')
    # one knob at a time, the default first (a tie keeps it)
    groups = {
        'forest weight (argmax)': ['w0.5', 'w0.3', 'w0.7', 'w0', 'w1'],
        'weight from the paint': ['w0.5', 'w_painted_best', 'w_inverse_error'],
        'network temperature (w 0.5)': ['w0.5', 'w0.5_T0.5', 'w0.5_T2'],
        'decision (w 0.5)': ['w0.5', 'w0.5_cut_painted_fraction', 'w0.5_cut_volume_fraction'],
        'forest weight (painted-fraction cut)': ['w0.5_cut_painted_fraction', 'w0.3_cut_painted_fraction', 'w0.7_cut_painted_fraction', 'w0_cut_painted_fraction'],
    }
    if a.variants:
        groups = {'forest variant (w 0.5)': [n for n in names if n == 'w0.5' or n.endswith('_w0.5')]}
    if a.post:
        groups = {
            'forest at full resolution (w 0.5)': ['w0.5', 'full_w0.5'],
            'full-resolution forest weight': ['full_w0.5', 'full_w0.3', 'full_w0.4', 'full_w0.6', 'full_w0.7'],
            'weight from the paint (full)': ['full_w0.5', 'full_w_painted_best'],
            'decision (full, w 0.5)': ['full_w0.5', 'full_w0.5_cut_painted_fraction'],
            'fill holes (full, w 0.5)': ['full_w0.5', 'full_w0.5_fill', 'full_w0.5_fill_if_paint'],
            'small components (full, w 0.5)': ['full_w0.5', 'full_w0.5_rm10', 'full_w0.5_rm50', 'full_w0.5_rm200', 'full_w0.5_rm_paint_min', 'full_w0.5_rm_paint_p10'],
            'post-processing (full, w 0.5)': ['full_w0.5', 'full_w0.5_fill_if_paint', 'full_w0.5_fill_if_paint_rm_paint_p10', 'full_w0.5_post_if_paint_ok'],
            'smoothing (full, w 0.5)': ['full_w0.5', 'full_w0.5_smooth1'],
        }
    print('\nLOTO per knob (each held-out task gets the candidate best on the other tasks by mean IoU − RF over their cells; ties keep the first):\n')
    print('| knob | ' + ' | '.join(f'{t} held out: chosen → its mean IoU − RF' for t in tasks) + ' | verdict |')
    print('| --- |' + ' --- |' * (len(tasks) + 1))
    for g, cand in groups.items():
        cand = [n for n in cand if n in names]
        if not cand:
            continue
        picks = []
        for t in tasks:
            others = [u for u in tasks if u != t]
            best = cand[0]
            for n in cand[1:]:
                if np.mean(diffs(n, others)) > np.mean(diffs(best, others)) + 1e-4:
                    best = n
            picks.append((t, best, np.mean(diffs(best, [t]))))
        chosen = {b for _, b, _ in picks}
        verdict = f'{chosen.pop()} in every fold' if len(chosen) == 1 and len(tasks) >= 3 else 'not unanimous: keep ' + cand[0]
        print(f'| {g} | ' + ' | '.join(f'{b} → {d:+.3f}' for _, b, d in picks) + f' | {verdict} |')
    print('\nLOTO over all candidates at once (each held-out task gets the candidate best on the other tasks, by mean IoU − RF over their cells):\n')
    print('| held-out task | chosen on the others | its mean IoU − RF there | held-out task mean IoU − RF with it | with w0.5 (default) |')
    print('| --- | --- | --- | --- | --- |')
    loto = {}
    for t in tasks:
        others = [u for u in tasks if u != t]
        best = max(names, key=lambda n: np.mean(diffs(n, others)))
        loto[t] = best
        print(f'| {t} | {best} | {np.mean(diffs(best, others)):+.4f} | {np.mean(diffs(best, [t])):+.4f} | {np.mean(diffs("w0.5", [t])):+.4f} |')
    picks = set(loto.values())
    if len(picks) == 1 and len(tasks) >= 3:
        print(f'\nLOTO picks {picks.pop()} in every fold: a default by this rule')
    else:
        print(f'\nLOTO picks {sorted(picks)} over {len(tasks)} task(s): not unanimous over three folds, keep the simpler rule')
    if info:
        print('\nper-run weights chosen from the paint:', json.dumps(info))
    if a.json:
        json.dump({'results': results, 'loto': loto, 'info': info}, open(a.json, 'w'), indent=1)


if __name__ == '__main__':
    main()
