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

/**
 * Reads a File in slices (File.arrayBuffer() says nothing until it is done; a stream's chunk size is up to
 * the browser), about 100 reports for a large file, at least every 256 KiB for a small one.
 */
export async function readFileWithProgress(file: File, onProgress: (fraction: number) => void): Promise<Uint8Array> {
  const total = file.size;
  if (!total) return new Uint8Array(await file.arrayBuffer());
  const out = new Uint8Array(total);
  const chunk = Math.max(256 * 1024, Math.ceil(total / 100));
  for (let at = 0; at < total; at += chunk) {
    const part = new Uint8Array(await file.slice(at, Math.min(total, at + chunk)).arrayBuffer());
    if (part.length !== Math.min(chunk, total - at)) throw new Error(`${file.name} changed while it was being read`);
    out.set(part, at);
    onProgress(Math.min(total, at + chunk) / total);
  }
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
    const info = await open();
    // the answer can overtake the reader's last progress event (an upload answers over HTTP, events come over
    // the WebSocket): the stack is decoded once the answer is here
    onProgress({ stage: 'decoding', fraction: 1 });
    return info;
  } finally {
    if (timer) clearInterval(timer);
    off();
  }
}
