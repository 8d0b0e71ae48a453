/** Minimal OME-XML reader: the first Image's Pixels, Channels and TiffData blocks. */
import { VolumeReadError } from '../../common/errors.js';
import type { DType } from '../../common/volume.js';

export interface OmeTiffData {
  ifd: number;
  ifdGiven: boolean;
  firstZ: number;
  firstC: number;
  firstT: number;
  planeCount?: number;
  uuid?: string;
  fileName?: string;
}

export interface OmePixels {
  uuid?: string;
  imageCount: number;
  dimensionOrder: string;
  sizeX: number;
  sizeY: number;
  sizeZ: number;
  sizeC: number;
  sizeT: number;
  type?: string;
  physX?: number;
  physY?: number;
  physZ?: number;
  physXUnit?: string;
  physYUnit?: string;
  physZUnit?: string;
  channelNames: string[];
  tiffData: OmeTiffData[];
}

function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (_, e: string) => {
    switch (e) {
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'amp':
        return '&';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
      default:
        return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    }
  });
}

/** Attributes of an element's start tag (namespace prefixes dropped). */
function attrs(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([\w:.-]+)\s*=\s*("([^"]*)"|'([^']*)')/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(tag))) {
    const name = m[1]!.includes(':') ? m[1]!.split(':').pop()! : m[1]!;
    out[name] = unescapeXml(m[3] ?? m[4] ?? '');
  }
  return out;
}

const OME_TYPES: Record<string, DType | 'float' | 'double'> = {
  int8: 'int8',
  uint8: 'uint8',
  int16: 'int16',
  uint16: 'uint16',
  int32: 'int32',
  uint32: 'uint32',
  float: 'float',
  double: 'double',
};

export function parseOmeXml(xml: string, file: string): OmePixels {
  const fail = (m: string): never => {
    throw new VolumeReadError(file, `OME-XML: ${m}`);
  };
  const omeTag = /<(?:\w+:)?OME[\s>][^>]*>?/.exec(xml)?.[0] ?? '';
  const images = xml.match(/<(?:\w+:)?Image[\s>]/g) ?? [];
  const imgStart = xml.search(/<(?:\w+:)?Image[\s>]/);
  if (imgStart < 0) fail('no Image element');
  const imgEnd = xml.indexOf('Image>', imgStart + 6);
  const img = xml.slice(imgStart, imgEnd < 0 ? xml.length : imgEnd + 6);
  const pixTag = /<(?:\w+:)?Pixels\s[^>]*>/.exec(img)?.[0];
  if (!pixTag) fail('no Pixels element');
  const pa = attrs(pixTag!);
  const int = (k: string, required = true): number => {
    const v = Number(pa[k]);
    if (!Number.isInteger(v) || v < 1 || v > 1 << 24) {
      if (!required) return 1;
      fail(`Pixels ${k}="${pa[k] ?? ''}" is invalid`);
    }
    return v;
  };
  const order = pa.DimensionOrder ?? 'XYZCT';
  if (!/^XY(ZCT|ZTC|CZT|CTZ|TZC|TCZ)$/.test(order)) fail(`unknown DimensionOrder "${order}"`);
  const num = (k: string) =>
    pa[k] !== undefined && Number.isFinite(Number(pa[k])) ? Number(pa[k]) : undefined;
  const channelNames: string[] = [];
  for (const m of img.matchAll(/<(?:\w+:)?Channel[\s>][^>]*>/g)) channelNames.push(attrs(m[0]).Name ?? '');
  const tiffData: OmeTiffData[] = [];
  for (const m of img.matchAll(/<(?:\w+:)?TiffData(\s[^>]*)?(\/>|>([\s\S]*?)<\/(?:\w+:)?TiffData>)/g)) {
    const a = attrs(m[1] ?? '');
    const inner = m[3] ?? '';
    const uuidTag = /<(?:\w+:)?UUID[^>]*>([^<]*)</.exec(inner);
    const n = (k: string, d: number) => {
      const v = Number(a[k]);
      return a[k] !== undefined && Number.isInteger(v) && v >= 0 ? v : d;
    };
    tiffData.push({
      ifd: n('IFD', 0),
      ifdGiven: a.IFD !== undefined,
      firstZ: n('FirstZ', 0),
      firstC: n('FirstC', 0),
      firstT: n('FirstT', 0),
      planeCount: a.PlaneCount !== undefined ? n('PlaneCount', 1) : undefined,
      uuid: uuidTag ? uuidTag[1]!.trim() : undefined,
      fileName: uuidTag ? attrs(uuidTag[0]).FileName : undefined,
    });
    if (tiffData.length > 1_000_000) fail('too many TiffData elements');
  }
  const t = pa.Type ? OME_TYPES[pa.Type] : undefined;
  return {
    uuid: attrs(omeTag).UUID,
    imageCount: images.length,
    dimensionOrder: order,
    sizeX: int('SizeX'),
    sizeY: int('SizeY'),
    sizeZ: int('SizeZ', false),
    sizeC: int('SizeC', false),
    sizeT: int('SizeT', false),
    type: t,
    physX: num('PhysicalSizeX'),
    physY: num('PhysicalSizeY'),
    physZ: num('PhysicalSizeZ'),
    physXUnit: pa.PhysicalSizeXUnit,
    physYUnit: pa.PhysicalSizeYUnit,
    physZUnit: pa.PhysicalSizeZUnit,
    channelNames,
    tiffData,
  };
}

/** Linear plane index of (z, c, t) for a DimensionOrder such as XYZCT (Z fastest). */
export function omePlaneIndex(
  order: string,
  nz: number,
  nc: number,
  nt: number,
  z: number,
  c: number,
  t: number,
): number {
  const dims = order.slice(2).split('') as ('Z' | 'C' | 'T')[];
  const size = { Z: nz, C: nc, T: nt };
  const pos = { Z: z, C: c, T: t };
  let idx = 0;
  let stride = 1;
  for (const d of dims) {
    idx += pos[d] * stride;
    stride *= size[d];
  }
  return idx;
}
