/**
 * The one entry point both transports (web-shell WebSocket, Electron IPC) use to run an incoming call:
 * validate the payload with its zod schema, call the service, map any thrown error to an ApiError.
 * Never throws anything but ApiError.
 */
import { ApiError, type ApiErrorCode, type SliceformApi } from '../common/api.js';
import { validateRequest } from '../common/api-schema.js';
import { isSliceformError } from '../common/errors.js';
import type { PathRoots } from './path-guard.js';
import { checkCallPaths } from './web-paths.js';

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (isSliceformError(e)) {
    const code: ApiErrorCode = e.kind === 'bad-input' || e.kind === 'unsupported' || e.kind === 'too-large' || e.kind === 'cancelled' || e.kind === 'engine' ? e.kind : 'internal';
    return new ApiError(code, e.message, { file: e.file });
  }
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err === 'object' && typeof err.code === 'string') {
    const file = (err as { path?: string }).path;
    if (err.code === 'ENOENT') return new ApiError('not-found', `${file ?? 'file'}: no such file or directory`, { file });
    if (err.code === 'EACCES' || err.code === 'EPERM') return new ApiError('bad-input', `${file ?? 'file'}: permission denied`, { file });
    if (err.code === 'EISDIR') return new ApiError('bad-input', `${file ?? 'path'}: is a directory, expected a file`, { file });
    if (err.code === 'ENOTDIR') return new ApiError('bad-input', `${file ?? 'path'}: not a directory`, { file });
    if (err.code === 'ENOSPC') return new ApiError('internal', `${file ?? 'disk'}: no space left on device`, { file });
  }
  return new ApiError('internal', `internal error: ${(e as Error)?.message ?? String(e)}`);
}

/**
 * @param opts.roots the web shell's --allow-remote folders: every path of the call must lie inside them.
 * Either way the paths a call reads as volumes must be regular files (web-paths.ts): a FIFO would block a
 * thread of the file-I/O pool for good.
 */
export async function dispatch(api: SliceformApi, method: unknown, payload: unknown, opts: { roots?: PathRoots | null } = {}): Promise<unknown> {
  let v: ReturnType<typeof validateRequest>;
  try {
    v = validateRequest(method, payload);
  } catch (e) {
    throw toApiError(e);
  }
  try {
    const checked = await checkCallPaths(v.method, v.payload, opts.roots ?? null);
    const fn = api[v.method] as (p: unknown) => Promise<unknown>;
    return await fn.call(api, checked);
  } catch (e) {
    throw toApiError(e);
  }
}
