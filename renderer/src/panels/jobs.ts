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
import { drawLossPlot, progressText, type LossPoint } from '../render/loss-plot.js';
import { heldOutText } from '../render/held-out.js';
import { planeSliceLabel } from '../render/numbering.js';
import type { Plane } from '../render/composite.js';

/** localStorage key: 'off' when the user switched live training off */
const LIVE_KEY = 'sliceform.live';

/** "xz y 38" — a suggested slice as the user names it (Fiji's 1-based numbers) */
export function suggestionLabel(plane: Plane, index: number): string {
  return planeSliceLabel(plane, index);
}

export function trainingPanel(app: App): HTMLElement {
  const st = app.store;
  const preset = el('select', { testid: 'train-preset' }, ...Object.keys(PRESETS).map((p) => el('option', { value: p, selected: p === 'desktop' }, p)));
  const minutes = el('input', { type: 'number', min: 0.05, step: 0.5, value: 5, testid: 'train-minutes', title: 'stop after this many minutes' });
  const iterations = el('input', { type: 'number', min: 1, step: 50, value: '', placeholder: 'no limit', testid: 'train-iterations', title: '…or this many iterations' });
  const bar = el('progress', { max: 1, value: 0, testid: 'train-progress' });
  const eta = el('span', { class: 'eta', testid: 'train-eta' }, '');
  const iou = el('span', { class: 'iou', testid: 'train-iou' }, '');
  const statusLine = el('div', { class: 'job-status', testid: 'train-status' }, 'Paint a few slices with at least two classes: live training starts by itself (or press Train).');
  const plot = el('canvas', { width: 260, height: 96, class: 'loss-plot', testid: 'train-loss-plot', 'aria-label': 'training loss (log scale) against iteration' });
  const densifyStatus = el('div', { class: 'job-status', testid: 'densify-status' }, '');
  /** the timed training started with Train */
  let jobId: string | null = null;
  /** the live session (Live toggle / Continue / Start over) */
  let liveJobId: string | null = null;
  let densifyJob: string | null = null;
  const points: LossPoint[] = [];
  /** the newest progress of the training shown (timed or live), and the seen revisions of the last finished one */
  let lastProgress: TrainProgress | null = null;
  let lastSeen: Record<string, number> | undefined;
  /** a model exists for this volume (the live panel offers Continue only then) */
  let haveModel = false;
  let unseenShown = 0;
  /** the annotation revision when the running training started */
  let startRevision = 0;

  const start = button('Train', 'train-start', () => void startTraining(), 'train a 3D U-Net on your annotation for the minutes/iterations given (stops a live session first)');
  const stop = button('Stop', 'train-stop', () => {
    if (jobId) void app.api.stopTraining({ jobId }).catch((e) => app.error(e, 'Stopping training'));
  }, 'stop and keep the model trained so far');
  const densifyBtn = button('Densify', 'densify', () => void densify(), 'segment the whole stack with the latest model');
  stop.disabled = true;
  drawLossPlot(plot, points);

  // ------------------------------------------------------------------ live session controls
  const liveParam = new URLSearchParams(location.search).get('live');
  /** the user's choice: off when they switched Live off (kept in this browser), or the page was opened with ?live=off */
  let liveDeclined = liveParam === 'off' || localStorage.getItem(LIVE_KEY) === 'off';
  const liveToggle = el('input', { type: 'checkbox', testid: 'live-toggle', title: 'train while you paint: each stroke is learned within a step and the shown slices are predicted again' });
  const liveStop = button('Stop', 'live-stop', () => void stopLive(), 'pause the live session; the model learned so far is kept');
  const liveContinue = button('Continue', 'live-continue', () => void startLive(false), 'resume live training from the newest model (warm start)');
  const liveFresh = button('Start over', 'live-start-over', () => {
    if (window.confirm('Start over with a new, untrained model? The current model stays saved, but the live session forgets what it learned.')) void startLive(true);
  }, 'a new model from scratch (asks first)');
  const liveStatus = el('div', { class: 'job-status', testid: 'live-status' }, '');
  const unseen = el('div', { class: 'live-unseen', testid: 'live-unseen', role: 'status', hidden: true }, '');
  const previewToggle = el('input', { type: 'checkbox', testid: 'preview-toggle', checked: st.showPreview, title: 'show the live preview layer (P)' });
  previewToggle.addEventListener('change', () => app.setShowPreview(previewToggle.checked));
  st.on('overlay', () => (previewToggle.checked = st.showPreview));
  const suggestHost = el('ol', { class: 'suggest-list', testid: 'suggest-list' });
  const suggestNote = el('div', { class: 'hint', testid: 'suggest-note' }, 'Suggestions appear with the first preview or densify result.');

  const setLiveState = (s: 'off' | 'starting' | 'running' | 'stopping' | 'stopped') => {
    root.dataset.live = s;
    liveToggle.checked = s === 'starting' || s === 'running';
    liveStop.disabled = !(s === 'starting' || s === 'running');
    liveContinue.disabled = s === 'starting' || s === 'running' || s === 'stopping' || !!jobId;
    liveFresh.disabled = s === 'stopping' || !!jobId;
    liveContinue.hidden = !haveModel && s !== 'stopped';
    refreshUnseen();
  };

  /** two classes painted on the shown volume (the server's count) */
  let classesPainted = 0;
  let summaryAsking = false;
  let summaryAgain = false;
  const fetchSummary = async () => {
    if (summaryAsking) {
      summaryAgain = true;
      return;
    }
    summaryAsking = true;
    try {
      do {
        summaryAgain = false;
        const v = st.volume;
        if (!v) return;
        const s = await app.api.getAnnotationSummary({ volumeId: v.id }).catch(() => null);
        if (!s || st.volume !== v) continue;
        classesPainted = s.classVoxels.filter((n, id) => id > 0 && n > 0).length;
        if (typeof s.revision === 'number' && s.revision !== st.revision) {
          st.revision = s.revision;
          st.emit('revision', s.revision);
        }
      } while (summaryAgain);
    } finally {
      summaryAsking = false;
    }
    maybeAutoStart();
  };

  /** Live is on by default once two classes are painted, unless the user switched it off */
  const maybeAutoStart = () => {
    if (liveDeclined || liveJobId || jobId || !st.volume || classesPainted < 2 || root.dataset.live === 'starting' || root.dataset.live === 'stopping') return;
    if (root.dataset.live === 'stopped') return; // paused by Stop: Continue resumes
    void startLive(false);
  };

  liveToggle.addEventListener('change', () => {
    if (liveToggle.checked) {
      liveDeclined = false;
      localStorage.removeItem(LIVE_KEY);
      void startLive(false);
    } else {
      liveDeclined = true;
      localStorage.setItem(LIVE_KEY, 'off');
      void stopLive();
    }
  });

  async function startLive(fresh: boolean) {
    const vol = st.volume;
    if (!vol) return app.store.status('Open a stack and paint two classes first.', 'error');
    if (liveJobId || jobId) return;
    setLiveState('starting');
    liveStatus.textContent = fresh ? 'Starting over with a new model…' : 'Starting live training…';
    if (fresh) points.length = 0;
    drawLossPlot(plot, points, 'starting…');
    try {
      await app.annotator.idle();
      startRevision = st.revision;
      const ref = await app.api.startTraining({ volumeIds: [vol.id], preset: preset.value as keyof typeof PRESETS, live: true, fresh: fresh || undefined });
      liveJobId = ref.jobId;
      root.dataset.liveJobId = ref.jobId;
      setLiveState('running');
      statusLine.textContent = 'starting…';
    } catch (e) {
      liveJobId = null;
      liveDeclined = true; // do not retry on every stroke; the toggle turns it on again
      setLiveState('off');
      liveStatus.textContent = '';
      app.error(e, 'Starting live training');
    }
  }

  async function stopLive(): Promise<void> {
    const id = liveJobId;
    if (!id) {
      if (root.dataset.live === 'starting') setLiveState('stopped');
      return;
    }
    setLiveState('stopping');
    liveStatus.textContent = 'Stopping; the model learned so far is kept…';
    await app.api.stopTraining({ jobId: id }).catch((e) => app.error(e, 'Stopping live training'));
  }

  function refreshUnseen() {
    const v = st.volume;
    const live = root.dataset.live === 'running' || root.dataset.live === 'starting';
    // what the running training has used: its report, else what was painted when it started (a training
    // that does not report seenRevision may not use later paint: say so rather than assume it did)
    const seen = v ? (lastProgress?.seenRevision?.[v.id] ?? (live || jobId ? startRevision : lastSeen?.[v.id])) : undefined;
    const rev = st.revision;
    let text = '';
    if (v && rev > 0 && (live || jobId)) {
      if (seen !== undefined && rev > seen)
        text = `New paint not yet seen by the model (edit ${rev}; the model has used up to ${seen}).${live ? ' It is picked up within a step.' : ' This training may not use it: train again (or go Live) afterwards.'}`;
    } else if (v && rev > 0 && haveModel && lastSeen && (lastSeen[v.id] ?? 0) < rev)
      text = `Paint since the last training is not in the model yet (edit ${rev}, the model used ${lastSeen[v.id] ?? 0}): press Continue or Train.`;
    const was = !unseen.hidden;
    unseen.textContent = text;
    unseen.hidden = !text;
    root.dataset.unseen = text ? '1' : '0';
    if (text && !was) root.dataset.unseenShown = String(++unseenShown);
  }
  st.on('revision', () => refreshUnseen());
  st.on('painted', () => void fetchSummary());
  st.on('volume', () => {
    classesPainted = 0;
    lastProgress = null;
    lastSeen = undefined;
    points.length = 0;
    drawLossPlot(plot, points);
    void fetchSummary();
    void refreshModels();
  });
  const refreshModels = async () => {
    const models = await app.api.listModels().catch(() => [] as ModelInfo[]);
    haveModel = models.length > 0;
    setLiveState((root.dataset.live as 'off') ?? 'off');
  };
  app.onModelsChanged.push(() => void refreshModels());

  // ------------------------------------------------------------------ suggestions ("annotate here next")
  st.on('suggestions', () => {
    const s = app.preview.suggestions;
    suggestHost.replaceChildren();
    if (!s || !s.ranked.length) {
      suggestNote.textContent = s ? 'No suggestion: every uncertain slice is painted already.' : 'Suggestions appear with the first preview or densify result.';
      suggestHost.dataset.count = '0';
      return;
    }
    suggestNote.textContent = `Most uncertain slices (from the ${s.from === 'preview' ? `live preview${s.iteration !== undefined ? `, iteration ${s.iteration}` : ''}` : 'densify result'}); click to go there:`;
    s.ranked.forEach((r, i) => {
      const b = button(suggestionLabel(r.plane, r.index), 'suggest-item', () => app.goToSuggestion(i), `uncertainty ${r.score.toFixed(2)}: show this slice${i === 0 ? ' (G)' : ''}`);
      b.dataset.plane = r.plane;
      b.dataset.index = String(r.index);
      b.dataset.rank = String(i + 1);
      suggestHost.append(el('li', {}, b));
    });
    suggestHost.dataset.count = String(s.ranked.length);
  });

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
    setLiveState((root.dataset.live as 'off') ?? 'off');
  };

  async function startTraining() {
    const vol = st.volume;
    if (!vol) return app.store.status('Open a stack and paint some labels before training.', 'error');
    points.length = 0;
    drawLossPlot(plot, points, 'starting…');
    plot.dataset.points = '0';
    eta.textContent = '';
    iou.textContent = '';
    bar.value = 0;
    root.dataset.state = 'starting';
    const mins = Number(minutes.value);
    const its = Number(iterations.value);
    try {
      setRunning(true);
      statusLine.textContent = 'starting…';
      // a timed training replaces the live session: stop it (its model is kept) and wait until it has ended
      const live = liveJobId;
      if (live) {
        liveDeclined = true;
        await stopLive();
        await app.api.waitJob({ jobId: live, timeoutMs: 120_000 }).catch(() => null);
      }
      await app.annotator.idle();
      startRevision = st.revision;
      const ref = await app.api.startTraining({
        volumeIds: [vol.id],
        preset: preset.value as keyof typeof PRESETS,
        minutes: mins > 0 ? mins : undefined,
        iterations: its > 0 ? Math.round(its) : undefined,
      });
      jobId = ref.jobId;
      root.dataset.jobId = jobId;
      root.dataset.state = 'running';
      setRunning(true);
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
    if (training.id === liveJobId) {
      // a live session never ends by itself: pause it (its model is kept) and densify with that model
      densifyAfterTraining = true;
      densifyStatus.textContent = 'Pausing the live session; densify starts with its model as soon as it is saved…';
      return void stopLive();
    }
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
    if (p.jobId !== jobId && p.jobId !== liveJobId) return;
    lastProgress = p;
    bar.value = p.jobId === liveJobId ? 0 : p.fraction;
    eta.textContent = p.jobId !== liveJobId && p.etaSeconds !== undefined ? `ETA ${fmtSeconds(p.etaSeconds)}` : '';
    if (Number.isFinite(p.loss) && p.iteration > 0) {
      const last = points[points.length - 1];
      // a continued session counts on from its model; an iteration count that goes back starts a new curve
      if (last && p.iteration < last.iteration) points.length = 0;
      if (!last || p.iteration !== last.iteration) points.push({ iteration: p.iteration, loss: p.loss });
      if (points.length > 4000) points.splice(0, points.length - 4000);
    }
    drawLossPlot(plot, points, 'starting…');
    plot.dataset.points = String(points.length);
    if (p.heldOutIoU !== undefined || p.heldOutNote) iou.textContent = heldOutText({ heldOutIteration: p.heldOutIoU !== undefined ? p.iteration : undefined, ...p });
    statusLine.textContent = progressText(p);
    if (p.jobId === liveJobId) {
      const from = p.warmStartFrom
        ? `Continues ${p.warmStartFrom}${p.startIteration ? ` from iteration ${p.startIteration}` : ''}`
        : p.freshReason
          ? `New model (${p.freshReason})`
          : p.startIteration === 0
            ? 'New model'
            : '';
      liveStatus.textContent = `Live: the model learns each stroke; the slice views show its preview (outlined).${from ? ` ${from}.` : ''}`;
    }
    refreshUnseen();
  });

  app.api.onJob((job: JobInfo) => {
    if (job.kind === 'train' && densifyAfterTraining && job.id !== jobId && job.id !== liveJobId && (job.state === 'done' || job.state === 'failed' || job.state === 'cancelled')) {
      // a training started elsewhere (another window, before a reload) ended
      densifyAfterTraining = false;
      if (job.state === 'done') void densifyNow((job.result as TrainResult | undefined)?.model);
      else densifyStatus.textContent = 'The training did not finish, so there is no new model: densify was not started.';
    }
    if (job.id === liveJobId) {
      if (job.state === 'running' || job.state === 'queued') return;
      liveJobId = null;
      const r = job.result as TrainResult | undefined;
      lastSeen = r?.seenRevision ?? lastProgress?.seenRevision ?? (st.volume ? { [st.volume.id]: startRevision } : undefined);
      lastProgress = null;
      if (job.state === 'done' || job.state === 'cancelled') {
        if (r) {
          haveModel = true;
          app.emitModelsChanged();
        }
        liveStatus.textContent = r
          ? `Live session paused at iteration ${r.iterations} (loss ${r.finalLoss.toFixed(4)}); its model is saved. Continue resumes from it.`
          : 'Live session stopped.';
        statusLine.textContent = r ? `Trained ${r.iterations - (r.startIteration ?? 0)} iterations live (model at ${r.iterations}), final loss ${r.finalLoss.toFixed(4)}.` : 'Live session stopped.';
        if (r && (r.heldOutIoU !== undefined || r.heldOutNote)) iou.textContent = heldOutText(r);
      } else {
        liveStatus.textContent = '';
        app.error(Object.assign(new Error(job.error?.message ?? 'unknown error'), { code: job.error?.code }), 'Live training');
      }
      setLiveState(liveDeclined ? 'off' : 'stopped');
      if (densifyAfterTraining) {
        densifyAfterTraining = false;
        if (r) void densifyNow(r.model);
        else densifyStatus.textContent = 'The live session ended without a model: densify was not started.';
      }
      return;
    }
    if (job.id === jobId) {
      if (job.state === 'running' || job.state === 'queued') {
        bar.value = job.progress.fraction;
        if (job.progress.etaSeconds !== undefined) eta.textContent = `ETA ${fmtSeconds(job.progress.etaSeconds)}`;
        return;
      }
      jobId = null;
      const r = job.result as TrainResult | undefined;
      lastSeen = r?.seenRevision ?? lastProgress?.seenRevision ?? (st.volume ? { [st.volume.id]: startRevision } : undefined);
      lastProgress = null;
      setRunning(false);
      root.dataset.state = job.state;
      if (job.state !== 'done' && densifyAfterTraining) {
        densifyAfterTraining = false;
        densifyStatus.textContent = 'The training did not finish, so there is no new model: densify was not started.';
      }
      if (job.state === 'done') {
        bar.value = 1;
        eta.textContent = '';
        // the iterations of this training (a warm start counts on from its model)
        statusLine.textContent = r
          ? `Trained ${r.iterations - (r.startIteration ?? 0)} iterations in ${fmtSeconds(r.seconds)}${r.startIteration ? ` (model at ${r.iterations})` : ''}, final loss ${r.finalLoss.toFixed(4)}. Press Densify.`
          : 'Training finished.';
        if (r && (r.heldOutIoU !== undefined || r.heldOutNote)) iou.textContent = heldOutText(r);
        haveModel = true;
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
      refreshUnseen();
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
      el('div', { class: 'row live-row' }, el('label', { class: 'live-label' }, liveToggle, ' Live'), liveStop, liveContinue, liveFresh),
      liveStatus,
      unseen,
      el('label', { class: 'row' }, previewToggle, ' show preview'),
      el('div', { class: 'subhead' }, 'timed training'),
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
      el('div', { class: 'subhead' }, 'annotate here next'),
      suggestNote,
      suggestHost,
    ),
  );
  setLiveState('off');
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
