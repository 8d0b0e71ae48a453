import { defineConfig } from 'vitest/config';

// One runner for unit, integration and e2e specs. Forks (not threads): the native addon and h5wasm
// hold process-global state, and a crash in one spec file must not take the others with it.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'main/**/__tests__/*.test.ts', 'native-models/test/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
