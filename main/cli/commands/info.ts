import type { Command } from '../command.js';
import { numOpt, strOpt } from '../command.js';
import { SliceformError } from '../../common/errors.js';
import { probeVolume } from '../../io/index.js';

const usage = `Usage: sliceform info FILE [--dataset D] [--timepoint T]

Prints one JSON object describing a volume file (header only, no voxels are read):
  {"file", "format", "shape": {x,y,z,c,t}, "dtype", "spacing": {x,y,z,unit}, "channels": [names]}
Formats: TIFF stacks, ImageJ hyperstacks, OME-TIFF, Zeiss LSM, HDF5, OME-Zarr / Zarr folders (v2, v3; these
also print "zarrFormat", "ngffVersion", "levels" (shapes of the multiscales levels), "chunks" and "labels").

Options:
  --dataset D     HDF5 dataset / OME-Zarr image path to describe (default: the first 3D/4D image dataset,
                  preferring "raw"; the store's root image)
  --timepoint T   time point that would be loaded (checked against the file; default 0)
  -h, --help      show this help

Exit codes: 0 ok, 2 unreadable or unsupported file (one line on stderr naming the file and the reason).`;

const info: Command = {
  name: 'info',
  summary: "print a volume file's format, shape, dtype and spacing as JSON",
  usage,
  options: {
    dataset: { type: 'string' },
    timepoint: { type: 'string' },
  },
  allowPositionals: true,
  async run(args, io) {
    if (args.positionals.length !== 1) {
      throw new SliceformError(
        'bad-input',
        `info takes exactly one FILE (got ${args.positionals.length})\n\n${usage}`,
      );
    }
    const file = args.positionals[0]!;
    const t = numOpt(args.values, 'timepoint');
    if (t !== undefined && !(Number.isInteger(t) && t >= 0)) {
      throw new SliceformError('bad-input', `--timepoint must be a non-negative integer, got ${t}`);
    }
    const v = await probeVolume(file, {
      dataset: strOpt(args.values, 'dataset'),
      timepoint: t,
      onWarning: (w) => io.err(`sliceform info: warning: ${w}`),
    });
    io.out(
      JSON.stringify({
        file,
        format: v.format,
        shape: v.shape,
        dtype: v.dtype,
        spacing: v.spacing,
        channels: v.channelNames,
        ...(v.format === 'hdf5' ? { dataset: v.metadata.dataset } : {}),
        ...(v.format === 'ome-zarr' || v.format === 'zarr'
          ? (({ dataset, zarrFormat, ngffVersion, levels, chunks, labels }) => ({ dataset, zarrFormat, ngffVersion, levels, chunks, labels: labels ?? [] }))(v.metadata)
          : {}),
      }),
    );
    return 0;
  },
};

export default info;
