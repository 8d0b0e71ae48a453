// The allow-list layering lint (eslint-rules/code-layering.js, table in eslint-rules/layers.js): planted
// imports are linted with the project's own eslint.config.js (ESLint's Node API, lintText with a file path in
// the tree, so nothing is written into the shared checkout) and must be refused with a message naming the rule.
// The snippets are synthetic by nature (forbidden imports that must never exist in the tree).
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';
import localRules from '../../eslint-rules/code-layering.js';
import { LAYERS } from '../../eslint-rules/layers.js';

const repo = join(import.meta.dirname, '..', '..');
const eslint = new ESLint({ cwd: repo });

/** Layering messages for `code` linted as if it were the file `filePath` (repository-relative). */
async function layering(filePath: string, code: string): Promise<string[]> {
  const [res] = await eslint.lintText(code, { filePath: join(repo, filePath) });
  const msgs = res!.messages;
  const fatal = msgs.filter((m) => m.fatal);
  if (fatal.length) throw new Error(`parse error in the planted snippet: ${fatal[0]!.message}`);
  return msgs.filter((m) => m.ruleId === 'local/code-layering').map((m) => m.message);
}

describe('code-layering refuses planted imports', () => {
  it('renderer/ imports only main/common (not io, engine, training, inference, services)', async () => {
    for (const target of ['io/index', 'engine/index', 'training/trainer', 'inference/segment', 'services/api-service', 'volume/geometry']) {
      const m = await layering('renderer/src/planted.ts', `import * as x from '../../main/${target}.js';\nexport { x };\n`);
      expect(m, target).toEqual([`renderer/src may not import main/${target}.js (it may import main/common/, renderer/styles/)`]);
    }
    expect(await layering('renderer/src/planted.ts', `import type { Volume } from '../../main/common/volume.js';\nexport type V = Volume;\n`)).toEqual([]);
    expect(await layering('renderer/src/planted.ts', `import { readFile } from 'node:fs/promises';\nexport { readFile };\n`)).toEqual([
      "renderer/src may not import the Node built-in 'node:fs/promises' (it is browser code)",
    ]);
  });

  it('main/io imports only main/common', async () => {
    expect(await layering('main/io/planted.ts', `import { train } from '../training/trainer.js';\nexport { train };\n`)).toEqual([
      'main/io may not import main/training/trainer.js (it may import main/common/)',
    ]);
    expect(await layering('main/io/planted.ts', `export { planTiles } from '../volume/tiling.js';\n`)).toEqual([
      'main/io may not import main/volume/tiling.js (it may import main/common/)',
    ]);
    // a dynamic import and a type-only import are checked too
    expect(await layering('main/io/tiff/planted.ts', `export async function f() { return import('../../services/jobs.js'); }\n`)).toHaveLength(1);
    expect(await layering('main/io/planted.ts', `export type M = import('../engine/index.js').Foo;\n`)).toHaveLength(1);
    expect(await layering('main/io/tiff/planted.ts', `import { SliceformError } from '../../common/errors.js';\nexport { SliceformError };\n`)).toEqual([]);
  });

  it('main/inference does not import main/training (the shared maths sit in main/volume)', async () => {
    expect(await layering('main/inference/planted.ts', `import { mirrorIndex } from '../training/augment.js';\nexport { mirrorIndex };\n`)).toEqual([
      'main/inference may not import main/training/augment.js (it may import main/common/, main/io/, main/volume/)',
    ]);
    expect(await layering('main/inference/planted.ts', `import { mirrorIndex } from '../volume/mirror.js';\nexport { mirrorIndex };\n`)).toEqual([]);
    // the trainer reaches region prediction through the floor, not through inference
    expect(await layering('main/training/planted.ts', `export { predictRegion } from '../inference/segment.js';\n`)).toHaveLength(1);
    expect(await layering('main/training/planted.ts', `export { predictRegion } from '../volume/predict.js';\n`)).toEqual([]);
  });

  it('only main/engine imports native-models', async () => {
    const code = (rel: string) => `import type * as N from '${rel}native-models/lib/index.js';\nexport type T = typeof N;\n`;
    expect(await layering('main/engine/planted.ts', code('../../'))).toEqual([]);
    for (const f of ['main/services/planted.ts', 'main/training/planted.ts', 'main/cli/commands/planted.ts', 'electron/planted.ts', 'test/unit/planted.test.ts', 'scripts/planted.mjs']) {
      const depth = f.split('/').length - 1;
      const m = await layering(f, code('../'.repeat(depth)));
      expect(m, f).toHaveLength(1);
      expect(m[0], f).toMatch(/may not import native-models\/lib\/index\.js: only main\/engine loads native-models$/);
    }
    expect(await layering('main/services/planted.ts', `const n = require('../../native-models/lib/index.js');\nexport { n };\n`)).toHaveLength(1);
  });

  it('main/common stays pure, main/ never imports electron, new folders must be listed', async () => {
    expect(await layering('main/common/planted.ts', `import { readFile } from 'fs';\nexport { readFile };\n`)).toEqual([
      "main/common may not import the Node built-in 'fs' (it is pure code)",
    ]);
    expect(await layering('main/services/planted.ts', `import { app } from 'electron';\nexport { app };\n`)).toEqual([
      'main/services may not import electron (only electron/ runs under Electron)',
    ]);
    expect(await layering('main/services/planted.ts', `import { h } from '../../test/helpers/data.js';\nexport { h };\n`)).toEqual([
      'main/services may not import test/helpers/data.js (it may import main/common/, main/io/, main/volume/, main/objects/, main/classical/, main/engine/, main/inference/, main/training/, main/pipeline/, main/evaluation/, main/batch/)',
    ]);
    expect(await layering('main/batch/planted.ts', `export * from '../cli/commands/segment-folder.js';\n`)).toHaveLength(1);
    expect(await layering('main/newroom/planted.ts', `export const x = 1;\n`)).toEqual([
      'main/newroom/ is not in the layering table (eslint-rules/layers.js, DEVELOPERS.md): add the folder and what it may import',
    ]);
    expect(await layering('main/services/planted.ts', `import * as tf from '@tensorflow/tfjs';\nexport { tf };\n`)).toEqual([
      "main/services may not import '@tensorflow/tfjs' (only main/engine/ may)",
    ]);
  });
});

describe('the eslint command that scripts/test.sh runs', () => {
  it('exits 1 and names the rule for a planted import (and 0 for an allowed one)', () => {
    const bin = join(repo, 'node_modules', 'eslint', 'bin', 'eslint.js');
    const lint = (file: string, code: string) =>
      spawnSync(process.execPath, [bin, '--stdin', '--stdin-filename', file], { cwd: repo, input: code, encoding: 'utf8' });
    const bad = lint('main/inference/planted.ts', `import { train } from '../training/trainer.js';\nexport { train };\n`);
    expect(bad.status, bad.stderr).toBe(1);
    expect(bad.stdout).toContain('main/inference may not import main/training/trainer.js');
    expect(bad.stdout).toContain('local/code-layering');
    const good = lint('main/inference/planted.ts', `import { planTiles } from '../volume/tiling.js';\nexport { planTiles };\n`);
    expect(good.status, good.stdout + good.stderr).toBe(0);
  });
});

describe('the tree as it stands', () => {
  it('has no layering violations in main/, renderer/, electron/ and native-models/lib', async () => {
    // only the layering rule, so this stays quick; `npx eslint .` (scripts/test.sh) runs it with the rest
    const only = new ESLint({
      cwd: repo,
      overrideConfigFile: true,
      overrideConfig: [
        {
          files: ['**/*.{ts,mts,cts,js,mjs,cjs}'],
          languageOptions: { parser: tseslint.parser },
          linterOptions: { reportUnusedDisableDirectives: 'off' },
          plugins: { local: localRules },
          rules: { 'local/code-layering': 'error' },
        },
      ],
    });
    const results = await only.lintFiles(['main', 'renderer/src', 'electron', 'native-models/lib']);
    expect(results.length).toBeGreaterThan(100);
    // other rules' disable comments name rules this config does not load; only layering and parse errors count
    const errors = results.flatMap((r) =>
      r.messages.filter((m) => m.ruleId === 'local/code-layering' || m.fatal).map((m) => `${relative(repo, r.filePath)}:${m.line} ${m.message}`),
    );
    expect(errors).toEqual([]);
  });

  it('DEVELOPERS.md shows the same table as eslint-rules/layers.js', () => {
    const dev = readFileSync(join(repo, 'DEVELOPERS.md'), 'utf8');
    for (const l of LAYERS) {
      if (l.layer === '' || l.unlisted) continue;
      const row = `| \`${l.layer}\` | ${l.allow.length ? l.allow.map((a: string) => `\`${a}\``).join(', ') : '—'} |`;
      expect(dev, l.layer).toContain(row);
    }
  });

  it('every folder of main/ has a row', () => {
    const folders = readdirSync(join(repo, 'main')).filter((n) => statSync(join(repo, 'main', n)).isDirectory());
    const rows = new Set(LAYERS.map((l) => l.layer));
    expect(folders.filter((f) => !rows.has(`main/${f}/`))).toEqual([]);
  });
});
