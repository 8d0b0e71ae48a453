/**
 * local/code-layering: refuses any import that the layering table (eslint-rules/layers.js) does not allow.
 * Checks static imports, re-exports, `import type`, `import('x')` (also as a type) and `require('x')` with a
 * literal path; relative paths are resolved against the file, so `../../main/io/x.js` and `./x.js` are treated
 * alike. Computed specifiers cannot be checked.
 */
import { builtinModules } from 'node:module';
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAYERS, PACKAGE_OWNERS } from './layers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BUILTINS = new Set(builtinModules);
const NATIVE = 'native-models/';

const toPosix = (p) => p.split(sep).join('/');
const stripExt = (p) => p.replace(/\.(d\.ts|[cm]?[jt]s|tsx)$/, '');

/** The row of the table that governs a repository path (longest layer prefix; a file row must match exactly). */
export function layerOf(rel) {
  let best = null;
  for (const l of LAYERS) {
    const hit = l.layer.endsWith('/') || l.layer === '' ? rel.startsWith(l.layer) : stripExt(rel) === stripExt(l.layer);
    if (hit && (!best || l.layer.length > best.layer.length)) best = l;
  }
  return best;
}

function allows(layer, target) {
  if (target.startsWith(NATIVE)) return layer.allow.includes(NATIVE);
  if (layer.allow.includes('*')) return true;
  return layer.allow.some((a) => (a.endsWith('/') ? target.startsWith(a) : stripExt(target) === stripExt(a)));
}

/** The message for a file whose folder has no row (a catch-all row marked unlisted), or null. */
export function unlistedFolder(rel) {
  const layer = layerOf(rel);
  if (!layer?.unlisted) return null;
  const parts = rel.split('/');
  const folder = parts.length > 2 ? `${parts.slice(0, 2).join('/')}/` : rel;
  return `${folder} is not in the layering table (eslint-rules/layers.js, DEVELOPERS.md): add the folder and what it may import`;
}

/** Why `spec` imported from repository file `rel` breaks the table, or null when it is allowed. */
export function violation(rel, spec) {
  const layer = layerOf(rel);
  if (!layer) return null;
  const where = layer.layer === '' ? rel : layer.layer.replace(/\/$/, '');
  if (layer.unlisted) return null; // reported once per file, see unlistedFolder
  if (spec.startsWith('.') || spec.startsWith('/')) {
    const target = toPosix(relative(ROOT, resolve(ROOT, dirname(rel), spec)));
    if (target.startsWith('../')) return null; // outside the repository (node_modules links etc.)
    if (layerOf(target) === layer || allows(layer, target)) return null; // its own row, or allowed
    const allowed = layer.allow.length ? layer.allow.join(', ') : 'nothing outside itself';
    if (target.startsWith(NATIVE)) return `${where} may not import ${target}: only main/engine loads native-models`;
    return `${where} may not import ${target} (it may import ${allowed})`;
  }
  const bare = spec.startsWith('node:') ? spec : spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');
  const runtime = layer.runtime ?? 'node';
  if (bare === 'electron') {
    return runtime === 'electron' || layer.allow.includes('*') ? null : `${where} may not import electron (only electron/ runs under Electron)`;
  }
  if (spec.startsWith('node:') || BUILTINS.has(bare)) {
    return runtime === 'pure' || runtime === 'browser' ? `${where} may not import the Node built-in '${spec}' (it is ${runtime} code)` : null;
  }
  if (layer.allow.includes('*')) return null;
  for (const [prefix, owners] of Object.entries(PACKAGE_OWNERS)) {
    if (spec.startsWith(prefix) && !owners.some((o) => rel.startsWith(o))) return `${where} may not import '${spec}' (only ${owners.join(', ')} may)`;
  }
  return null;
}

/** @type {import('eslint').Rule.RuleModule} */
export const codeLayering = {
  meta: {
    type: 'problem',
    docs: { description: 'imports follow the allow-list layering table in eslint-rules/layers.js' },
    schema: [],
    messages: { layer: '{{why}}' },
  },
  create(context) {
    const file = context.filename ?? context.getFilename();
    const rel = toPosix(relative(ROOT, file));
    if (rel.startsWith('../')) return {};
    const check = (node, source) => {
      if (!source || source.type !== 'Literal' || typeof source.value !== 'string') return;
      const why = violation(rel, source.value);
      if (why) context.report({ node: source, messageId: 'layer', data: { why } });
    };
    return {
      Program: (n) => {
        const why = unlistedFolder(rel);
        if (why) context.report({ node: n, loc: { line: 1, column: 0 }, messageId: 'layer', data: { why } });
      },
      ImportDeclaration: (n) => check(n, n.source),
      ExportNamedDeclaration: (n) => check(n, n.source),
      ExportAllDeclaration: (n) => check(n, n.source),
      ImportExpression: (n) => check(n, n.source),
      TSImportType: (n) => check(n, n.argument?.type === 'TSLiteralType' ? n.argument.literal : n.argument),
      TSExternalModuleReference: (n) => check(n, n.expression),
      CallExpression: (n) => {
        if (n.callee.type === 'Identifier' && n.callee.name === 'require' && n.arguments.length === 1) check(n, n.arguments[0]);
      },
    };
  },
};

export default { rules: { 'code-layering': codeLayering } };
