/**
 * Error messages in plain words (issue 14, item 8): the errors the server really raises for broken uploads of
 * real files (a truncated copy of the NEUBIAS ImageJ hyperstack, a text file named .tif, a missing path) are
 * turned into a sentence that names the file the user chose, says what is wrong, and keeps the technical
 * message as detail. Before the fix the status bar showed "…/work/imports/9ee66ebf09ca-x.tif: truncated
 * contiguous ImageJ image data (90 planes) at offset 57564".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiService } from '../../main/services/api-service.js';
import { ApiError } from '../../main/common/api.js';
import { explainError, withUserFileNames } from '../../renderer/src/panels/errors.js';
import { dataFile } from '../helpers/paths.js';

const HYPERSTACK = dataFile('formats', 'imagej_hyperstack', 'xyzc_16bit__dna_conf_wf.tif');

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a failure');
}

describe('explainError on real server errors', () => {
  let dir: string;
  let api: ApiService;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sliceform-errors-'));
    api = new ApiService({ shell: 'web', workDir: join(dir, 'work') });
  });
  afterAll(async () => {
    await api.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('a truncated upload: names the chosen file, says it is incomplete, keeps the detail', async () => {
    const bytes = new Uint8Array(await readFile(HYPERSTACK));
    const e = await failure(api.openVolumeBytes({ name: 'truncated-hyperstack.tif', bytes: bytes.subarray(0, Math.floor(bytes.length * 0.6)) }));
    const err = e as { code?: string; kind?: string };
    expect(err.code ?? err.kind).toBe('bad-input'); // ApiError (code) or the reader's SliceformError (kind)
    const raw = (e as Error).message;
    expect(raw).toMatch(/imports\/[0-9a-f]{12}-truncated-hyperstack\.tif/); // what the server says
    const { text, detail } = explainError(e, 'Opening truncated-hyperstack.tif');
    expect(text).toMatch(/^Opening truncated-hyperstack\.tif failed: the file is shorter than its contents say: it looks incomplete/);
    expect(text).not.toMatch(/imports|[0-9a-f]{12}|offset|contiguous|planes/);
    expect(detail).toBe(raw);
  });

  it('a text file named .tif, a missing file, a folder', async () => {
    const e1 = await failure(api.openVolumeBytes({ name: 'notes.tif', bytes: new TextEncoder().encode('these are my notes, not an image\n'.repeat(20)) }));
    const x1 = explainError(e1, 'Opening notes.tif');
    expect(x1.text).toBe('Opening notes.tif failed: this is not a stack Sliceform can read (TIFF, ImageJ, OME-TIFF, Zeiss LSM or HDF5), or its first bytes are damaged.');
    expect(x1.detail).toMatch(/notes\.tif/);

    const e2 = await failure(api.openVolume({ path: join(dir, 'gone.tif') }));
    expect(explainError(e2, 'Opening the project').text).toBe('Opening the project failed: gone.tif: the file is not there (moved, renamed or deleted).');

    const e3 = await failure(api.openVolume({ path: dir }));
    expect(explainError(e3, `Opening ${dir}`).text).toBe(`Opening ${dir} failed: that is a folder, not a stack file.`);
  });

  it('messages with nothing plainer to say keep the sentence, with user file names and the hint', () => {
    const e = new ApiError('bad-input', '/srv/x/work/imports/0123456789ab-cells.tif: channel 3 of 2 requested');
    expect(withUserFileNames(e.message)).toBe('cells.tif: channel 3 of 2 requested');
    const x = explainError(e, 'Showing');
    expect(x.text).toMatch(/^Showing failed: cells\.tif: channel 3 of 2 requested — The file could not be read/);
    expect(x.detail).toBe(e.message);
    expect(explainError(new Error('plain'), 'Doing').detail).toBeUndefined();
  });
});
