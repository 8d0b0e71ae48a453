import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { homedir } from 'node:os';
import type { Command } from '../command.js';
import { numOpt, strOpt } from '../command.js';
import { SliceformError } from '../../common/errors.js';
import { ApiError } from '../../common/api.js';

/** dist/renderer next to the compiled CLI (dist/main/cli/commands) or, from sources, in the repo's dist/. */
function defaultRendererDir(): string {
  const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));
  for (const c of [here('../../../dist/renderer'), here('../../../renderer')])
    if (existsSync(resolve(c, 'index.html'))) return c;
  return here('../../../dist/renderer');
}

const serve: Command = {
  name: 'serve',
  summary: 'run the web shell: the Sliceform UI and API over HTTP + WebSocket (loopback, token-protected)',
  usage: [
    'Usage: sliceform serve [--port P] [--host 127.0.0.1] [--allow-remote] [--project DIR] [--renderer DIR]',
    '',
    'Serves the renderer and the API on http://HOST:PORT/ and prints the URL with its session token.',
    'Every request needs the token. Stop with Ctrl+C.',
    '',
    '  --port P        port (default 0 = a free port)',
    '  --host H        interface to bind (default 127.0.0.1)',
    '  --allow-remote  required to bind anything but loopback (remote mode: compute here, UI elsewhere)',
    '  --root DIR      remote mode: the only folder calls may read or write (repeat for several; default: the',
    '                  working folder). Opening, listing, exporting, saving outside them is refused.',
    '  --project DIR   open this project folder at start',
    '  --renderer DIR  built renderer folder (default dist/renderer)',
    '  --token T       use this token instead of a random one (tests; keep it secret)',
    '  --work-dir DIR  scratch folder for dropped files and unsaved models (default: a temp folder);',
    '                  a never-saved project is autosaved to DIR/recovery.sliceform',
    '                  (default ~/.local/state/sliceform/recovery.sliceform)',
  ].join('\n'),
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    'allow-remote': { type: 'boolean' },
    root: { type: 'string', multiple: true },
    project: { type: 'string' },
    renderer: { type: 'string' },
    token: { type: 'string' },
    'work-dir': { type: 'string' },
  },
  async run({ values }, io, signal) {
    const port = numOpt(values, 'port', 0)!;
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new SliceformError('bad-input', `--port must be 0..65535, got ${port}`);
    const host = strOpt(values, 'host') ?? '127.0.0.1';
    const allowRemote = Boolean(values['allow-remote']);
    const rendererDir = resolve(strOpt(values, 'renderer') ?? defaultRendererDir());
    const token = strOpt(values, 'token');
    if (token !== undefined && token.length < 16)
      throw new SliceformError('bad-input', '--token must be at least 16 characters');
    const { ApiService } = await import('../../services/api-service.js');
    const { startWebServer, isLoopbackHost } = await import('../../services/web-server.js');
    const rootArgs = (values.root as string[] | undefined) ?? [];
    if (rootArgs.length && !allowRemote)
      throw new SliceformError('bad-input', '--root confines a remote web shell: it needs --allow-remote');
    // remote mode: calls read and write only inside the --root folders (default: the working folder)
    const roots = allowRemote
      ? (rootArgs.length ? rootArgs : [process.cwd()]).map((r) => resolve(r))
      : undefined;
    if (allowRemote) {
      io.err(
        `WARNING: serving on ${host}${isLoopbackHost(host) ? '' : ', reachable from other machines'}. Anyone with the URL's token can read and write files as this user inside ${roots!.join(', ')} ` +
          `(${rootArgs.length ? '--root' : 'the working folder; choose others with --root DIR'}); paths outside are refused. Use it only on a trusted network, ideally through an SSH tunnel.`,
      );
    } else if (!isLoopbackHost(host)) {
      throw new SliceformError(
        'bad-input',
        `--host ${host} is not loopback: add --allow-remote to expose Sliceform on the network (anyone with the token can read and write files as you, inside the --root folders)`,
      );
    }
    if (!existsSync(resolve(rendererDir, 'index.html')))
      io.err(
        `warning: ${rendererDir}/index.html is missing (run npm run build): the API works, the UI will not load`,
      );
    const workDir = strOpt(values, 'work-dir');
    // a never-saved project is autosaved here (and offered back by getProject().recoveryPath)
    const stateHome = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
    const recoveryDir = workDir
      ? join(resolve(workDir), 'recovery.sliceform')
      : join(stateHome, 'sliceform', 'recovery.sliceform');
    const api = new ApiService({ shell: 'web', workDir, recoveryDir });
    let server;
    try {
      server = await startWebServer({ api, host, port, rendererDir, token, allowRemote, roots, ownDirs: [recoveryDir] });
    } catch (e) {
      await api.dispose();
      if (e instanceof ApiError) throw new SliceformError('bad-input', e.message);
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'EADDRINUSE')
        throw new SliceformError('bad-input', `port ${port} on ${host} is already in use`);
      if (err.code === 'EADDRNOTAVAIL')
        throw new SliceformError('bad-input', `cannot bind ${host}: no such local address`);
      throw e;
    }
    const project = strOpt(values, 'project');
    if (project) {
      try {
        await api.openProject({ path: project });
      } catch (e) {
        io.err(`warning: project ${project}: ${(e as Error).message}`);
      }
    }
    io.out(
      JSON.stringify({
        url: server.url,
        host: server.host,
        port: server.port,
        token: server.token,
        pid: process.pid,
        roots: server.roots,
      }),
    );
    io.err(`Sliceform web shell: ${server.url}`);
    await new Promise<void>((res) => {
      if (signal.aborted) return res();
      signal.addEventListener('abort', () => res(), { once: true });
      process.once('SIGTERM', () => res());
    });
    io.err('shutting down…');
    await api.autosaveNow().catch(() => false);
    await server.close();
    await api.dispose();
    return 0;
  },
};

export default serve;
