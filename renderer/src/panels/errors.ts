/**
 * Error messages for people, not for developers (issue 14, item 8): name the file the user chose (not the
 * server's scratch copy `…/imports/<hash>-name.tif`), say what is wrong in plain words and what to do, and
 * keep the technical message for a "details" disclosure. Pure (no DOM), so unit tests can pin it down.
 */
import { ApiError } from '../../../main/common/api.js';

export interface ExplainedError {
  /** one or two sentences for the status bar */
  text: string;
  /** the original technical message (shown on demand), or undefined when it says nothing more */
  detail?: string;
}

/** `/…/imports/0123456789ab-name.tif` (the web shell's copy of an uploaded file) → `name.tif` */
const SCRATCH_COPY = /(?:[A-Za-z]:)?(?:[\\/][^\s\\/:'"]+)*[\\/]imports[\\/][0-9a-f]{12}-([^\s\\/:'"]+)/g;

export function withUserFileNames(message: string): string {
  return message.replace(SCRATCH_COPY, '$1');
}

/** [what the technical message says, the same in plain words] — first match wins */
const PLAIN: Array<[RegExp, string]> = [
  [/\bENOENT\b|no such file|not there any more/i, 'the file is not there (moved, renamed or deleted).'],
  [/\bEISDIR\b|is a folder|is a directory/i, 'that is a folder, not a stack file.'],
  [/\bEACCES\b|\bEPERM\b|permission denied/i, 'Sliceform is not allowed to access it (file permissions).'],
  [/\bENOSPC\b|no space left/i, 'the disk is full.'],
  [/\bEROFS\b|read-only file system/i, 'that place is read-only.'],
  [
    /truncated|unexpected end of (file|data)|past the end of the file|ends? (early|before)|shorter than|holds \d+ bytes, expected/i,
    'the file is shorter than its contents say: it looks incomplete (an interrupted copy, download or save). Copy or export it again.',
  ],
  [
    /not a TIFF|magic number|not a valid BigTIFF|not an? HDF5|bad signature|unknown (file )?format|unrecognised format|no reader/i,
    'this is not a stack Sliceform can read (TIFF, ImageJ, OME-TIFF, Zeiss LSM or HDF5), or its first bytes are damaged.',
  ],
  [/unsupported compression|unsupported Predictor/i, 'it is compressed in a way Sliceform cannot read (it reads uncompressed, LZW, Deflate and PackBits TIFFs). Re-save it from Fiji.'],
  [
    /unsupported sample type|BitsPerSample|SamplesPerPixel|PhotometricInterpretation/i,
    'its pixel type is not supported (Sliceform reads 8/16/32-bit integer and 32/64-bit float greyscale channels). Convert it in Fiji.',
  ],
  [/too large|out of memory|free memory|exceeds the memory/i, 'the stack is too large for the memory of the computer Sliceform runs on. Crop it, or open one channel or time point.'],
  [
    /OME-XML|OME Size|ImageJ description|DimensionOrder|spacing=|Pixels \w+=|TiffData/i,
    "the file's description of itself (sizes, channels or voxel size) does not match its image data: the metadata is damaged.",
  ],
  [/corrupt|IFD|absurd|zero-sized|bad tile size|bad RowsPerStrip|invalid offset|claims \d+ entries|loops/i, "the file's internal structure is damaged."],
  [/not a (valid )?Sliceform project|no project\.json|project file is not valid/i, 'that folder is not a Sliceform project (or its project.json is damaged).'],
  [/checksum differs|different file than/i, 'that is a different file from the one the project used.'],
  [/no trained model|train first/i, 'there is no trained model yet: press Train first.'],
  [/no prediction yet|densify first/i, 'there is no densify result yet: press Densify first.'],
  [/nothing to train on|no annotation yet|paint at least one slice/i, 'there are no painted labels yet: paint a few strokes of at least two classes first.'],
  [/a training job is already running|jobs are running/i, 'a training is still running: wait for it or press Stop.'],
];

/** what to do, by error code, when the message matched nothing above */
const HINTS: Record<string, string> = {
  'bad-input': 'The file could not be read. Check that it is a complete TIFF, OME-TIFF, LSM or HDF5 stack (re-export it from Fiji if unsure).',
  unsupported: 'This kind of file is not supported yet. Save it from Fiji as a TIFF or OME-TIFF and open that.',
  'too-large': 'The stack is too large to hold in memory. Crop it or open a single time point / channel subset.',
  'not-found': 'The file or item no longer exists. Check the path, or open it again.',
  'not-available': 'This feature is not installed in this build.',
  'volume-moved': 'The image of this project moved. Choose its new location.',
  busy: 'Another job is still running. Wait for it or stop it first.',
  'compute-crashed': 'The computing process stopped unexpectedly and was restarted; your annotations are safe. Try again.',
  engine: 'The training engine failed. Try the tiny preset or fewer iterations.',
  unauthorized: 'The session expired. Reload the page from the address Sliceform printed.',
  cancelled: 'Stopped.',
  timeout: 'Sliceform did not answer in time. Try again; if it keeps happening, restart it.',
};

/** The file an error is about: the error's own `file` (as the user named it) or the first path in the message. */
function fileOf(e: unknown, message: string): string | undefined {
  const f = (e as { file?: unknown })?.file;
  if (typeof f === 'string' && f) return baseName(withUserFileNames(f));
  const m = /^((?:[A-Za-z]:)?[\\/][^:]+?\.[A-Za-z0-9]{1,8}|[^\s:/\\]+\.[A-Za-z0-9]{1,8}): /.exec(message);
  return m ? baseName(m[1]!) : undefined;
}

function baseName(p: string): string {
  return p.split(/[\\/]/).pop() || p;
}

/**
 * `action` says what the user was doing ("Opening 1135.tif"); the result reads
 * "Opening 1135.tif failed: the file is shorter than … Copy or export it again." with the technical message as
 * detail.
 */
export function explainError(e: unknown, action: string): ExplainedError {
  const raw = e instanceof Error ? e.message : String(e ?? 'unknown error');
  // ApiError (over the wire) has a code; SliceformError (in-process callers) a kind
  const code = e instanceof ApiError ? e.code : ((e as { code?: unknown })?.code ?? (e as { kind?: unknown })?.kind);
  const message = withUserFileNames(raw);
  const plain = PLAIN.find(([re]) => re.test(raw))?.[1];
  const file = fileOf(e, message);
  const about = file && !action.includes(file) ? `${file}: ` : '';
  if (plain) return { text: `${action} failed: ${about}${plain}`, detail: raw };
  const hint = typeof code === 'string' ? HINTS[code] : undefined;
  // nothing plainer to say: the server's own sentence (with the user's file names), plus the hint
  return { text: `${action} failed: ${message}${hint ? ` — ${hint}` : ''}`, detail: raw !== message ? raw : undefined };
}
