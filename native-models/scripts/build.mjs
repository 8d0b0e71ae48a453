#!/usr/bin/env node
// Builds native-models (the libtorch N-API addon) with node-gyp.
//   npm run build:addon                 Debian libtorch-dev (/usr/include/torch, /usr/lib/<triplet>)
//   LIBTORCH=/path/to/libtorch npm run build:addon   any libtorch root with include/ lib/ share/cmake/Torch
//                                        (e.g. the folder of a pip torch package: python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
//   --force  reconfigure from scratch; --jobs N  parallel compile (default 1: each libtorch TU is heavy)
// Incremental: configure only when the libtorch root changed; make rebuilds only changed sources.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const force = args.includes('--force');
const jobsIdx = args.indexOf('--jobs');
const jobs = jobsIdx >= 0 ? args[jobsIdx + 1] : '1';

function fail(msg) {
  console.error(`build:addon: ${msg}`);
  process.exit(1);
}

function findTorch() {
  const env = process.env.LIBTORCH;
  if (env) {
    const r = resolve(env);
    const inc = join(r, 'include');
    const lib = join(r, 'lib');
    if (!existsSync(join(inc, 'torch', 'csrc', 'api', 'include', 'torch', 'torch.h')))
      fail(
        `LIBTORCH=${env} has no include/torch/csrc/api/include/torch/torch.h; point it at a libtorch root (include/, lib/, share/cmake/Torch)`,
      );
    if (!existsSync(lib)) fail(`LIBTORCH=${env} has no lib/ folder`);
    return {
      root: r,
      includes: [inc, join(inc, 'torch', 'csrc', 'api', 'include')],
      libdir: lib,
      cmake: join(r, 'share', 'cmake', 'Torch', 'TorchConfig.cmake'),
    };
  }
  const triplets = ['x86_64-linux-gnu', 'aarch64-linux-gnu'];
  for (const t of triplets) {
    const libdir = `/usr/lib/${t}`;
    if (
      existsSync('/usr/include/torch/csrc/api/include/torch/torch.h') &&
      existsSync(join(libdir, 'libtorch.so'))
    )
      return {
        root: '/usr',
        includes: ['/usr/include', '/usr/include/torch/csrc/api/include'],
        libdir,
        cmake: join(libdir, 'cmake', 'Torch', 'TorchConfig.cmake'),
      };
  }
  fail(
    'libtorch not found. Install Debian/Ubuntu `libtorch-dev` (apt-get install libtorch-dev), or set LIBTORCH to a libtorch root\n' +
      '  (e.g. LIBTORCH=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))") npm run build:addon)',
  );
}

function cxx11Abi(t) {
  if (existsSync(t.cmake)) {
    const m = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(readFileSync(t.cmake, 'utf8'));
    if (m) return m[1];
  }
  return '1';
}

const t = findTorch();
const libs = ['-ltorch', '-ltorch_cpu', '-lc10'];
const have = new Set(readdirSync(t.libdir));
let cuda = false;
for (const l of ['torch_cuda', 'c10_cuda'])
  if (have.has(`lib${l}.so`)) {
    libs.push(`-l${l}`);
    cuda = true;
  }
const env = {
  ...process.env,
  SF_TORCH_INCLUDES: t.includes.join(' '),
  SF_TORCH_LIBDIR: t.libdir,
  SF_TORCH_LIBS: libs.join(' '),
  SF_TORCH_CXX11_ABI: cxx11Abi(t),
};

let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root, process.cwd()] });
} catch {
  fail('node-gyp not found: run `npm install` in the repository root');
}
// Use local Node headers when they exist (no download): <prefix>/include/node next to the running node
const nodedirs = [resolve(dirname(process.execPath), '..'), '/usr'];
const nodedir =
  process.env.npm_config_nodedir ||
  nodedirs.find((d) => existsSync(join(d, 'include', 'node', 'node_api.h')));
const gypArgs = nodedir ? [`--nodedir=${nodedir}`] : [];

const stampFile = join(root, 'build', 'sliceform-config.json');
// binding.gyp is part of the stamp: a changed source list must regenerate the Makefile
const gypFile = readFileSync(join(root, 'binding.gyp'), 'utf8');
const stamp = JSON.stringify({ ...t, libs, abi: env.SF_TORCH_CXX11_ABI, nodedir, gypFile });
const configured =
  existsSync(join(root, 'build', 'Makefile')) &&
  existsSync(stampFile) &&
  readFileSync(stampFile, 'utf8') === stamp;

function run(cmdArgs) {
  const r = spawnSync(process.execPath, [gyp, ...cmdArgs, ...gypArgs], { cwd: root, env, stdio: 'inherit' });
  if (r.status !== 0) fail(`node-gyp ${cmdArgs[0]} failed (exit ${r.status}); see the compiler output above`);
}

console.error(
  `build:addon: libtorch ${t.root} (lib ${t.libdir}, CXX11 ABI ${env.SF_TORCH_CXX11_ABI}${cuda ? ', CUDA' : ''})`,
);
if (force || !configured) {
  run(['configure']);
  mkdirSync(join(root, 'build'), { recursive: true });
  writeFileSync(stampFile, stamp);
}
run(['build', '--jobs', jobs]);
console.error(`build:addon: ok -> ${join(root, 'build', 'Release', 'sliceform_native.node')}`);
