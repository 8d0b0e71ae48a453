import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

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
  // Dependency rules from shared/STYLE.md: main/common is pure; main/ never imports electron or renderer.
  {
    files: ['main/common/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['node:*', 'fs', 'path', 'electron', '../io/*', '../engine/*', '../services/*', '../../renderer/*'] }],
    },
  },
  {
    files: ['main/**/*.ts'],
    ignores: ['main/common/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['electron', '**/renderer/**', '**/test/**'] }] },
  },
  {
    files: ['renderer/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['node:*', 'electron', '**/main/io/**', '**/main/engine/**', '**/main/services/**'] }] },
  },
);
