/**
 * Renderer entry: installs the API (WebSocket in the web shell; the Electron preload already set it), builds
 * the workstation and exposes a small read-only hook (`window.__sliceformUi`) that the E2E tests use for
 * timing and for reading the state the views show.
 */
import '../styles/app.css';
import type { vtkOpenGLRenderWindow } from '@kitware/vtk.js/Rendering/OpenGL/RenderWindow';
import { installApi } from './api-client.js';
import { engineLimitsShort } from '../../main/common/engine-limits.js';
import { installVtkCounter, type VtkCounts } from './debug/vtk-count.js';
import { App } from './app.js';
import { button, el } from './dom.js';
import { setTool, wireInteraction } from './interaction.js';
import { mountViewChrome } from './panels/view-chrome.js';
import { channelsPanel, labelsPanel } from './panels/display.js';
import { batchPanel, trainingPanel } from './panels/jobs.js';
import { filesPanel } from './panels/files.js';
import { objectsPanel } from './panels/objects.js';
import { ShortcutHelp } from './panels/shortcuts.js';
import { PLANES, type Plane } from './render/composite.js';
import type { Tool } from './state.js';

function toolbar(app: App): HTMLElement {
  const st = app.store;
  const tools: Array<[Tool, string, string]> = [
    ['navigate', 'Navigate', 'N — click to move the crosshair'],
    ['brush', 'Brush', 'B — paint the selected class'],
    ['eraser', 'Eraser', 'E — back to unannotated'],
  ];
  const toolButtons = tools.map(([t, label, title]) => button(label, `tool-${t}`, () => setTool(app, t), title));
  const size = el('input', { type: 'range', min: 1, max: 30, step: 1, value: st.brushRadius, testid: 'brush-size', title: 'brush radius in pixels ([ and ])' });
  const sizeLabel = el('span', { testid: 'brush-size-label' }, `${st.brushRadius} px`);
  size.addEventListener('input', () => app.setBrushRadius(Number(size.value)));
  const active = el('span', { class: 'active-class', testid: 'active-class' });
  const undo = button('↶ Undo', 'undo', () => void app.undoRedo('undo'), 'Ctrl+Z');
  const redo = button('↷ Redo', 'redo', () => void app.undoRedo('redo'), 'Ctrl+Shift+Z');
  const sync = () => {
    toolButtons.forEach((b, i) => b.classList.toggle('on', tools[i][0] === st.tool));
    size.value = String(st.brushRadius);
    sizeLabel.textContent = `${st.brushRadius} px`;
    const c = st.classById(st.activeClass);
    active.textContent = c ? `class ${c.id}: ${c.name}` : '';
    active.style.borderColor = c ? `rgb(${c.color.map((v) => Math.round(v * 255)).join(',')})` : '';
  };
  st.on('tool', sync);
  st.on('classes', sync);
  sync();
  return el('header', { class: 'toolbar', testid: 'toolbar' }, el('strong', { class: 'brand' }, 'Sliceform'), ...toolButtons, size, sizeLabel, active, undo, redo);
}

function statusBar(app: App): HTMLElement {
  const msg = el('div', { class: 'status', testid: 'status', role: 'status' }, '');
  const text = el('span', { testid: 'status-text' }, '');
  // the technical message behind an error, on demand
  const detail = el('details', { class: 'status-detail', testid: 'status-detail', hidden: true }, el('summary', {}, 'details'), el('code', {}, ''));
  msg.append(text, detail);
  app.store.on('status', ({ level, text: t, detail: d }) => {
    text.textContent = t;
    detail.hidden = !d;
    detail.open = false;
    detail.querySelector('code')!.textContent = d ?? '';
    msg.dataset.level = level;
    msg.classList.toggle('error', level === 'error');
  });
  return msg;
}

async function main(): Promise<void> {
  // before the first vtk.js object: the leak test counts every one created and deleted from here on
  const vtkCounts = installVtkCounter();
  const api = installApi();
  const app = new App(api);
  const root = document.getElementById('app')!;
  root.replaceChildren();
  const side = el('aside', { class: 'sidebar' });
  const foot = el('footer', { class: 'footer' });
  const toolbarEl = toolbar(app);
  root.append(toolbarEl, el('div', { class: 'main' }, side, app.layout.root), foot);
  foot.append(statusBar(app));
  app.mountViews();
  mountViewChrome(app, foot);
  side.append(filesPanel(app), channelsPanel(app), labelsPanel(app), trainingPanel(app), objectsPanel(app), batchPanel(app));
  const help = new ShortcutHelp();
  root.append(help.root);
  toolbarEl.append(button('?', 'shortcut-button', () => help.toggle(), 'keyboard shortcuts (?)'));
  wireInteraction(app, help);
  api.onCompute((e) => {
    if (e.state === 'crashed' || e.state === 'restarting')
      app.store.status(`The computing process stopped (${e.message ?? 'crash'}) and is being restarted; your annotations are safe.${e.lostJobs?.length ? ' Restart the interrupted job.' : ''}`, 'error');
    else if (e.state === 'ready') app.store.status('Computing process ready.');
  });
  api.onMenu((cmd) => {
    if (cmd === 'undo' || cmd === 'redo') void app.undoRedo(cmd);
    else if (cmd === 'open-volume') (document.querySelector('[data-testid="browse-button"]') as HTMLElement | null)?.click();
    else if (cmd === 'export-labels') (document.querySelector('[data-testid="export-button"]') as HTMLElement | null)?.click();
    else if (cmd === 'save-project') (document.querySelector('[data-testid="project-save"]') as HTMLElement | null)?.click();
    else if (cmd === 'train') (document.querySelector('[data-testid="train-start"]') as HTMLElement | null)?.click();
    else if (cmd === 'densify') (document.querySelector('[data-testid="densify"]') as HTMLElement | null)?.click();
  });

  installTestHook(app);
  installDebugHook(app, vtkCounts);
  // leaving the page releases the WebGL contexts and the vtk objects at once instead of whenever the GC runs
  window.addEventListener('pagehide', () => app.dispose(), { once: true });
  try {
    const info = await api.systemInfo();
    root.dataset.ready = '1';
    root.dataset.shell = info.shell;
    // after a page reload the Files panel may already show the project the server holds: keep its message
    if (!app.store.volume && !app.loading)
      app.store.status(`Sliceform ${info.version} — engine ${info.engine ? `${info.engine.name} ${info.engine.version}` : `unavailable (${info.engineError ?? 'not built'})`}${engineLimitsShort(info.engine) ? ` (${engineLimitsShort(info.engine)})` : ''}. Drop a stack or open one.`);
  } catch (e) {
    root.dataset.ready = '1';
    app.error(e, 'Connecting to Sliceform');
  }
}

/**
 * Read-only view of the UI for E2E tests and performance measurement (no back door to the API: everything
 * that changes data goes through the same handlers as the mouse and keyboard).
 */
function installTestHook(app: App): void {
  const hook = {
    app,
    get volumeId() {
      return app.store.volume?.id ?? null;
    },
    get cursor() {
      return [...app.store.cursor];
    },
    get loading() {
      return app.loading;
    },
    paintedCount(plane: Plane) {
      return app.store.paintedSlices(plane).size;
    },
    /** draw the views now and wait for the GPU (so a following screenshot shows the current state) */
    flush(which: Array<Plane | '3d'> = ['xy', 'xz', 'yz', '3d']) {
      for (const p of PLANES)
        if (which.includes(p)) {
          app.views[p].render();
          app.views[p].finish();
        }
      if (which.includes('3d')) app.view3d.render();
    },
    strokeTimings() {
      return app.annotator.timings.slice();
    },
    idle() {
      return app.annotator.idle().then(() => undefined);
    },
    /** screen position (CSS px, page coordinates) of voxel (x, y, z) in a slice view */
    voxelToPage(plane: Plane, x: number, y: number, z: number) {
      const v = app.views[plane];
      const s = app.store.volume!.spacing;
      const view = v.grw.getApiSpecificRenderWindow() as vtkOpenGLRenderWindow;
      const [W, H] = view.getSize();
      const d = view.worldToDisplay(x * s.x, y * s.y, z * s.z, v.renderer) as number[];
      const r = v.container.getBoundingClientRect();
      return { x: r.left + (d[0] / W) * r.width, y: r.top + (1 - d[1] / H) * r.height };
    },
    /** frame timing mode for measurements: every slice render waits for the GPU before it is logged */
    setSyncTiming(on: boolean) {
      app.syncTiming = on;
    },
    renderLog() {
      return app.perf.renders.slice();
    },
    view3dRenderMs() {
      return app.view3d.lastRenderMs;
    },
    /** the live previews that reached the page, what each view draws now, and the annotation revision */
    previews() {
      const shown = { xy: app.views.xy.previewShown, xz: app.views.xz.previewShown, yz: app.views.yz.previewShown };
      return { log: app.preview.log.slice(), shown, revision: app.store.revision, volume: app.preview.volume ? { dims: app.preview.volume.dims, step: app.preview.volume.step, iteration: app.preview.volume.iteration } : null };
    },
  };
  (window as unknown as { __sliceformUi: typeof hook }).__sliceformUi = hook;
}

void main();

/**
 * Lifetimes, for the leak test (test/e2e/ui-lifetimes.test.ts) and for a developer's console:
 * `__sliceformDebug.vtk.live()` lists the vtk.js objects alive per class. Harmless in production: it reads
 * counters, and `closeVolume` only forgets the shown stack in this page (the server keeps it).
 */
function installDebugHook(app: App, vtk: VtkCounts): void {
  const hook = {
    vtk,
    closeVolume: () => app.closeVolume(),
    /** delete every vtk object of the page (what leaving the page does); the page is dead afterwards */
    dispose: () => app.dispose(),
    /** what each view draws now (sizes of the images behind it) */
    shown: () => ({
      xy: app.views.xy.shown(),
      xz: app.views.xz.shown(),
      yz: app.views.yz.shown(),
      '3d': app.view3d.shown(),
    }),
  };
  (window as unknown as { __sliceformDebug: typeof hook }).__sliceformDebug = hook;
}
