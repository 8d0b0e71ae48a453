/**
 * Sandboxed preload (CommonJS: sandboxed preloads cannot be ES modules and may only require 'electron').
 * Exposes nothing but the API contract: a bridge of one call channel + event subscriptions, from which
 * `window.sliceform` (SliceformApi, with ApiError rejections) is built in the page's world.
 * Method and event names must match main/common/api.ts (test/unit/api-electron.test.ts checks).
 */
import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';

const CALL_CHANNEL = 'sliceform:call';
const EVENT_CHANNEL = 'sliceform:event';

const METHODS = [
  'openVolume', 'openVolumeBytes', 'listVolumes', 'closeVolume', 'getSlice', 'getBrick',
  'getClasses', 'setClasses', 'paintStroke', 'paintRegion', 'undo', 'redo', 'clearAnnotation',
  'getAnnotationSummary', 'getLabelSlice', 'getLabelVolume',
  'startTraining', 'stopTraining', 'densify', 'evaluate', 'startBatch', 'cancelJob', 'getJob', 'listJobs', 'waitJob', 'listModels',
  'setVisiblePlanes', 'getPreview', 'getPreviewVolume', 'getSuggestions',
  'exportLabels', 'saveSnapshot',
  'computeObjects', 'getObjects', 'getObjectSlice', 'getObjectVolume', 'mergeObjects', 'splitObject', 'undoObjects', 'exportObjects',
  'newProject', 'openProject', 'saveProject', 'getProject', 'relocateVolume', 'updateSettings',
  'listDirectory', 'showDialog', 'systemInfo',
];

const EVENTS: Record<string, string> = {
  onJob: 'job',
  onTrainProgress: 'trainProgress',
  onLabelsChanged: 'labelsChanged',
  onProject: 'project',
  onCompute: 'compute',
  onMenu: 'menu',
  onVolumeProgress: 'volumeProgress',
  onPreview: 'preview',
};

const listeners = new Map<string, Set<(p: unknown) => void>>();
ipcRenderer.on(EVENT_CHANNEL, (_e: IpcRendererEvent, name: unknown, payload: unknown) => {
  if (typeof name !== 'string') return;
  for (const cb of listeners.get(name) ?? []) {
    try {
      cb(payload);
    } catch {
      // a listener's error must not stop the others
    }
  }
});

const bridge = {
  call: (method: string, payload: unknown): Promise<unknown> => {
    if (!METHODS.includes(method)) return Promise.resolve({ ok: false, error: { code: 'bad-request', message: `unknown method ${method}` } });
    return ipcRenderer.invoke(CALL_CHANNEL, method, payload);
  },
  on: (name: string, cb: (p: unknown) => void): (() => void) => {
    if (!Object.values(EVENTS).includes(name) || typeof cb !== 'function') return () => {};
    let set = listeners.get(name);
    if (!set) listeners.set(name, (set = new Set()));
    set.add(cb);
    return () => {
      set!.delete(cb);
    };
  },
  getPathForFile: (file: unknown): string => webUtils.getPathForFile(file as Parameters<typeof webUtils.getPathForFile>[0]),
};

/** Runs in the page's world (serialised by executeInMainWorld): wraps the bridge into SliceformApi. */
function buildApi(b: typeof bridge, methods: string[], events: Record<string, string>): void {
  class ApiError extends Error {
    code: string;
    file?: string;
    details?: Record<string, unknown>;
    constructor(info: { code: string; message: string; file?: string; details?: Record<string, unknown> }) {
      super(info.message);
      this.name = 'ApiError';
      this.code = info.code;
      this.file = info.file;
      this.details = info.details;
    }
  }
  const api: Record<string, unknown> = {};
  for (const m of methods)
    api[m] = async (payload?: unknown) => {
      const env = (await b.call(m, payload)) as { ok: boolean; value?: unknown; error?: { code: string; message: string } };
      if (env.ok) return env.value;
      throw new ApiError(env.error!);
    };
  for (const [method, name] of Object.entries(events)) api[method] = (cb: (p: unknown) => void) => b.on(name, cb);
  api.getPathForFile = (file: unknown) => b.getPathForFile(file);
  Object.defineProperty(globalThis, 'sliceform', { value: Object.freeze(api), writable: false, configurable: false });
}

// the bridge object reaches the page only as an argument of buildApi (proxied by the context bridge)
contextBridge.executeInMainWorld({ func: buildApi, args: [bridge, METHODS, EVENTS] });
