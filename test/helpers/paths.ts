import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root. */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Real public microscopy data laid beside the checkout (see ../shared/data/README.md). */
export const SHARED_DATA = resolve(REPO, '..', 'shared', 'data');
export const dataFile = (...p: string[]) => join(SHARED_DATA, ...p);
/** Where tests keep screenshots and other artefacts (git-ignored). */
export const ARTIFACTS = join(REPO, 'test-artifacts');
/** Debian's python3 (tifffile, numpy, torch); the pyenv python3 on PATH lacks them. */
export const DEBIAN_PYTHON = '/usr/bin/python3';
