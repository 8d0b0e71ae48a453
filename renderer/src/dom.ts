/** Small DOM helpers: element builder with data-testid, and human-readable error text. */
import { ApiError } from '../../main/common/api.js';

type Attrs = Record<string, string | number | boolean | undefined> & { testid?: string; class?: string };

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Array<Node | string | null | undefined>
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'testid') e.dataset.testid = String(v);
    else if (k === 'class') e.className = String(v);
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

export function button(label: string, testid: string, onClick: () => void, title?: string): HTMLButtonElement {
  const b = el('button', { testid, type: 'button', title }, label);
  b.addEventListener('click', () => onClick());
  return b;
}

/**
 * What to tell a biologist: which file, what is wrong, what to do. ApiError codes map to a hint;
 * the server's message already names the file and the problem.
 */
export function friendlyError(e: unknown, action: string): string {
  const err = e instanceof Error ? e : new Error(String(e));
  const code = e instanceof ApiError ? e.code : (e as { code?: string })?.code;
  const hints: Record<string, string> = {
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
  };
  const hint = code ? hints[code] : undefined;
  return `${action} failed: ${err.message}${hint ? ` — ${hint}` : ''}`;
}
