/**
 * Training (start/stop, preset, minutes/iterations, progress with ETA, live loss plot, held-out IoU), densify
 * (the dense result replaces the overlay; painting on top adds corrections to the sparse annotation) and the
 * batch panel (model + folder, per-file progress, report). Jobs run in the compute process; the UI only
 * listens to progress events, so it never blocks while training runs.
 */
import { PRESETS } from '../../../main/common/engine.js';
import type { BatchResult, DensifyResult, JobInfo, ModelInfo, ProjectEvent, TrainProgress, TrainResult, TrainSettings } from '../../../main/common/api.js';
import type { App } from '../app.js';
import { button, el } from '../dom.js';

export function trainingPanel(app: App): HTMLElement {
  const st = app.store;
  const preset = el('select', { testid: 'train-preset' }, ...Object.keys(PRESETS).map((p) => el('option', { value: p, selected: p === 'desktop' }, p)));
  const minutes = el('input', { type: 'number', min: 0.05, step: 0.5, value: 5, testid: 'train-minutes', title: 'stop after this many minutes' });
  const iterations = el('input', { type: 'number', min: 1, step: 50, value: '', placeholder: 'no limit', testid: 'train-iterations', title: '…or this many iterations' });
  const bar = el('progress', { max: 1, value: 0, testid: 'train-progress' });
  const eta = el('span', { class: 'eta', testid: 'train-eta' }, '');
  const iou = el('span', { class: 'iou', testid: 'train-iou' }, '');
  const statusLine = el('div', { class: 'job-status', testid: 'train-status' }, 'Paint a few slices with at least two classes, then train.');
  const plot = el('canvas', { width: 260, height: 90, class: 'loss-plot', testid: 'train-loss-plot' });
  const densifyStatus = el('div', { class: 'job-status', testid: 'densify-status' }, '');
  let jobId: string | null = null;
  let densifyJob: string | null = null;
  const losses: number[] = [];

  const start = button('Train', 'train-start', () => void startTraining(), 'train a 3D U-Net on your annotation');
  const stop = button('Stop', 'train-stop', () => {
    if (jobId) void app.api.stopTraining({ jobId }).catch((e) => app.error(e, 'Stopping training'));
  }, 'stop and keep the model trained so far');
  const densifyBtn = button('Densify', 'densify', () => void densify(), 'segment the whole stack with the latest model');
  stop.disabled = true;

  // the project keeps the last training settings: show them when a project opens (or the page reloads), and
  // keep them when they are edited, so a saved project reopens with the same preset and time budget
  let applying = false;
  const applyTraining = (t: TrainSettings | undefined) => {
    if (!t) return;
    applying = true;
    if (t.preset && t.preset in PRESETS) preset.value = t.preset;
    minutes.value = t.minutes !== undefined && t.minutes > 0 ? String(t.minutes) : '';
    iterations.value = t.iterations !== undefined && t.iterations > 0 ? String(t.iterations) : '';
    applying = false;
  };
  const currentTraining = (): TrainSettings => {
    const mins = Number(minutes.value);
    const its = Number(iterations.value);
    return { preset: preset.value as keyof typeof PRESETS, minutes: mins > 0 ? mins : undefined, iterations: its > 0 ? Math.round(its) : undefined };
  };
  const keepTraining = () => {
    if (applying) return;
    void app.api.updateSettings({ settings: { training: currentTraining() } }).catch((e) => app.error(e, 'Saving the training settings'));
  };
  for (const input of [preset, minutes, iterations]) input.addEventListener('change', keepTraining);
  app.api.onProject((e: ProjectEvent) => {
    if (e.kind === 'opened') applyTraining(e.project.settings.training);
  });
  void app.api
    .getProject()
    .then((p) => applyTraining(p.settings.training))
    .catch(() => {});

  const setRunning = (on: boolean) => {
    start.disabled = on;
    stop.disabled = !on;
    preset.disabled = on;
  };

  async function startTraining() {
    const vol = st.volume;
    if (!vol) return app.store.status('Open a stack and paint some labels before training.', 'error');
    losses.length = 0;
    drawLoss(plot, losses);
    plot.dataset.points = '0';
    eta.textContent = '';
    iou.textContent = '';
    bar.value = 0;
    root.dataset.state = 'starting';
    const mins = Number(minutes.value);
    const its = Number(iterations.value);
    try {
      await app.annotator.idle();
      setRunning(true);
      statusLine.textContent = 'Starting…';
      const ref = await app.api.startTraining({
        volumeIds: [vol.id],
        preset: preset.value as keyof typeof PRESETS,
        minutes: mins > 0 ? mins : undefined,
        iterations: its > 0 ? Math.round(its) : undefined,
      });
      jobId = ref.jobId;
      root.dataset.jobId = jobId;
      root.dataset.state = 'running';
    } catch (e) {
      setRunning(false);
      statusLine.textContent = '';
      root.dataset.state = 'failed';
      app.error(e, 'Starting training');
    }
  }

  /** densify waits for the running training (its model, or the model so far after Stop) */
  let densifyAfterTraining = false;
  /** the model the running densify uses, to say so in its result */
  let densifyModel: ModelInfo | undefined;
  const densifyChoice = el('div', { class: 'row densify-choice', testid: 'densify-choice', hidden: true });

  const runningTraining = async (): Promise<JobInfo | undefined> => {
    const jobs = await app.api.listJobs().catch(() => [] as JobInfo[]);
    return jobs.find((j) => j.kind === 'train' && (j.state === 'running' || j.state === 'queued'));
  };

  /**
   * Densify pressed while a training runs: never queue it silently behind the training with an older model.
   * Offer the model so far (stop the training, keep its model, densify with it), waiting for the training to
   * finish, or, when there is one, the previous model now — and say which model each choice uses.
   */
  async function densify() {
    const vol = st.volume;
    if (!vol) return;
    densifyChoice.hidden = true;
    const training = await runningTraining();
    if (!training) return densifyNow();
    const models = await app.api.listModels().catch(() => [] as ModelInfo[]);
    const prev = models[models.length - 1];
    const choice = (label: string, testid: string, title: string, f: () => void) =>
      button(label, testid, () => {
        densifyChoice.hidden = true;
        f();
      }, title);
    densifyChoice.replaceChildren(
      choice('Stop training, densify with the model so far', 'densify-stop-and-run', 'stops the training (its model is kept) and densifies with it', () => {
        densifyAfterTraining = true;
        densifyStatus.textContent = 'Stopping the training; densify starts with its model as soon as it is saved…';
        void app.api.stopTraining({ jobId: training.id }).catch((e) => app.error(e, 'Stopping training'));
      }),
      choice('Densify when the training ends', 'densify-after-training', 'densify with the model this training produces', () => {
        densifyAfterTraining = true;
        densifyStatus.textContent = 'Densify will start when the training ends, with the model it produces.';
      }),
      ...(prev ? [choice(`Densify now with the previous ${modelLabel(prev)}`, 'densify-previous', 'ignores the training that is running', () => void densifyNow(prev))] : []),
    );
    densifyChoice.hidden = false;
    densifyStatus.textContent = prev
      ? `A training is running. Densify now would use the previous ${modelLabel(prev)}, not the one being trained. Choose:`
      : 'A training is running and there is no finished model yet. Choose:';
  }

  async function densifyNow(model?: ModelInfo) {
    const vol = st.volume;
    if (!vol) return;
    try {
      await app.annotator.idle();
      densifyBtn.disabled = true;
      const models = model ? [model] : await app.api.listModels().catch(() => [] as ModelInfo[]);
      densifyModel = models[models.length - 1];
      densifyStatus.textContent = densifyModel ? `Densifying with ${modelLabel(densifyModel)}…` : 'Densifying…';
      const ref = await app.api.densify({ volumeId: vol.id, modelId: densifyModel?.id });
      densifyJob = ref.jobId;
    } catch (e) {
      densifyBtn.disabled = false;
      densifyStatus.textContent = '';
      app.error(e, 'Densify');
    }
  }

  app.api.onTrainProgress((p: TrainProgress) => {
    if (p.jobId !== jobId) return;
    bar.value = p.fraction;
    eta.textContent = p.etaSeconds !== undefined ? `ETA ${fmtSeconds(p.etaSeconds)}` : '';
    if (Number.isFinite(p.loss)) losses.push(p.loss);
    drawLoss(plot, losses);
    plot.dataset.points = String(losses.length);
    if (p.heldOutIoU !== undefined) iou.textContent = `held-out IoU ${p.heldOutIoU.toFixed(3)}`;
    statusLine.textContent = `iteration ${p.iteration}${p.totalIterations ? ` / ${p.totalIterations}` : ''} · loss ${p.loss.toFixed(4)} · ${Math.round(p.voxelsPerSecond).toLocaleString()} voxels/s`;
  });

  app.api.onJob((job: JobInfo) => {
    if (job.kind === 'train' && densifyAfterTraining && job.id !== jobId && (job.state === 'done' || job.state === 'failed' || job.state === 'cancelled')) {
      // a training started elsewhere (another window, before a reload) ended
      densifyAfterTraining = false;
      if (job.state === 'done') void densifyNow((job.result as TrainResult | undefined)?.model);
      else densifyStatus.textContent = 'The training did not finish, so there is no new model: densify was not started.';
    }
    if (job.id === jobId) {
      if (job.state === 'running' || job.state === 'queued') {
        bar.value = job.progress.fraction;
        if (job.progress.etaSeconds !== undefined) eta.textContent = `ETA ${fmtSeconds(job.progress.etaSeconds)}`;
        return;
      }
      setRunning(false);
      root.dataset.state = job.state;
      if (job.state !== 'done' && densifyAfterTraining) {
        densifyAfterTraining = false;
        densifyStatus.textContent = 'The training did not finish, so there is no new model: densify was not started.';
      }
      if (job.state === 'done') {
        const r = job.result as TrainResult | undefined;
        bar.value = 1;
        eta.textContent = '';
        statusLine.textContent = r
          ? `Trained ${r.iterations} iterations in ${fmtSeconds(r.seconds)}, final loss ${r.finalLoss.toFixed(4)}. Press Densify.`
          : 'Training finished.';
        if (r?.heldOutIoU !== undefined) iou.textContent = `held-out IoU ${r.heldOutIoU.toFixed(3)}`;
        app.emitModelsChanged();
        if (densifyAfterTraining) {
          densifyAfterTraining = false;
          void densifyNow(r?.model);
        }
      } else if (job.state === 'cancelled') statusLine.textContent = 'Training stopped.';
      else {
        statusLine.textContent = '';
        app.error(Object.assign(new Error(job.error?.message ?? 'unknown error'), { code: job.error?.code }), 'Training');
      }
    } else if (job.id === densifyJob) {
      if (job.state === 'running' || job.state === 'queued') {
        densifyStatus.textContent = `Densifying… ${Math.round(job.progress.fraction * 100)} %`;
        return;
      }
      densifyBtn.disabled = false;
      densifyJob = null;
      if (job.state === 'done') {
        const r = job.result as DensifyResult | undefined;
        const m = r?.model ?? (densifyModel && (!r || r.modelId === densifyModel.id) ? densifyModel : undefined);
        densifyStatus.textContent = `Done${m ? ` with ${modelLabel(m)}` : r ? ` with model ${r.modelId}` : ''}: the overlay shows the result. Paint over mistakes to add corrections, then train again.`;
        if (r) densifyStatus.dataset.modelId = r.modelId;
        st.showPrediction = true;
        void app.refreshLayer('prediction').then(() => st.emit('overlay', undefined));
      } else if (job.state === 'cancelled') densifyStatus.textContent = 'Densify stopped.';
      else {
        densifyStatus.textContent = '';
        app.error(Object.assign(new Error(job.error?.message ?? 'unknown error'), { code: job.error?.code }), 'Densify');
      }
    }
  });

  const root = el(
    'details',
    { class: 'panel', open: true, testid: 'training-panel' },
    el('summary', {}, 'Train & densify'),
    el(
      'div',
      { class: 'panel-body' },
      el('label', { class: 'row' }, 'preset ', preset),
      el('label', { class: 'row' }, 'minutes ', minutes),
      el('label', { class: 'row' }, 'iterations ', iterations),
      el('div', { class: 'row' }, start, stop),
      el('div', { class: 'row' }, bar, eta),
      plot,
      iou,
      statusLine,
      el('div', { class: 'row' }, densifyBtn),
      densifyStatus,
      densifyChoice,
    ),
  );
  return root;
}

/** "model desktop 10:31:02 (540 iterations, trained 10:31)" */
export function modelLabel(m: ModelInfo): string {
  const at = new Date(m.createdAt);
  const when = Number.isNaN(at.getTime()) ? m.createdAt : at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return `model "${m.name}" (${m.iterations} iterations, trained ${when})`;
}

function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Loss on a log axis (it falls over orders of magnitude), newest on the right. */
export function drawLoss(canvas: HTMLCanvasElement, losses: number[]): void {
  const g = canvas.getContext('2d');
  if (!g) return;
  const { width: w, height: h } = canvas;
  g.clearRect(0, 0, w, h);
  g.fillStyle = '#14161c';
  g.fillRect(0, 0, w, h);
  if (losses.length < 1) return;
  const ls = losses.map((l) => Math.log10(Math.max(l, 1e-6)));
  const lo = Math.min(...ls);
  const hi = Math.max(...ls);
  const span = hi - lo || 1;
  g.strokeStyle = '#f97316';
  g.lineWidth = 1.5;
  g.beginPath();
  ls.forEach((l, i) => {
    const x = ls.length === 1 ? w / 2 : (i / (ls.length - 1)) * (w - 8) + 4;
    const y = h - 6 - ((l - lo) / span) * (h - 12);
    if (i === 0) g.moveTo(x, y);
    else g.lineTo(x, y);
  });
  g.stroke();
  g.fillStyle = '#9aa3b2';
  g.font = '10px sans-serif';
  g.fillText(`loss ${losses[losses.length - 1].toPrecision(3)}`, 6, 12);
}

export function batchPanel(app: App): HTMLElement {
  const model = el('select', { testid: 'batch-model' });
  const input = el('input', { type: 'text', placeholder: '/path/to/input folder', testid: 'batch-input' });
  const output = el('input', { type: 'text', placeholder: '/path/to/output folder', testid: 'batch-output' });
  const format = el('select', { testid: 'batch-format' }, el('option', { value: 'tiff' }, 'TIFF'), el('option', { value: 'ome-tiff' }, 'OME-TIFF'));
  const files = el('ol', { class: 'batch-files', testid: 'batch-files' });
  const bar = el('progress', { max: 1, value: 0, testid: 'batch-progress' });
  const report = el('div', { class: 'job-status', testid: 'batch-report' });
  let jobId: string | null = null;

  const refreshModels = async () => {
    try {
      const models: ModelInfo[] = await app.api.listModels();
      model.replaceChildren(
        ...models.map((m) => el('option', { value: m.id }, `${m.name} (${m.preset}, ${m.iterations} it${m.heldOutIoU !== undefined ? `, IoU ${m.heldOutIoU.toFixed(2)}` : ''})`)),
      );
      if (!models.length) model.append(el('option', { value: '' }, 'no trained model yet'));
    } catch (e) {
      app.error(e, 'Listing models');
    }
  };
  app.onModelsChanged.push(() => void refreshModels());

  const run = button('Run batch', 'batch-run', async () => {
    if (!model.value) return app.store.status('Train a model first (or open a project that has one).', 'error');
    if (!input.value.trim() || !output.value.trim()) return app.store.status('Choose an input and an output folder.', 'error');
    files.replaceChildren();
    report.textContent = 'Running…';
    try {
      const ref = await app.api.startBatch({ modelId: model.value, inputDir: input.value.trim(), outputDir: output.value.trim(), format: format.value as 'tiff' | 'ome-tiff' });
      jobId = ref.jobId;
    } catch (e) {
      report.textContent = '';
      app.error(e, 'Starting the batch');
    }
  });
  const cancel = button('Cancel', 'batch-cancel', () => {
    if (jobId) void app.api.cancelJob({ jobId }).catch((e) => app.error(e, 'Cancelling the batch'));
  });
  const browse = (target: HTMLInputElement, what: string) =>
    button('…', `batch-browse-${what}`, async () => {
      const p = await app.api.showDialog({ kind: 'pick-folder', title: `Choose the ${what} folder` }).catch(() => null);
      if (p) target.value = p;
    });

  app.api.onJob((job) => {
    if (job.id !== jobId) return;
    bar.value = job.progress.fraction;
    const d = job.progress.details ?? {};
    if (job.state === 'running') {
      report.textContent = `${job.progress.message ?? job.progress.stage ?? 'working'}${d.file ? `: ${d.file}` : ''}${job.progress.etaSeconds !== undefined ? ` · ETA ${fmtSeconds(job.progress.etaSeconds)}` : ''}`;
      return;
    }
    if (job.state === 'done') {
      const r = job.result as BatchResult | undefined;
      files.replaceChildren(
        ...(r?.files ?? []).map((f) =>
          el('li', { class: f.ok ? 'ok' : 'failed' }, `${f.ok ? '✓' : '✗'} ${f.input}${f.output ? ` → ${f.output}` : ''}${f.error ? ` — ${f.error}` : ''} (${f.seconds.toFixed(1)} s)`),
        ),
      );
      const failed = (r?.files ?? []).filter((f) => !f.ok).length;
      report.textContent = r ? `${r.files.length - failed} of ${r.files.length} files segmented. Report: ${r.report}` : 'Done.';
    } else if (job.state === 'cancelled') report.textContent = 'Batch cancelled.';
    else report.textContent = `Batch failed: ${job.error?.message ?? 'unknown error'}`;
  });

  const root = el(
    'details',
    { class: 'panel', testid: 'batch-panel' },
    el('summary', {}, 'Batch'),
    el(
      'div',
      { class: 'panel-body' },
      el('label', { class: 'row' }, 'model ', model),
      el('label', { class: 'row' }, 'input ', input, browse(input, 'input')),
      el('label', { class: 'row' }, 'output ', output, browse(output, 'output')),
      el('label', { class: 'row' }, 'format ', format),
      el('div', { class: 'row' }, run, cancel),
      bar,
      files,
      report,
    ),
  );
  root.addEventListener('toggle', () => {
    if ((root as HTMLDetailsElement).open) void refreshModels();
  });
  return root;
}
