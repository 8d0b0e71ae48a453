// The build config runs in Node, not in the renderer: its row in eslint-rules/layers.js is renderer/, not renderer/src/.
import { defineConfig } from 'vite';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

// The renderer is served by `sliceform serve` (web shell) and loaded from the app:// protocol in Electron:
// relative asset URLs, no external resources, output in dist/renderer.
export default defineConfig({
  root: here,
  base: './',
  build: {
    outDir: resolve(here, '..', 'dist', 'renderer'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 4096,
  },
  server: { fs: { allow: [resolve(here, '..')] } },
});
