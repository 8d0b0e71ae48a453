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
    const v = m[3] ?? m[4] ?? '';
    out[name] = v.includes('&') ? unescapeXml(v) : v;
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

/** Largest SizeX..SizeT we accept (2^24): real sizes are far smaller, and the file's IFDs bound them anyway. */
export const MAX_SIZE = 1 << 24;
/** At most this many TiffData elements (one per IFD at most in a single-file OME-TIFF). */
export const MAX_TIFFDATA = 1_000_000;

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/**
 * The TiffData blocks of one Image, in one linear pass: each start tag is matched once, and the optional
 * <UUID> child is matched only right after it (a sticky regex), so 300k elements take milliseconds. (A
 * lazy "anything up to </TiffData>" pattern rescans the rest of the document for every self-closing
 * element: quadratic.)
 */
function parseTiffData(img: string, fail: (m: string) => never): OmeTiffData[] {
  const out: OmeTiffData[] = [];
  const start = /<(?:\w+:)?TiffData(?=[\s/>])([^>]*)>/g;
  const uuid = /\s*<(?:\w+:)?UUID(?=[\s/>])([^>]*)>([^<]*)/y;
  let m: RegExpExecArray | null;
  while ((m = start.exec(img))) {
    let body = m[1] ?? '';
    const selfClosing = body.endsWith('/');
    if (selfClosing) body = body.slice(0, -1);
    const a = attrs(body);
    let u: RegExpExecArray | null = null;
    if (!selfClosing) {
      uuid.lastIndex = start.lastIndex;
      u = uuid.exec(img);
      if (u) start.lastIndex = uuid.lastIndex;
    }
    const n = (k: string, d: number) => {
      const v = Number(a[k]);
      return a[k] !== undefined && Number.isInteger(v) && v >= 0 ? v : d;
    };
    out.push({
      ifd: n('IFD', 0),
      ifdGiven: a.IFD !== undefined,
      firstZ: n('FirstZ', 0),
      firstC: n('FirstC', 0),
      firstT: n('FirstT', 0),
      planeCount: a.PlaneCount !== undefined ? n('PlaneCount', 1) : undefined,
      uuid: u ? u[2]!.trim() : undefined,
      fileName: u ? attrs(u[1] ?? '').FileName : undefined,
    });
    if (out.length > MAX_TIFFDATA) fail(`more than ${MAX_TIFFDATA} TiffData elements`);
  }
  return out;
}

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
  // A size that is present must be valid: a SizeC of 1e9 read as "1 channel" would silently give garbage.
  const int = (k: string, required = true): number => {
    if (pa[k] === undefined && !required) return 1;
    const v = Number(pa[k]);
    if (!Number.isInteger(v) || v < 1 || v > MAX_SIZE) {
      fail(
        pa[k] === undefined
          ? `Pixels has no ${k}`
          : `Pixels ${k}="${clip(pa[k]!)}" is not a whole number between 1 and ${MAX_SIZE}`,
      );
    }
    return v;
  };
  const order = pa.DimensionOrder ?? 'XYZCT';
  if (!/^XY(ZCT|ZTC|CZT|CTZ|TZC|TCZ)$/.test(order)) fail(`unknown DimensionOrder "${order}"`);
  // PhysicalSize* must be finite and positive when given (1e400 is Infinity, which would reach the user as null)
  const num = (k: string): number | undefined => {
    if (pa[k] === undefined || pa[k]!.trim() === '') return undefined;
    const v = Number(pa[k]);
    if (!Number.isFinite(v) || v <= 0) fail(`Pixels ${k}="${clip(pa[k]!)}" is not a finite positive number`);
    return v;
  };
  const channelNames: string[] = [];
  for (const m of img.matchAll(/<(?:\w+:)?Channel[\s>][^>]*>/g)) channelNames.push(attrs(m[0]).Name ?? '');
  const tiffData = parseTiffData(img, fail);
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
