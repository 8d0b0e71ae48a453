#!/usr/bin/env node
/**
 * `npm run package [-- --electron-dist DIR] [--targets dir,tar.gz,deb] [--out DIR]`
 *
 * Packages the desktop app with electron-builder from a LOCAL Electron distribution (the unpacked
 * electron-vX-linux-x64.zip: a folder with the `electron` executable); nothing is downloaded.
 * - linux `dir` (default) and `tar.gz` via electron-builder, `deb` via electron-installer-debian
 * - mac `dmg` and win `nsis` are configured (run on those systems with their Electron dist)
 * - the native addon and the libtorch libraries it links go to resources/native (extraResources);
 *   electron/main.ts points the compute utility process at them (SLICEFORM_NATIVE, LD_LIBRARY_PATH)
 * Exit codes: 0 ok, 1 build failure, 2 missing input (says what is needed).
 */
import { existsSync, readFileSync, statSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import process from 'node:process';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

function fail(code, msg) {
  process.stderr.write(`package: ${msg}\n`);
  process.exit(code);
}

const { values } = parseArgs({
  options: {
    'electron-dist': { type: 'string' },
    targets: { type: 'string' },
    out: { type: 'string' },
    platform: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(
    [
      'Usage: npm run package -- [--electron-dist DIR] [--targets dir,tar.gz,deb] [--out DIR] [--platform linux|mac|win]',
      '',
      '  --electron-dist DIR  unpacked Electron distribution (or env ELECTRON_DIST); required',
      `                       (Electron ${readElectronVersion() ?? '?'} for ${process.platform}-${process.arch}: the folder containing the electron executable)`,
      '  --targets LIST       linux: dir (default), tar.gz, deb; mac: dmg, dir; win: nsis, dir',
      '  --out DIR            output folder (default dist-app/)',
      '',
    ].join('\n'),
  );
  process.exit(0);
}

function readElectronVersion() {
  try {
    return JSON.parse(readFileSync(join(ROOT, 'node_modules', 'electron', 'package.json'), 'utf8')).version;
  } catch {
    return null;
  }
}

const platform = values.platform ?? { linux: 'linux', darwin: 'mac', win32: 'win' }[process.platform];
const targets = (values.targets ?? (platform === 'linux' ? 'dir' : platform === 'mac' ? 'dmg' : 'nsis')).split(',').map((s) => s.trim()).filter(Boolean);
const out = resolve(values.out ?? join(ROOT, 'dist-app'));
const electronVersion = readElectronVersion();
const electronDist = values['electron-dist'] ?? process.env.ELECTRON_DIST;

if (!electronDist) {
  fail(
    2,
    [
      'no Electron distribution given.',
      `  Packaging needs an unpacked Electron ${electronVersion ?? ''} for ${process.platform}-${process.arch} (electron-v${electronVersion}-${process.platform}-${process.arch}.zip from`,
      '  https://github.com/electron/electron/releases, unzipped), because the Electron binary is not downloaded here',
      '  (ELECTRON_SKIP_BINARY_DOWNLOAD). Then run:',
      '    ELECTRON_DIST=/path/to/electron-dist npm run package',
      '  or: npm run package -- --electron-dist /path/to/electron-dist [--targets dir,tar.gz,deb]',
    ].join('\n'),
  );
}
const distDir = resolve(electronDist);
const exe = platform === 'linux' ? 'electron' : platform === 'win' ? 'electron.exe' : 'Electron.app';
if (!existsSync(distDir) || !statSync(distDir).isDirectory()) fail(2, `${distDir}: Electron distribution folder does not exist`);
if (!existsSync(join(distDir, exe))) fail(2, `${distDir}: not an Electron distribution for ${platform} (no ${exe} inside)`);
const distVersionFile = join(distDir, 'version');
if (existsSync(distVersionFile)) {
  const v = readFileSync(distVersionFile, 'utf8').trim().replace(/^v/, '');
  if (electronVersion && v !== electronVersion) process.stderr.write(`package: warning: ${distDir} is Electron ${v}, node_modules/electron is ${electronVersion}\n`);
}

// the app must be built first
for (const f of ['dist/electron/main.js', 'dist/electron/preload.cjs', 'dist/main/services/compute-entry.js', 'dist/renderer/index.html']) {
  if (!existsSync(join(ROOT, f))) fail(2, `${f} missing: run \`npm run build\` first`);
}

// native addon + the libtorch libraries it links (Debian libtorch or $LIBTORCH)
const extraResources = [];
const addon = join(ROOT, 'native-models', 'build', 'Release', 'sliceform_native.node');
if (existsSync(addon)) {
  extraResources.push({ from: addon, to: 'native/sliceform_native.node' });
  if (platform === 'linux') {
    let libs = [];
    try {
      const ldd = execFileSync('ldd', [addon], { encoding: 'utf8' });
      libs = [...ldd.matchAll(/^\s*(lib(?:torch|c10|gomp|shm)[^\s]*) => (\S+)/gm)].map((m) => m[2]);
    } catch {
      process.stderr.write('package: warning: ldd failed; libtorch libraries not bundled\n');
    }
    for (const l of libs) extraResources.push({ from: l, to: `native/lib/${l.split('/').pop()}` });
    process.stderr.write(`package: bundling the native addon and ${libs.length} libtorch libraries\n`);
  }
} else {
  process.stderr.write('package: warning: native addon not built (npm run build:addon); the app will use the TF.js engine\n');
}

const desktop = {};
for (const line of readFileSync(join(ROOT, 'resources', 'linux', 'sliceform.desktop'), 'utf8').split('\n')) {
  const m = /^([A-Za-z]+)=(.*)$/.exec(line);
  if (m && !['Exec', 'Icon', 'Type', 'Name', 'Terminal'].includes(m[1])) desktop[m[1]] = m[2];
}

const config = {
  appId: 'org.sliceform.app',
  productName: 'Sliceform',
  executableName: 'sliceform',
  copyright: 'MIT License',
  electronVersion,
  electronDist: distDir,
  directories: { output: out, buildResources: 'resources' },
  files: [
    'package.json',
    'dist/main/**/*.js',
    'dist/electron/**/*',
    '!dist/electron/**/*.map',
    'dist/renderer/**/*',
    'native-models/lib/index.js',
    'resources/samples/**/*',
    'resources/icons/sliceform.png',
    '!**/*.map',
  ],
  extraResources,
  asar: true,
  npmRebuild: false,
  nodeGypRebuild: false,
  buildDependenciesFromSource: false,
  publish: null,
  linux: {
    target: targets.filter((t) => t !== 'deb'),
    category: 'Science',
    icon: 'resources/icons',
    synopsis: 'Sparse-annotation 3D U-Net segmentation for microscopy stacks',
    desktop: { entry: desktop },
    maintainer: 'Sliceform developers',
  },
  mac: { target: ['dmg'], category: 'public.app-category.medical', icon: 'resources/icons/512x512.png' },
  dmg: { title: 'Sliceform' },
  win: { target: ['nsis'], icon: 'resources/icons/256x256.png' },
  nsis: { oneClick: false, allowToChangeInstallationDirectory: true },
};

if (!process.env.ELECTRON_BUILDER_7ZIP_PATH && existsSync('/usr/bin/7zz')) process.env.ELECTRON_BUILDER_7ZIP_PATH = '/usr/bin/7zz';
process.env.ELECTRON_SKIP_BINARY_DOWNLOAD = '1';

const { build, Platform } = await import('electron-builder');
const plat = platform === 'linux' ? Platform.LINUX : platform === 'mac' ? Platform.MAC : Platform.WINDOWS;
const builderTargets = platform === 'linux' ? config.linux.target : targets;
const needDir = targets.includes('deb') && !builderTargets.includes('dir');
const runTargets = needDir ? [...builderTargets, 'dir'] : builderTargets;
if (platform === 'linux') config.linux.target = runTargets;
if (platform === 'mac') config.mac.target = runTargets;
if (platform === 'win') config.win.target = runTargets;

try {
  const t0 = Date.now();
  const artifacts = await build({ targets: plat.createTarget(runTargets), config, projectDir: ROOT, publish: 'never' });
  const unpacked = join(out, platform === 'linux' ? 'linux-unpacked' : platform === 'win' ? 'win-unpacked' : 'mac');
  if (targets.includes('deb')) {
    let installer;
    try {
      installer = (await import('electron-installer-debian')).default;
    } catch {
      fail(2, 'deb needs the electron-installer-debian package (npm install --save-dev electron-installer-debian) and dpkg-deb + fakeroot');
    }
    const arch = process.arch === 'x64' ? 'amd64' : process.arch;
    await installer({
      src: unpacked,
      dest: out,
      arch,
      name: 'sliceform',
      productName: 'Sliceform',
      bin: 'sliceform',
      icon: join(ROOT, 'resources', 'icons', '512x512.png'),
      categories: ['Science', 'Biology'],
      section: 'science',
      depends: ['libgtk-3-0', 'libnss3', 'libxss1', 'libasound2', 'libgbm1'],
      description: pkg.description,
      productDescription: 'Paint a few slices of a confocal stack, train a 3D U-Net on them, and get the whole stack segmented.',
      maintainer: 'Sliceform developers <sliceform@users.noreply.github.com>',
      version: pkg.version,
      revision: '1',
      license: pkg.license,
    });
    artifacts.push(join(out, `sliceform_${pkg.version}-1_${arch}.deb`));
  }
  const listing = existsSync(unpacked) ? readdirSync(unpacked) : [];
  process.stdout.write(JSON.stringify({ ok: true, seconds: (Date.now() - t0) / 1000, out, unpacked: existsSync(unpacked) ? unpacked : null, files: listing, artifacts }, null, 2) + '\n');
} catch (e) {
  fail(1, `electron-builder failed: ${e?.message ?? e}`);
}

