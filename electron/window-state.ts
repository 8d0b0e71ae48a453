/** Window bounds remembered between runs (userData/window-state.json), clamped onto a visible display. */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../main/services/atomic.js';

export interface WindowState {
  x?: number;
  y?: number;
  width: number;
  height: number;
  maximized: boolean;
}

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export const DEFAULT_STATE: WindowState = { width: 1400, height: 900, maximized: false };

export async function loadWindowState(file: string, displays: Rect[]): Promise<WindowState> {
  let s: Partial<WindowState>;
  try {
    s = JSON.parse(await readFile(file, 'utf8')) as Partial<WindowState>;
  } catch {
    return { ...DEFAULT_STATE };
  }
  return clampState(s, displays);
}

/** Keeps sane sizes and drops a position that would put the title bar off every display. */
export function clampState(s: Partial<WindowState>, displays: Rect[]): WindowState {
  const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v : d);
  const width = Math.max(640, Math.min(num(s.width, DEFAULT_STATE.width), 16384));
  const height = Math.max(480, Math.min(num(s.height, DEFAULT_STATE.height), 16384));
  const out: WindowState = { width, height, maximized: s.maximized === true };
  if (typeof s.x === 'number' && typeof s.y === 'number') {
    const tx = s.x + 40,
      ty = s.y + 10;
    if (displays.some((d) => tx >= d.x && tx < d.x + d.width && ty >= d.y && ty < d.y + d.height)) {
      out.x = s.x;
      out.y = s.y;
    }
  }
  return out;
}

export async function saveWindowState(file: string, s: WindowState): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(s) + '\n');
}
