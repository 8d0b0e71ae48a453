/**
 * Electron main: one window on the app:// origin (the built renderer), sandboxed, context-isolated, no Node
 * in the page, a strict CSP and no remote content; the preload exposes only the API; every IPC call is checked
 * for its sender and validated. Training/densify/batch run in a utilityProcess (compute-entry.js).
 * No domain logic here: it wires main/services to Electron.
 */
import { app, BrowserWindow, dialog, ipcMain, Menu, protocol, screen, session, shell, utilityProcess, type MenuItemConstructorOptions } from 'electron';
import { fileURLToPath } from 'node:url';
import { readFile } from 'node:fs/promises';
import { dirname, join, normalize, sep, extname } from 'node:path';
import { existsSync } from 'node:fs';
import { ApiService } from '../main/services/api-service.js';
import type { ComputeChannel, ComputeLauncher } from '../main/services/jobs.js';
import type { DialogRequest, MenuCommand } from '../main/common/api.js';
import { CSP } from '../main/services/web-server.js';
import { APP_ORIGIN, CALL_CHANNEL, EVENT_CHANNEL, createIpcHandler } from './ipc.js';
import { loadWindowState, saveWindowState, type WindowState } from './window-state.js';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.wasm': 'application/wasm',
  '.woff2': 'font/woff2',
};

const here = dirname(fileURLToPath(import.meta.url)); // dist/electron
const RENDERER_DIR = join(here, '..', 'renderer');
const PRELOAD = join(here, 'preload.cjs');
const COMPUTE_ENTRY = join(here, '..', 'main', 'services', 'compute-entry.js');

protocol.registerSchemesAsPrivileged([{ scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

/**
 * Packaged builds carry the native addon and its libtorch libraries in resources/native (electron-builder
 * extraResources); the compute process is told where (the dynamic loader reads LD_LIBRARY_PATH at its start).
 */
function nativeEnv(): Record<string, string> {
  if (!app.isPackaged) return {};
  const dir = join(process.resourcesPath, 'native');
  const addon = join(dir, 'sliceform_native.node');
  if (!existsSync(addon)) return {};
  const lib = join(dir, 'lib');
  const env: Record<string, string> = { SLICEFORM_NATIVE: addon };
  if (process.platform === 'linux') env.LD_LIBRARY_PATH = [lib, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  if (process.platform === 'darwin') env.DYLD_LIBRARY_PATH = [lib, process.env.DYLD_LIBRARY_PATH].filter(Boolean).join(':');
  if (process.platform === 'win32') env.PATH = [lib, process.env.PATH].filter(Boolean).join(';');
  return env;
}

/** Compute in an Electron utility process (same messages as the node child process of the web shell). */
const utilityLauncher: ComputeLauncher = (): ComputeChannel => {
  const env = { ...(process.env as Record<string, string>), ...nativeEnv() };
  const child = utilityProcess.fork(COMPUTE_ENTRY, [], { serviceName: 'Sliceform compute', stdio: 'inherit', env });
  return {
    get pid() {
      return child.pid;
    },
    send: (m) => child.postMessage(m),
    onMessage: (cb) => child.on('message', cb),
    onExit: (cb) => child.on('exit', (code) => cb(code, null)),
    kill: () => {
      child.kill();
    },
  };
};

let win: BrowserWindow | null = null;
const trusted = new Set<number>();

async function showDialog(req: DialogRequest): Promise<string | null> {
  if (!win) return null;
  const volumes = { name: 'Microscopy volumes', extensions: ['tif', 'tiff', 'lsm', 'h5', 'hdf5', 'btf'] };
  switch (req.kind) {
    case 'open-volume': {
      const r = await dialog.showOpenDialog(win, { title: req.title ?? 'Open volume', defaultPath: req.defaultPath, properties: ['openFile'], filters: [volumes] });
      return r.canceled ? null : (r.filePaths[0] ?? null);
    }
    case 'open-project':
    case 'pick-folder': {
      const r = await dialog.showOpenDialog(win, { title: req.title ?? (req.kind === 'open-project' ? 'Open project' : 'Choose folder'), defaultPath: req.defaultPath, properties: ['openDirectory'] });
      return r.canceled ? null : (r.filePaths[0] ?? null);
    }
    case 'save-project':
    case 'export-labels':
    case 'save-snapshot': {
      const filters =
        req.kind === 'export-labels' ? [{ name: 'TIFF', extensions: ['tif', 'ome.tif'] }] : req.kind === 'save-snapshot' ? [{ name: 'PNG', extensions: ['png'] }] : [];
      const r = await dialog.showSaveDialog(win, { title: req.title, defaultPath: req.defaultPath, filters });
      return r.canceled ? null : (r.filePath ?? null);
    }
  }
}

function buildMenu(api: ApiService): Menu {
  const send = (cmd: MenuCommand) => () => api.emitMenu(cmd);
  const isMac = process.platform === 'darwin';
  const template: MenuItemConstructorOptions[] = [
    ...(isMac ? [{ role: 'appMenu' as const }] : []),
    {
      label: '&File',
      submenu: [
        { label: 'Open Volume…', accelerator: 'CmdOrCtrl+O', click: send('open-volume') },
        { label: 'Open Project…', accelerator: 'CmdOrCtrl+Shift+O', click: send('open-project') },
        { type: 'separator' },
        { label: 'Save Project', accelerator: 'CmdOrCtrl+S', click: send('save-project') },
        { label: 'Save Project As…', accelerator: 'CmdOrCtrl+Shift+S', click: send('save-project-as') },
        { type: 'separator' },
        { label: 'Export Labels…', accelerator: 'CmdOrCtrl+E', click: send('export-labels') },
        { label: 'Save Snapshot…', accelerator: 'CmdOrCtrl+Shift+E', click: send('save-snapshot') },
        { type: 'separator' },
        isMac ? { role: 'close' } : { role: 'quit' },
      ],
    },
    {
      label: '&Edit',
      submenu: [
        { label: 'Undo', accelerator: 'CmdOrCtrl+Z', click: send('undo') },
        { label: 'Redo', accelerator: 'CmdOrCtrl+Shift+Z', click: send('redo') },
        { type: 'separator' },
        { role: 'cut' },
        { role: 'copy' },
        { role: 'paste' },
        { role: 'selectAll' },
      ],
    },
    {
      label: '&Model',
      submenu: [
        { label: 'Train', accelerator: 'CmdOrCtrl+T', click: send('train') },
        { label: 'Densify', accelerator: 'CmdOrCtrl+D', click: send('densify') },
      ],
    },
    {
      label: '&View',
      submenu: [
        { role: 'resetZoom' },
        { role: 'zoomIn' },
        { role: 'zoomOut' },
        { type: 'separator' },
        { role: 'togglefullscreen' },
        ...(app.isPackaged ? [] : [{ role: 'toggleDevTools' as const }]),
      ],
    },
    { role: 'windowMenu' },
  ];
  return Menu.buildFromTemplate(template);
}

/** app://sliceform/<path> -> dist/renderer/<path>, with the CSP header; nothing outside the folder. */
function registerAppProtocol(): void {
  protocol.handle('app', async (req) => {
    const u = new URL(req.url);
    if (u.host !== 'sliceform') return new Response('not found', { status: 404 });
    let rel = decodeURIComponent(u.pathname);
    if (rel === '/' || rel === '') rel = '/index.html';
    const file = normalize(join(RENDERER_DIR, rel));
    if (!file.startsWith(RENDERER_DIR + sep) || !existsSync(file)) return new Response('not found', { status: 404 });
    // read directly (not net.fetch(file://), which the no-remote-content request filter below would cancel)
    const body = await readFile(file);
    const headers = new Headers({
      'Content-Type': MIME[extname(file)] ?? 'application/octet-stream',
      'Content-Security-Policy': CSP,
      'X-Content-Type-Options': 'nosniff',
    });
    return new Response(body, { status: 200, headers });
  });
}

async function createWindow(api: ApiService): Promise<void> {
  const stateFile = join(app.getPath('userData'), 'window-state.json');
  const state = await loadWindowState(stateFile, screen.getAllDisplays().map((d) => d.workArea));
  win = new BrowserWindow({
    ...state,
    show: false,
    title: 'Sliceform',
    backgroundColor: '#111318',
    icon: join(here, '..', '..', 'resources', 'icons', 'sliceform.png'),
    webPreferences: {
      preload: PRELOAD,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      spellcheck: false,
      navigateOnDragDrop: false,
    },
  });
  const wc = win.webContents;
  trusted.add(wc.id);
  if (state.maximized) win.maximize();
  win.once('ready-to-show', () => win?.show());
  // no navigation away from the app, no new windows; external links open in the system browser
  wc.on('will-navigate', (e, url) => {
    if (!url.startsWith(`${APP_ORIGIN}/`)) e.preventDefault();
  });
  wc.setWindowOpenHandler(({ url }) => {
    if (/^https?:\/\//.test(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
  wc.on('will-attach-webview', (e) => e.preventDefault());
  const save = () => {
    if (!win) return;
    const b = win.getNormalBounds();
    const s: WindowState = { x: b.x, y: b.y, width: b.width, height: b.height, maximized: win.isMaximized() };
    void saveWindowState(stateFile, s).catch(() => {});
  };
  win.on('resized', save);
  win.on('moved', save);
  win.on('close', save);
  win.on('closed', () => {
    trusted.delete(wc.id);
    win = null;
  });
  const off = api.subscribeAll((name, payload) => {
    if (!wc.isDestroyed()) wc.send(EVENT_CHANNEL, name, payload);
  });
  wc.once('destroyed', off);
  await win.loadURL(`${APP_ORIGIN}/index.html`);
}

async function main(): Promise<void> {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  await app.whenReady();
  // no remote content: only app:, devtools: and data:/blob: requests leave the renderer
  session.defaultSession.webRequest.onBeforeRequest((details, cb) => {
    const ok = /^(app|devtools|data|blob|chrome-extension):/.test(details.url);
    cb({ cancel: !ok });
  });
  session.defaultSession.setPermissionRequestHandler((_wc, _perm, cb) => cb(false));
  session.defaultSession.setPermissionCheckHandler(() => false);
  registerAppProtocol();

  const api = new ApiService({
    shell: 'electron',
    launcher: utilityLauncher,
    showDialog,
    workDir: join(app.getPath('userData'), 'scratch'),
    recoveryDir: join(app.getPath('userData'), 'recovery.sliceform'),
  });
  ipcMain.handle(CALL_CHANNEL, createIpcHandler(api, () => trusted));
  Menu.setApplicationMenu(buildMenu(api));
  await createWindow(api);

  app.on('second-instance', () => {
    if (win) {
      if (win.isMinimized()) win.restore();
      win.focus();
    }
  });
  app.on('activate', () => {
    if (!win) void createWindow(api);
  });
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  let quitting = false;
  app.on('before-quit', (e) => {
    if (quitting) return;
    quitting = true;
    e.preventDefault();
    void (async () => {
      await api.autosaveNow().catch(() => false);
      await api.dispose();
      app.exit(0);
    })();
  });
}

void main();
