/**
 * "Opening…" with a fraction (issue 14, item 9): a dropped or uploaded file goes through three stages —
 * reading it in the browser, sending it to the server, and the server decoding it — and each reports how far
 * it got, so a large stack never sits on a bare "Opening…".
 */
import type { SliceformApi, VolumeInfo } from '../../../main/common/api.js';

export type OpenStage = 'reading' | 'uploading' | 'decoding';

export interface OpenProgress {
  stage: OpenStage;
  fraction: number;
}

const WORDS: Record<OpenStage, string> = {
  reading: 'reading the file',
  uploading: 'sending it to Sliceform',
  decoding: 'decoding the stack',
};

/** "Opening cells.tif… sending it to Sliceform 40 %" */
export function openProgressText(name: string, p: OpenProgress): string {
  return `Opening ${name}… ${WORDS[p.stage]} ${Math.floor(Math.max(0, Math.min(1, p.fraction)) * 100)} %`;
}

/** Reads a File chunk by chunk (File.arrayBuffer() says nothing until it is done). */
export async function readFileWithProgress(file: File, onProgress: (fraction: number) => void): Promise<Uint8Array> {
  const total = file.size;
  if (!total || typeof file.stream !== 'function') return new Uint8Array(await file.arrayBuffer());
  const out = new Uint8Array(total);
  const reader = file.stream().getReader();
  let at = 0;
  let last = -1;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (at + value.length > total) throw new Error(`${file.name} grew while it was being read`);
    out.set(value, at);
    at += value.length;
    const f = at / total;
    if (f - last >= 0.01 || f === 1) {
      last = f;
      onProgress(f);
    }
  }
  if (at !== total) throw new Error(`${file.name} could not be read completely (${at} of ${total} bytes)`);
  return out;
}

/**
 * Runs an open call and reports the server's side of it: how much of the upload is still queued in the
 * WebSocket (web shell only, `bytesQueued`) and the reader's progress events for `source`.
 */
export async function withOpenProgress(
  api: SliceformApi,
  source: string,
  upload: { bytes: number; bytesQueued?: () => number } | null,
  onProgress: (p: OpenProgress) => void,
  open: () => Promise<VolumeInfo>,
): Promise<VolumeInfo> {
  let decoding = false;
  const off = api.onVolumeProgress((e) => {
    if (e.source !== source) return;
    decoding = true;
    onProgress({ stage: 'decoding', fraction: e.progress.fraction });
  });
  let timer: ReturnType<typeof setInterval> | undefined;
  if (upload && upload.bytesQueued && upload.bytes > 0) {
    const queued = upload.bytesQueued;
    let last = -1;
    const poll = () => {
      if (decoding) return;
      const f = 1 - Math.min(upload.bytes, queued()) / upload.bytes;
      if (f !== last) {
        last = f;
        onProgress({ stage: 'uploading', fraction: f });
      }
    };
    timer = setInterval(poll, 100);
    queueMicrotask(poll);
  }
  try {
    return await open();
  } finally {
    if (timer) clearInterval(timer);
    off();
  }
}
