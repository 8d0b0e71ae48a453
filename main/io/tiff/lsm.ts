/** Zeiss LSM: the CZ_LSMINFO structure (tag 34412) and channel names from its sub-records. */
import { VolumeReadError } from '../../common/errors.js';
import type { FileSource } from '../source.js';

export interface LsmInfo {
  dimX: number;
  dimY: number;
  dimZ: number;
  dimC: number;
  dimT: number;
  dataType: number;
  /** metres */
  voxelX: number;
  voxelY: number;
  voxelZ: number;
  scanType: number;
  offsetChannelColors: number;
  offsetScanInformation: number;
}

export function parseLsmInfo(b: Buffer, file: string): LsmInfo {
  if (b.length < 128) throw lsmError(file, `CZ_LSMINFO is ${b.length} bytes, expected at least 128`);
  // LSM files are always little-endian.
  const i32 = (o: number) => b.readInt32LE(o);
  const info: LsmInfo = {
    dimX: i32(8),
    dimY: i32(12),
    dimZ: i32(16),
    dimC: i32(20),
    dimT: i32(24),
    dataType: i32(28),
    voxelX: b.readDoubleLE(40),
    voxelY: b.readDoubleLE(48),
    voxelZ: b.readDoubleLE(56),
    scanType: b.readUInt16LE(88),
    offsetChannelColors: b.readUInt32LE(108),
    offsetScanInformation: b.readUInt32LE(124),
  };
  for (const [k, v] of [
    ['DimensionX', info.dimX],
    ['DimensionY', info.dimY],
    ['DimensionZ', info.dimZ],
    ['DimensionChannels', info.dimC],
    ['DimensionTime', info.dimT],
  ] as const) {
    if (!(v >= 1 && v <= 1 << 24)) throw lsmError(file, `CZ_LSMINFO ${k} = ${v} is invalid`);
  }
  for (const v of [info.voxelX, info.voxelY, info.voxelZ]) {
    if (!Number.isFinite(v)) throw lsmError(file, 'CZ_LSMINFO voxel size is not a number');
  }
  return info;
}

function lsmError(file: string, m: string): VolumeReadError {
  return new VolumeReadError(file, m);
}

/** ChannelColors names ("Ch1-T1") — one per channel. */
async function readColorNames(src: FileSource, off: number): Promise<string[] | null> {
  if (off < 8 || off + 24 > src.size) return null;
  const h = await src.read(off, 24, 'LSM ChannelColors');
  const size = h.readUInt32LE(0);
  const nnames = h.readUInt32LE(8);
  const noffset = h.readUInt32LE(16);
  if (size > 1 << 20 || noffset >= size || off + size > src.size || nnames > 1024) return null;
  const b = await src.read(off + noffset, size - noffset, 'LSM ChannelColors names');
  const names: string[] = [];
  let p = 0;
  while (p + 4 < b.length && names.length < nnames) {
    const n = b.readUInt32LE(p);
    if (n === 0 || p + 4 + n > b.length) break;
    const s = b.subarray(p + 4, p + 4 + n);
    const z = s.indexOf(0);
    names.push(s.toString('latin1', 0, z < 0 ? s.length : z));
    p += 4 + n;
  }
  return names;
}

interface Track {
  detection: { channelName?: string; dyeName?: string; acquire?: number }[];
}

/** Walks the ScanInformation tree collecting tracks and their detection channels (dye names). */
async function readScanTracks(src: FileSource, off: number): Promise<Track[] | null> {
  if (off < 8 || off + 12 > src.size) return null;
  const len = Math.min(src.size - off, 1 << 20);
  const b = await src.read(off, len, 'LSM ScanInformation');
  if (b.readUInt32LE(0) !== 0x10000000) return null;
  const tracks: Track[] = [];
  let p = 12;
  for (let guard = 0; guard < 100000 && p + 12 <= b.length; guard++) {
    const entry = b.readUInt32LE(p);
    const type = b.readUInt32LE(p + 4);
    const size = b.readUInt32LE(p + 8);
    p += 12;
    if (p + size > b.length) break;
    if (entry === 0x40000000) tracks.push({ detection: [] });
    else if (entry === 0x70000000) tracks[tracks.length - 1]?.detection.push({});
    else if (entry === 0x70000014 || entry === 0x70000026 || entry === 0x70000001) {
      const det = tracks[tracks.length - 1]?.detection.at(-1);
      if (det) {
        if (entry === 0x70000001 && type === 4) det.acquire = b.readInt32LE(p);
        else if (type === 2) {
          const s = b.subarray(p, p + size);
          const z = s.indexOf(0);
          const str = s.toString('latin1', 0, z < 0 ? s.length : z);
          if (entry === 0x70000014) det.channelName = str;
          else if (entry === 0x70000026) det.dyeName = str;
        }
      }
    }
    p += size;
  }
  return tracks;
}

/**
 * Channel names: the dye of each detection channel ("DAPI"), matched through ChannelColors names
 * ("<channel>-T<track>"), else the ChannelColors name itself. Null when nothing usable.
 */
export async function readLsmChannelNames(
  src: FileSource,
  info: LsmInfo,
  nc: number,
): Promise<string[] | null> {
  try {
    const colorNames = (await readColorNames(src, info.offsetChannelColors)) ?? [];
    const tracks = (await readScanTracks(src, info.offsetScanInformation)) ?? [];
    const names: string[] = [];
    for (let c = 0; c < nc; c++) {
      const cn = colorNames[c];
      let name: string | undefined;
      const m = cn ? /^(.*)-T(\d+)$/.exec(cn) : null;
      if (m) {
        const track = tracks[Number(m[2]) - 1];
        const det = track?.detection.find((d) => d.channelName === m[1]);
        if (det?.dyeName) name = det.dyeName;
      }
      names.push(name || cn || `C${c + 1}`);
    }
    return names;
  } catch {
    return null; // names are cosmetic: a corrupt sub-record must not make the image unreadable
  }
}
