/**
 * Project folders through the API service: atomic save/open round trip, autosave, moved volumes, corrupt files,
 * and `kill -9` losing nothing that was saved. Real volume: plant-seg nuclei 1135_mini.h5 (copied to a temp
 * folder so it can be moved).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyFile, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApiService } from '../../main/services/api-service.js';
import { ApiError, type ProjectEvent } from '../../main/common/api.js';
import { REPO, dataFile } from '../helpers/paths.js';

const SRC = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
let dir: string;
let services: ApiService[] = [];
const svc = (o: Partial<ConstructorParameters<typeof ApiService>[0]> = {}) => {
  const s = new ApiService({ shell: 'web', workDir: join(dir, 'work'), ...o });
  services.push(s);
  return s;
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sliceform-project-'));
  await copyFile(SRC, join(dir, 'nuclei.h5'));
});
afterEach(async () => {
  for (const s of services) await s.dispose();
  services = [];
  await rm(dir, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    return e as ApiError;
  }
  throw new Error('expected a rejection');
}

describe('project folders', () => {
  it('saves atomically and reopens with annotations, classes and checksums', async () => {
    const a = svc();
    const progress: number[] = [];
    a.onVolumeProgress((e) => e.source === join(dir, 'nuclei.h5') && progress.push(e.progress.fraction));
    const v = await a.openVolume({ path: join(dir, 'nuclei.h5') });
    expect(v.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(progress.at(-1)).toBe(1);
    await a.setClasses({ classes: [{ id: 1, name: 'bg', color: '#000000' }, { id: 2, name: 'nucleus', color: '#ff8800' }, { id: 3, name: 'wall', color: '#00ff00' }] });
    await a.paintStroke({ volumeId: v.id, plane: 'xy', index: 40, classId: 2, radius: 4, points: [[30, 30], [60, 30]] });
    await a.paintStroke({ volumeId: v.id, plane: 'yz', index: 12, classId: 3, radius: 2, points: [[10, 10]] });
    const before = (await a.getLabelVolume({ volumeId: v.id, layer: 'annotation' })).data;
    expect((await a.getProject()).dirty).toBe(true);
    const pdir = join(dir, 'cells.sliceform');
    const info = await a.saveProject({ path: pdir });
    expect(info).toMatchObject({ path: pdir, name: 'cells', dirty: false });
    expect((await readdir(pdir)).sort()).toEqual(['annotations', 'project.json']);
    const all = [...(await readdir(pdir)), ...(await readdir(join(pdir, 'annotations')))];
    expect(all.filter((f) => f.includes('.tmp'))).toEqual([]);
    const pj = JSON.parse(await readFile(join(pdir, 'project.json'), 'utf8'));
    expect(pj.volumes[0]).toMatchObject({ id: v.id, path: join(dir, 'nuclei.h5'), sha256: v.sha256 });

    const b = svc();
    const opened = await b.openProject({ path: pdir });
    expect(opened.settings.classes.map((c) => c.name)).toEqual(['bg', 'nucleus', 'wall']);
    expect(opened.dirty).toBe(false);
    const vols = await b.listVolumes();
    expect(vols.map((x) => x.id)).toEqual([v.id]);
    const after = (await b.getLabelVolume({ volumeId: v.id, layer: 'annotation' })).data;
    expect(after).toEqual(before);
    const sum = await b.getAnnotationSummary({ volumeId: v.id });
    expect(sum.paintedSlices.xy).toContain(40);
    expect(sum.paintedSlices.yz).toContain(12);
    expect(sum.classVoxels[3]).toBe(13);
  });

  it('asks for the new location of a moved volume and checks it is the same file', async () => {
    const a = svc();
    const v = await a.openVolume({ path: join(dir, 'nuclei.h5') });
    await a.paintStroke({ volumeId: v.id, plane: 'xz', index: 5, classId: 2, radius: 1, points: [[5, 5]] });
    const pdir = join(dir, 'p.sliceform');
    await a.saveProject({ path: pdir });
    await rename(join(dir, 'nuclei.h5'), join(dir, 'moved.h5'));

    const b = svc();
    const events: ProjectEvent[] = [];
    b.onProject((e) => events.push(e));
    const err = await rejection(b.openProject({ path: pdir }));
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('volume-moved');
    expect(err.message).toContain(join(dir, 'nuclei.h5'));
    expect(err.details).toMatchObject({ volumeRef: v.id, expectedPath: join(dir, 'nuclei.h5'), sha256: v.sha256 });
    expect(events.some((e) => e.kind === 'volume-moved' && e.moved?.volumeRef === v.id)).toBe(true);
    // a different file is refused
    await copyFile(dataFile('plantseg_nuclei_mini', '1136_mini.h5'), join(dir, 'other.h5'));
    const wrong = await rejection(b.relocateVolume({ volumeRef: v.id, newPath: join(dir, 'other.h5') }));
    expect(wrong.code).toBe('bad-input');
    expect(wrong.message).toMatch(/checksum differs/);
    const p = await b.relocateVolume({ volumeRef: v.id, newPath: join(dir, 'moved.h5') });
    expect(p.volumes[0]!.path).toBe(join(dir, 'moved.h5'));
    expect(p.dirty).toBe(true);
    const l = await b.getLabelSlice({ volumeId: v.id, layer: 'annotation', plane: 'xz', index: 5 });
    expect(l.data.reduce((s, x) => s + x, 0)).toBe(2 * 5);
  });

  it('reports corrupt or missing project files clearly', async () => {
    const a = svc();
    const nf = await rejection(a.openProject({ path: join(dir, 'nope') }));
    expect(nf.code).toBe('not-found');
    expect(nf.message).toContain('project.json');
    await writeFile(join(dir, 'project.json'), '{"format":"sliceform-project", broken');
    const bad = await rejection(a.openProject({ path: dir }));
    expect(bad.code).toBe('bad-input');
    expect(bad.message).toContain(join(dir, 'project.json'));
    await writeFile(join(dir, 'project.json'), JSON.stringify({ format: 'sliceform-project', version: 1, name: 'x', volumes: 'no' }));
    expect((await rejection(a.openProject({ path: dir }))).message).toMatch(/not a valid Sliceform project/);
    expect((await rejection(a.saveProject({}))).code).toBe('bad-request');
  });

  it('autosaves a dirty project on its timer', async () => {
    const a = svc({ autosaveTickMs: 100 });
    const v = await a.openVolume({ path: join(dir, 'nuclei.h5') });
    const pdir = join(dir, 'auto.sliceform');
    await a.saveProject({ path: pdir });
    await a.updateSettings({ settings: { autosaveMinutes: 0.005 } });
    const events: string[] = [];
    a.onProject((e) => events.push(e.kind));
    await a.paintStroke({ volumeId: v.id, plane: 'xy', index: 1, classId: 1, radius: 0, points: [[1, 1]] });
    const t0 = Date.now();
    while (!events.includes('autosaved') && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    expect(events).toContain('autosaved');
    expect((await a.getProject()).dirty).toBe(false);
  });

  it('kill -9 of a never-saved project: the recovery autosave brings the painted slices back', async () => {
    const rec = join(dir, 'recovery.sliceform');
    const script = join(dir, 'victim2.mts');
    const svcUrl = pathToFileURL(join(REPO, 'main', 'services', 'api-service.ts')).href;
    await writeFile(
      script,
      `import { ApiService } from ${JSON.stringify(svcUrl)};
setInterval(() => {}, 1000); // the autosave timer is unref'd: keep this process alive
const a = new ApiService({ shell: 'web', workDir: ${JSON.stringify(join(dir, 'w3'))}, recoveryDir: ${JSON.stringify(rec)}, autosaveTickMs: 50 });
await a.updateSettings({ settings: { autosaveMinutes: 0.001 } });
const v = await a.openVolume({ path: ${JSON.stringify(join(dir, 'nuclei.h5'))} });
const saved = new Promise((r) => a.onProject((e) => e.kind === 'autosaved' && r(e)));
await a.paintStroke({ volumeId: v.id, plane: 'xz', index: 40, classId: 2, radius: 1, points: [[40, 40]] });
await saved;
process.stdout.write('ready\\n');
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((res, rej) => {
      child.stdout!.on('data', (d) => String(d).includes('ready') && res());
      child.once('exit', (c) => rej(new Error(`victim exited early (${c})`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const b = svc({ recoveryDir: rec });
    const p = await b.getProject();
    expect(p.path).toBeNull();
    expect(p.recoveryPath).toBe(rec);
    await b.openProject({ path: p.recoveryPath! });
    const id = (await b.listVolumes())[0]!.id;
    const s = await b.getAnnotationSummary({ volumeId: id });
    expect(s.paintedSlices.xz).toEqual([40]);
    expect(s.classVoxels[2]).toBe(5);
    // an explicit save elsewhere removes the recovery copy
    await b.saveProject({ path: join(dir, 'kept.sliceform') });
    expect((await b.getProject()).recoveryPath).toBeUndefined();
    expect(await readdir(dir)).not.toContain('recovery.sliceform');
  });

  it('kill -9 loses only what was not saved yet', async () => {
    const pdir = join(dir, 'k.sliceform');
    const script = join(dir, 'victim.mts');
    const svcUrl = pathToFileURL(join(REPO, 'main', 'services', 'api-service.ts')).href;
    await writeFile(
      script,
      `import { ApiService } from ${JSON.stringify(svcUrl)};
const a = new ApiService({ shell: 'web', workDir: ${JSON.stringify(join(dir, 'w2'))} });
const v = await a.openVolume({ path: ${JSON.stringify(join(dir, 'nuclei.h5'))} });
await a.paintStroke({ volumeId: v.id, plane: 'xy', index: 20, classId: 2, radius: 2, points: [[20, 20]] });
await a.saveProject({ path: ${JSON.stringify(pdir)} });
await a.paintStroke({ volumeId: v.id, plane: 'xy', index: 21, classId: 1, radius: 2, points: [[20, 20]] });
await a.autosaveNow();
await a.paintStroke({ volumeId: v.id, plane: 'xy', index: 22, classId: 2, radius: 2, points: [[20, 20]] });
process.stdout.write('ready\\n');
setInterval(() => {}, 1000);
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((res, rej) => {
      child.stdout!.on('data', (d) => String(d).includes('ready') && res());
      child.once('exit', (c) => rej(new Error(`victim exited early (${c})`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const b = svc();
    await b.openProject({ path: pdir });
    const id = (await b.listVolumes())[0]!.id;
    const s = await b.getAnnotationSummary({ volumeId: id });
    expect(s.paintedSlices.xy).toEqual([20, 21]); // saved + autosaved; the last stroke was never saved
    expect(s.classVoxels[2]).toBe(13);
    expect(s.classVoxels[1]).toBe(13);
  });
});
