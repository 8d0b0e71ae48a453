import { basename, extname } from 'node:path';
import type { Command } from '../command.js';
import { numOpt, strOpt } from '../command.js';
import { SliceformError } from '../../common/errors.js';
import { readVolume } from '../../io/index.js';
import { INSTANCE_DEFAULTS, type SplitMode } from '../../objects/instances.js';
import { summarise } from '../../objects/measure.js';
import { writeOmeZarrWithLabels } from '../../objects/zarr.js';
import { objectsOf, objectSpacing, readObjectLabels, writeInstanceTiff, writeObjectTables, type LabelsMode } from '../../objects/files.js';

const usage = `Usage: sliceform objects --labels SEG [--image IMG] --out OBJECTS.csv [options]

Turns a segmentation into objects: connected components of each object class (classes >= 2; class 1 is
background), touching objects split by a seeded watershed on the distance transform (µm), objects smaller
than --min-size-um3 removed; then one row per object: id, class, voxels, volume_um3, centroid_{z,y,x}_um,
bounding box (bbox_*_vox, start inclusive, end exclusive), equivalent_diameter_um, surface_um2, sphericity,
and mean/max intensity per image channel. Writes CSV (--out) and JSON (--json, default beside the CSV),
optionally the instance labels (--instances, uint16 ImageJ TIFF, uint32 above 65535 objects), and prints a
JSON summary on stdout. Details: docs/objects.md.

Options:
  --labels SEG              segmentation: classes 1..K (densify/segment output), or see --labels-mode
  --labels-dataset D        HDF5 dataset of SEG (e.g. label)
  --image IMG               the image, for intensities and voxel size (same x/y/z as SEG)
  --dataset D               HDF5 dataset of IMG (e.g. raw)
  --out OBJECTS.csv         per-object table (CSV, header names the units)
  --json OBJECTS.json       the same as JSON with a summary (default: --out with .json)
  --instances INST.tif      also write the instance labels (ImageJ TIFF; Fiji/MorphoLibJ and napari read it)
  --dtype uint16|uint32     instance TIFF type (default uint16, uint32 when needed)
  --zarr OUT.zarr           also an OME-Zarr (NGFF 0.4) with the image and the ids as labels/objects (needs --image)
  --labels-mode M           semantic (default: classes 1..K) | foreground (label > 0 is one object class,
                            e.g. an instance ground truth taken as a mask) | instances (ids as they are)
  --split S                 distance (default) | probability (distance x foreground probability, needs
                            --probabilities) | none (connected components only)
  --probabilities P.tif     per-class probabilities from densify --probabilities
  --min-separation-um D     seeds closer than D µm are one object (default ${INSTANCE_DEFAULTS.minSeparationUm})
  --smooth-um S             Gaussian sigma (µm) on the distance map before seeding (default ${INSTANCE_DEFAULTS.smoothUm})
  --min-size-um3 V          drop objects smaller than V µm³ (default ${INSTANCE_DEFAULTS.minSizeUm3})
  --classes C1,C2           object classes (default every class >= 2 present)
  --boundary-class B        membrane-stained cells: objects are the regions enclosed by class B
  --seed-depth-um S         with --boundary-class: seeds are voxels farther than S µm from B (default ${INSTANCE_DEFAULTS.seedDepthUm})
  -h, --help                show this help

Exit codes: 0 ok, 2 bad input (unreadable files, labels of another shape than the image, float labels,
an empty mask).`;

const objects: Command = {
  name: 'objects',
  summary: 'instances (components + watershed split) and a per-object table in µm (CSV/JSON)',
  usage,
  options: {
    labels: { type: 'string' },
    'labels-dataset': { type: 'string' },
    image: { type: 'string' },
    dataset: { type: 'string' },
    out: { type: 'string' },
    json: { type: 'string' },
    instances: { type: 'string' },
    dtype: { type: 'string' },
    zarr: { type: 'string' },
    'labels-mode': { type: 'string' },
    split: { type: 'string' },
    probabilities: { type: 'string' },
    'min-separation-um': { type: 'string' },
    'smooth-um': { type: 'string' },
    'min-size-um3': { type: 'string' },
    classes: { type: 'string' },
    'boundary-class': { type: 'string' },
    'seed-depth-um': { type: 'string' },
  },
  async run(args, io) {
    const v = args.values;
    const labelsPath = strOpt(v, 'labels', true);
    const imagePath = strOpt(v, 'image');
    const out = strOpt(v, 'out');
    const instPath = strOpt(v, 'instances');
    if (!out && !instPath && !strOpt(v, 'json')) throw new SliceformError('bad-input', 'missing required option --out (or --json / --instances)');
    const json = strOpt(v, 'json') ?? (out ? out.slice(0, out.length - extname(out).length) + '.json' : undefined);
    const mode = (strOpt(v, 'labels-mode') ?? 'semantic') as LabelsMode;
    if (!['semantic', 'foreground', 'instances'].includes(mode)) throw new SliceformError('bad-input', `--labels-mode must be semantic, foreground or instances, got "${mode}"`);
    const split = (strOpt(v, 'split') ?? 'distance') as SplitMode;
    if (!['distance', 'probability', 'none'].includes(split)) throw new SliceformError('bad-input', `--split must be distance, probability or none, got "${split}"`);
    const dtype = strOpt(v, 'dtype') as 'uint16' | 'uint32' | undefined;
    if (dtype && dtype !== 'uint16' && dtype !== 'uint32') throw new SliceformError('bad-input', `--dtype must be uint16 or uint32, got "${dtype}"`);
    const positive = (name: string) => {
      const n = numOpt(v, name);
      if (n !== undefined && !(n >= 0)) throw new SliceformError('bad-input', `--${name} must be >= 0, got ${n}`);
      return n;
    };
    const classes = strOpt(v, 'classes')?.split(',').map((s) => {
      const c = Number(s.trim());
      if (!Number.isInteger(c) || c < 1) throw new SliceformError('bad-input', `--classes: "${s}" is not a class number`);
      return c;
    });
    const boundary = numOpt(v, 'boundary-class');
    if (boundary !== undefined && !(Number.isInteger(boundary) && boundary >= 1)) throw new SliceformError('bad-input', `--boundary-class must be a class number, got ${boundary}`);
    const warn = (w: string) => io.err(`sliceform objects: warning: ${w}`);

    const image = imagePath ? await readVolume(imagePath, { dataset: strOpt(v, 'dataset'), onWarning: warn }) : null;
    const labels = await readObjectLabels(labelsPath, image, strOpt(v, 'labels-dataset'));
    const probabilities = strOpt(v, 'probabilities') ? await readVolume(strOpt(v, 'probabilities')!, { onWarning: warn }) : undefined;
    const spacing = objectSpacing(labels, image, warn);
    const t0 = Date.now();
    const res = objectsOf(labels, image, spacing, {
      labelsMode: mode,
      split,
      classes,
      probabilities,
      minSeparationUm: positive('min-separation-um'),
      smoothUm: positive('smooth-um'),
      minSizeUm3: positive('min-size-um3'),
      boundaryClass: boundary,
      seedDepthUm: positive('seed-depth-um'),
    });
    const d = { x: labels.shape.x, y: labels.shape.y, z: labels.shape.z };
    const meta = { labels: labelsPath, image: imagePath ?? null, labelsMode: mode, split: mode === 'instances' ? 'none' : split };
    await writeObjectTables(res, out, json, { ...meta, source: basename(labelsPath) });
    let instDtype: string | null = null;
    if (instPath) instDtype = await writeInstanceTiff(instPath, res.instances, d, spacing, dtype);
    const zarrPath = strOpt(v, 'zarr');
    if (zarrPath) {
      if (!image) throw new SliceformError('bad-input', '--zarr needs --image (the OME-Zarr holds the image and its labels)');
      const big = res.instances.count > 65535 || dtype === 'uint32';
      await writeOmeZarrWithLabels(
        zarrPath,
        { data: image.data, dtype: image.dtype, dims: d, channels: image.shape.c, channelNames: image.channelNames },
        { data: big ? res.instances.labels : Uint16Array.from(res.instances.labels), name: 'objects' },
        spacing,
      );
    }
    io.out(
      JSON.stringify(
        {
          ...meta,
          out: out ?? null,
          json: json ?? null,
          instances: instPath ?? null,
          instancesDtype: instDtype,
          zarr: zarrPath ?? null,
          spacing_um: spacing,
          objects: res.rows.length,
          splitByWatershed: res.instances.split,
          removedSmall: res.instances.removedSmall,
          summary: summarise(res.rows),
          seconds: (Date.now() - t0) / 1000,
        },
        null,
        2,
      ),
    );
    return 0;
  },
};

export default objects;
