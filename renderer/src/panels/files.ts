/**
 * Files: open by path or by browsing the app's file system (web shell: listDirectory; Electron: native
 * dialog), drag-drop onto the window, recent files, label export (TIFF / OME-TIFF), project new/open/save.
 * A page reload shows what the server still holds (the project and its first stack) instead of an empty app.
 */
import type { DirEntry, ProjectEvent, ProjectInfo, VolumeInfo } from '../../../main/common/api.js';
import type { App } from '../app.js';
import { button, el } from '../dom.js';

const RECENT_KEY = 'sliceform-recent';
/** the folder of the last export the user chose (the default for stacks that came as uploads) */
const EXPORT_DIR_KEY = 'sliceform-export-dir';

export interface RecentEntry {
  /** path on the machine Sliceform runs on (for an upload: the server's copy of it) */
  path: string;
  /** the file name the user knows it by */
  name: string;
  /** opened from this computer through the browser */
  uploaded?: boolean;
}

export function recentFiles(): RecentEntry[] {
  try {
    const v = JSON.parse(localStorage.getItem(RECENT_KEY) ?? '[]');
    if (!Array.isArray(v)) return [];
    return v
      .map((x): RecentEntry | null =>
        typeof x === 'string'
          ? { path: x, name: baseName(x) }
          : x && typeof x.path === 'string'
            ? { path: x.path, name: typeof x.name === 'string' ? x.name : baseName(x.path), uploaded: x.uploaded === true }
            : null,
      )
      .filter((x): x is RecentEntry => !!x)
      .slice(0, 10);
  } catch {
    return [];
  }
}

function addRecent(e: RecentEntry): void {
  const list = [e, ...recentFiles().filter((r) => r.path !== e.path)].slice(0, 10);
  localStorage.setItem(RECENT_KEY, JSON.stringify(list));
}

function baseName(p: string): string {
  return p.split(/[\\/]/).pop() || p;
}

function dirName(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i > 0 ? p.slice(0, i) : i === 0 ? '/' : '';
}

/**
 * The web shell's copies of uploaded files: `<scratch>/imports/<hash>-name`, or `<project>/volumes/<hash>-name`
 * once the project is saved. Nobody chose these folders: exports must not default into them.
 */
export function isServerCopy(path: string): boolean {
  return /[\\/](imports|volumes)[\\/][0-9a-f]{12}-[^\\/]+$/.test(path);
}

const VOLUME_EXT = /\.(tif|tiff|ome\.tif|ome\.tiff|btf|lsm|h5|hdf5)$/i;

export function filesPanel(app: App): HTMLElement {
  const st = app.store;
  const path = el('input', { type: 'text', placeholder: '/path/to/stack.tif', testid: 'open-path', class: 'path' });
  const recent = el('ul', { class: 'recent', testid: 'recent-files' });
  const browser = el('div', { class: 'browser', testid: 'file-browser', hidden: true });

  const open = async (p: string) => {
    if (!p.trim()) return;
    const info = await app.openPath(p.trim());
    if (info) {
      addRecent({ path: info.source || p.trim(), name: info.name });
      renderRecent();
      void suggestExportPath();
    }
  };
  /** a stack opened from this computer: Recent offers the server's copy under the name the user knows */
  const opened = (info: VolumeInfo | null, uploaded: boolean) => {
    if (!info) return;
    addRecent({ path: info.source, name: info.name, uploaded });
    renderRecent();
    void suggestExportPath();
  };
  const renderRecent = () => {
    recent.replaceChildren(
      ...recentFiles().map((r) => {
        const a = el('a', { href: '#', title: r.uploaded ? `${r.name} (uploaded; Sliceform's copy: ${r.path})` : r.path, testid: 'recent-item' }, r.name);
        a.addEventListener('click', (e) => {
          e.preventDefault();
          void open(r.path);
        });
        return el('li', {}, a);
      }),
    );
  };
  const listDir = async (dir?: string) => {
    try {
      const res = await app.api.listDirectory({ path: dir });
      browser.hidden = false;
      const up = el('a', { href: '#', class: 'dir' }, '⬑ ..');
      up.addEventListener('click', (e) => {
        e.preventDefault();
        void listDir(res.path.replace(/\/[^/]+\/?$/, '') || '/');
      });
      const items = res.entries
        .filter((e: DirEntry) => e.kind === 'dir' || VOLUME_EXT.test(e.name))
        .map((e: DirEntry) => {
          const a = el('a', { href: '#', class: e.kind, testid: 'browser-entry', title: e.path }, e.kind === 'dir' ? `📁 ${e.name}` : e.name);
          a.addEventListener('click', (ev) => {
            ev.preventDefault();
            if (e.kind === 'dir') void listDir(e.path);
            else {
              path.value = e.path;
              browser.hidden = true;
              void open(e.path);
            }
          });
          return a;
        });
      browser.replaceChildren(el('div', { class: 'cwd' }, res.path), up, ...items);
    } catch (e) {
      app.error(e, 'Listing the folder');
    }
  };
  const browse = async () => {
    const p = await app.api.showDialog({ kind: 'open-volume', title: 'Open a stack' }).catch(() => null);
    if (p) {
      path.value = p;
      return open(p);
    }
    return listDir(path.value.trim() ? path.value.trim().replace(/\/[^/]*$/, '') || '/' : undefined);
  };
  path.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') void open(path.value);
  });

  // export
  const exportPath = el('input', { type: 'text', placeholder: '/path/to/labels.tif', testid: 'export-path', class: 'path' });
  const exportLayer = el(
    'select',
    { testid: 'export-layer' },
    el('option', { value: 'merged' }, 'result + corrections'),
    el('option', { value: 'prediction' }, 'result (densify)'),
    el('option', { value: 'annotation' }, 'my annotation'),
  );
  const exportFormat = el('select', { testid: 'export-format' }, el('option', { value: 'tiff' }, 'TIFF (ImageJ, calibrated)'), el('option', { value: 'ome-tiff' }, 'OME-TIFF'), el('option', { value: 'ome-zarr' }, 'OME-Zarr labels (annotation; big volumes)'));
  const exportResult = el('div', { class: 'job-status', testid: 'export-result' });
  // the default export path: beside the stack when the user opened it from a folder; for an upload (whose
  // file sits in Sliceform's scratch folder) the folder of the user's last export, else the folder holding the
  // saved project, else none: the user types one (we never hide the labels in the scratch folder)
  let exportTyped = false;
  exportPath.addEventListener('input', () => (exportTyped = exportPath.value.trim() !== ''));
  const exportFolder = async (src: string): Promise<string> => {
    if (!isServerCopy(src)) return dirName(src);
    const last = localStorage.getItem(EXPORT_DIR_KEY);
    if (last) return last;
    const proj = await app.api.getProject().catch(() => null);
    return proj?.path ? dirName(proj.path) : '';
  };
  const suggestExportPath = async () => {
    const vol = st.volume;
    if (!vol || exportTyped) return;
    const ext = exportFormat.value === 'ome-tiff' ? '.ome.tif' : exportFormat.value === 'ome-zarr' ? '.ome.zarr' : '.tif';
    const stem = vol.name.replace(/(\.ome)?\.[^./\\]+$/i, '');
    const dir = await exportFolder(vol.source);
    if (st.volume !== vol || exportTyped) return;
    exportPath.value = dir ? `${dir.replace(/[\\/]$/, '')}/${stem}_labels${ext}` : '';
    exportPath.placeholder = dir ? '/path/to/labels.tif' : `where to save ${stem}_labels${ext} (a path on the computer Sliceform runs on)`;
  };
  exportFormat.addEventListener('change', () => {
    const v = exportPath.value;
    if (exportFormat.value === 'ome-tiff' && !/\.ome\.tiff?$/i.test(v)) exportPath.value = v.replace(/\.tiff?$/i, '.ome.tif');
    if (exportFormat.value === 'tiff') exportPath.value = v.replace(/\.ome\.tif(f?)$/i, '.tif$1').replace(/\.ome\.zarr$/i, '.tif');
    if (exportFormat.value === 'ome-zarr') exportPath.value = v.replace(/(\.ome)?\.tiff?$/i, '.ome.zarr');
  });
  const doExport = async () => {
    const vol = st.volume;
    if (!vol) return st.status('Open a stack first.', 'error');
    let p = exportPath.value.trim();
    if (!p) p = (await app.api.showDialog({ kind: 'export-labels', defaultPath: `${vol.name}_labels.tif` }).catch(() => null)) ?? '';
    if (!p) {
      exportPath.focus();
      return st.status(
        `Type where to save the labels in the export box (a file path on the computer Sliceform runs on${isServerCopy(vol.source) ? '; the uploaded stack itself sits in a temporary folder' : ''}).`,
        'error',
      );
    }
    try {
      await app.annotator.idle();
      exportResult.textContent = 'Exporting…';
      const res = await app.api.exportLabels({
        volumeId: vol.id,
        layer: exportLayer.value as 'merged' | 'prediction' | 'annotation',
        path: p,
        format: exportFormat.value as 'tiff' | 'ome-tiff' | 'ome-zarr',
      });
      exportResult.textContent = `Saved ${res.path} (${(res.bytes / 1024).toFixed(0)} KiB) — in the folder ${dirName(res.path)}`;
      exportResult.dataset.path = res.path;
      localStorage.setItem(EXPORT_DIR_KEY, dirName(res.path));
      st.status(`Labels of ${vol.name} saved to ${res.path}`);
    } catch (e) {
      exportResult.textContent = '';
      app.error(e, 'Exporting labels');
    }
  };

  // project
  const projectPath = el('input', { type: 'text', placeholder: '/path/to/project folder', testid: 'project-path', class: 'path' });
  const projectStatus = el('div', { class: 'job-status', testid: 'project-status' });
  const projectCall = async (what: string, f: () => Promise<unknown>) => {
    try {
      await app.annotator.idle();
      await f();
    } catch (e) {
      const err = e as { code?: string; details?: { name?: string; volumeRef?: string; expectedPath?: string } };
      if (err.code === 'volume-moved' && err.details?.volumeRef) {
        await relocate(err.details.name ?? 'image', err.details.volumeRef, err.details.expectedPath ?? '');
        return;
      }
      app.error(e, what);
    }
  };
  app.api.onProject((e: ProjectEvent) => {
    const when = e.project.lastSavedAt ? new Date(e.project.lastSavedAt).toLocaleTimeString() : '';
    if (e.kind === 'saved' || e.kind === 'autosaved') {
      projectStatus.textContent = `${e.kind === 'autosaved' ? 'Autosaved' : 'Saved'} ${e.project.path ?? ''} ${when}`;
      if (!exportPath.value) void suggestExportPath(); // an upload's labels can now go beside the project
    }
    else if (e.kind === 'save-failed') st.status(`Saving the project failed: ${e.message ?? ''} — your work is still in memory; choose another folder.`, 'error');
    else if (e.kind === 'volume-moved' && e.moved) void relocate(e.moved.name, e.moved.volumeRef, e.moved.expectedPath);
    else if (e.kind === 'opened') {
      projectStatus.textContent = `Opened ${e.project.path ?? e.project.name}`;
      if (e.project.path) projectPath.value = e.project.path;
    }
  });
  const relocate = async (name: string, ref: string, expected: string) => {
    const p = window.prompt(`The image "${name}" of this project is no longer at ${expected}. Where is it now?`, expected);
    if (!p) return;
    await projectCall('Relocating the image', async () => {
      await app.api.relocateVolume({ volumeRef: ref, newPath: p });
      await showFirstVolume();
    });
  };
  const showFirstVolume = async () => {
    const [proj, vols] = await Promise.all([app.api.getProject(), app.api.listVolumes()]);
    if (vols.length) await app.showVolume(vols[0]);
    announce(proj, vols);
    void suggestExportPath();
  };
  /** the status bar says what is open (it used to keep saying "Drop a stack or open one") */
  const announce = (proj: ProjectInfo, vols: VolumeInfo[]) => {
    const what = proj.path ? `Project ${proj.name} (${proj.path})` : 'This session';
    if (!vols.length) return st.status(`${what}: no stack open. Drop a stack or open one.`);
    const v = vols[0];
    const more = vols.length > 1 ? ` (and ${vols.length - 1} more stack${vols.length > 2 ? 's' : ''})` : '';
    st.status(`${what}: ${v.name}, ${v.shape.x}×${v.shape.y}×${v.shape.z}, ${v.shape.c} channel(s), ${v.dtype}${more}`);
  };
  // a page reload: the server still holds the project and its stacks, show them
  const restore = async () => {
    try {
      const [proj, vols] = await Promise.all([app.api.getProject(), app.api.listVolumes()]);
      if (proj.path) projectPath.value = proj.path;
      if (!vols.length || st.volume || app.loading) return;
      app.loading = true;
      try {
        await app.showVolume(vols[0]);
      } finally {
        app.loading = false;
      }
      announce(proj, vols);
      void suggestExportPath();
    } catch (e) {
      app.error(e, 'Restoring the open project');
    }
  };

  // drag-drop anywhere on the window
  const overlay = el('div', { class: 'drop-overlay', testid: 'drop-overlay', hidden: true }, 'Drop a stack to open it');
  document.body.append(overlay);
  window.addEventListener('dragover', (e) => {
    e.preventDefault();
    overlay.hidden = false;
  });
  window.addEventListener('dragleave', (e) => {
    if (!e.relatedTarget) overlay.hidden = true;
  });
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    overlay.hidden = true;
    const files = [...(e.dataTransfer?.files ?? [])];
    if (!files.length) return;
    const f = files[0];
    if (!VOLUME_EXT.test(f.name)) {
      st.status(`${f.name}: not a stack Sliceform can open. Drop a .tif/.tiff, .ome.tif, .lsm or .h5 file.`, 'error');
      return;
    }
    if (files.length > 1) st.status(`Opening ${f.name} (one stack at a time; the other ${files.length - 1} were ignored).`);
    void app.openFile(f).then((info) => opened(info, !app.api.getPathForFile?.(f)));
  });

  // a file from this computer (the web shell's browser may run on another machine than the server)
  const fileInput = el('input', { type: 'file', testid: 'open-file-input', hidden: true, accept: '.tif,.tiff,.btf,.lsm,.h5,.hdf5' });
  fileInput.addEventListener('change', () => {
    const f = fileInput.files?.[0];
    if (f) void app.openFile(f).then((info) => opened(info, !app.api.getPathForFile?.(f)));
    fileInput.value = '';
  });

  renderRecent();
  void restore();
  return el(
    'details',
    { class: 'panel', open: true, testid: 'files-panel' },
    el('summary', {}, 'Files'),
    el(
      'div',
      { class: 'panel-body' },
      el('div', { class: 'row' }, path),
      el('div', { class: 'row' }, button('Open', 'open-button', () => void open(path.value)), button('Browse…', 'browse-button', () => void browse()), button('Upload…', 'upload-button', () => fileInput.click(), 'open a file from this computer'), fileInput),
      browser,
      el('div', { class: 'subhead' }, 'Recent'),
      recent,
      el('div', { class: 'subhead' }, 'Export labels'),
      el('div', { class: 'row' }, exportLayer, exportFormat),
      el('div', { class: 'row' }, exportPath),
      el('div', { class: 'row' }, button('Export', 'export-button', () => void doExport())),
      exportResult,
      el('div', { class: 'subhead' }, 'Project'),
      el('div', { class: 'row' }, projectPath),
      el(
        'div',
        { class: 'row' },
        button('New', 'project-new', () =>
          void projectCall('New project', async () => {
            const p = await app.api.newProject({});
            projectPath.value = '';
            st.status(`New project ${p.name}: drop a stack or open one.`);
          }),
        ),
        button('Open', 'project-open', () =>
          void projectCall('Opening the project', async () => {
            const p = projectPath.value.trim() || (await app.api.showDialog({ kind: 'open-project' }).catch(() => null));
            if (!p) throw new Error('choose a project folder first');
            await app.api.openProject({ path: p });
            await showFirstVolume();
          }),
        ),
        button('Save', 'project-save', () =>
          void projectCall('Saving the project', async () => {
            const p = projectPath.value.trim() || undefined;
            const info = await app.api.saveProject({ path: p });
            projectStatus.textContent = `Saved ${info.path ?? ''}`;
          }),
        ),
      ),
      projectStatus,
    ),
  );
}
