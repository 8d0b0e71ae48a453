import { registerCommand } from './commands.js';

// One line per command; modules load lazily. Keep sorted by name.
registerCommand('info', 'print a volume file\'s format, shape, dtype and spacing as JSON', async () => (await import('./commands/info.js')).default);
registerCommand('model-info', 'print a network configuration\'s parameter count and tile shapes as JSON', async () => (await import('./commands/model-info.js')).default);
registerCommand('serve', 'run the web shell (UI + API over HTTP/WebSocket, loopback, token)', async () => (await import('./commands/serve.js')).default);
export {};
void registerCommand;
