/** One-line renderings of training / prediction progress for terminals and logs. Pure. */
import type { Progress } from '../common/progress.js';

export function formatDuration(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s)) return '--:--';
  const t = Math.max(0, Math.round(s));
  const m = Math.floor(t / 60);
  const sec = t % 60;
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m` : `${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
}

export function progressLine(p: Progress, width = 24): string {
  const f = Math.max(0, Math.min(1, p.fraction));
  const filled = Math.round(f * width);
  const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
  const d = p.details ?? {};
  const parts = [`${(p.stage ?? '').padEnd(10)} [${bar}] ${(f * 100).toFixed(0).padStart(3)}%`];
  if (d.iteration !== undefined) parts.push(`it ${d.iteration}`);
  if (typeof d.loss === 'number') parts.push(`loss ${d.loss.toFixed(4)}`);
  if (d.voxelsPerSecond !== undefined) parts.push(`${d.voxelsPerSecond} vox/s`);
  if (typeof d.heldOutIoU === 'number') parts.push(`held-out IoU ${d.heldOutIoU.toFixed(3)}`);
  if (d.tile !== undefined) parts.push(`tile ${d.tile}/${d.tiles}`);
  parts.push(`ETA ${formatDuration(p.etaSeconds)}`);
  return parts.join('  ');
}

/** A throttled stderr progress writer: redraws in place on a TTY, prints a line every `everyMs` otherwise. */
export function progressPrinter(write: (s: string) => void, isTTY: boolean, everyMs = isTTY ? 200 : 10_000): { update: (p: Progress) => void; done: () => void } {
  let last = 0;
  let lastLine = '';
  let drawn = false;
  let pending = false;
  return {
    update(p) {
      const now = Date.now();
      lastLine = progressLine(p);
      pending = true;
      if (now - last < everyMs && p.fraction < 1) return;
      last = now;
      pending = false;
      if (isTTY) {
        write(`\r${lastLine}\x1b[K`);
        drawn = true;
      } else write(lastLine + '\n');
    },
    done() {
      if (isTTY && (drawn || pending)) write(`\r${lastLine}\x1b[K\n`);
      else if (!isTTY && pending) write(lastLine + '\n');
      drawn = false;
      pending = false;
      lastLine = '';
    },
  };
}
