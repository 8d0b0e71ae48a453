import { registerCommand } from './commands.js';

// One line per command; modules load lazily. Keep sorted by name.
registerCommand('crossval', "the paper's protocols: k-fold slice cross-validation, slice curve, leave-one-volume-out (3D or 2D)", async () => (await import('./commands/crossval.js')).default);
registerCommand('densify', 'train on sparse slices of one stack and write its dense segmentation', async () => (await import('./commands/densify.js')).default);
registerCommand('evaluate', 'score a segmentation against labels: per-class IoU, mean IoU, Dice (JSON)', async () => (await import('./commands/evaluate.js')).default);
registerCommand('info', 'print a volume file\'s format, shape, dtype and spacing as JSON', async () => (await import('./commands/info.js')).default);
registerCommand('make-sparse', 'make sparse labels (K slices per axis) from a dense ground truth', async () => (await import('./commands/make-sparse.js')).default);
registerCommand('model-info', 'print a network configuration\'s parameter count and tile shapes as JSON', async () => (await import('./commands/model-info.js')).default);
registerCommand('objects', 'instances (components + watershed split) and a per-object table in µm (CSV/JSON)', async () => (await import('./commands/objects.js')).default);
registerCommand('report', 'merge batch segmentation reports of several shards into one report.json/csv', async () => (await import('./commands/report.js')).default);
registerCommand('segment', 'segment a stack with a trained model folder', async () => (await import('./commands/segment.js')).default);
registerCommand('serve', 'run the web shell (UI + API over HTTP/WebSocket, loopback, token)', async () => (await import('./commands/serve.js')).default);
registerCommand('system', 'show which network engine (native libtorch or TF.js) loads here, its backend, devices and threads', async () => (await import('./commands/system.js')).default);
registerCommand('train', 'train a model on sparsely labelled stacks and save it as a model folder', async () => (await import('./commands/train.js')).default);
export {};
void registerCommand;
