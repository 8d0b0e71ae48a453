/**
 * IPC → API adapter for Electron main, free of any runtime `electron` import so it is unit-tested in plain Node.
 * One invoke channel carries every call; main checks the sender (our window's main frame, loaded from the
 * app:// origin), validates the payload (dispatch.ts / zod) and answers with an envelope, because Errors lose
 * their fields when they cross IPC and the context bridge.
 */
import { dispatch, toApiError } from '../main/services/dispatch.js';
import type { ApiErrorInfo, SliceformApi } from '../main/common/api.js';

export const CALL_CHANNEL = 'sliceform:call';
export const EVENT_CHANNEL = 'sliceform:event';
export const APP_ORIGIN = 'app://sliceform';

export type Envelope = { ok: true; value: unknown } | { ok: false; error: ApiErrorInfo };

/** The parts of Electron's IpcMainInvokeEvent the adapter looks at. */
export interface SenderInfo {
  sender: { id: number };
  senderFrame: { url: string; parent: unknown | null } | null;
}

/** True when the call comes from the main frame of one of our windows, showing our own app:// page. */
export function isTrustedSender(e: SenderInfo, trustedWebContentsIds: ReadonlySet<number>): boolean {
  if (!trustedWebContentsIds.has(e.sender.id)) return false;
  const f = e.senderFrame;
  if (!f || f.parent !== null) return false;
  let u: URL;
  try {
    u = new URL(f.url);
  } catch {
    return false;
  }
  return `${u.protocol}//${u.host}` === APP_ORIGIN;
}

/** Builds the handler for ipcMain.handle(CALL_CHANNEL, …). Never throws. */
export function createIpcHandler(api: SliceformApi, trusted: () => ReadonlySet<number>) {
  return async (e: SenderInfo, method: unknown, payload: unknown): Promise<Envelope> => {
    if (!isTrustedSender(e, trusted())) {
      return { ok: false, error: { code: 'unauthorized', message: 'IPC call from an untrusted frame refused' } };
    }
    try {
      return { ok: true, value: await dispatch(api, method, payload) };
    } catch (err) {
      return { ok: false, error: toApiError(err).toInfo() };
    }
  };
}
