import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import localRules from './eslint-rules/code-layering.js';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'native-models/build/**', 'test-artifacts/**', 'bench/out/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  // Plain JS entry points and scripts (bin/, bench/, build scripts) run under Node.
  { files: ['**/*.js', '**/*.mjs', '**/*.cjs'], languageOptions: { globals: globals.node } },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // Dependency rules (shared/STYLE.md) as an allow-list: each folder names what it may import, in
  // eslint-rules/layers.js (the table is also in DEVELOPERS.md). native-models only from main/engine.
  {
    files: ['**/*.{ts,mts,cts,js,mjs,cjs}'],
    plugins: { local: localRules },
    rules: { 'local/code-layering': 'error' },
  },
);
