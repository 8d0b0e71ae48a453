/**
 * Per-view chrome: the slice slider with ticks at painted slices and a painted-slice count, the maximise and
 * snapshot buttons in each view header, and the position/value readout.
 */
import type { App } from '../app.js';
import { button, el } from '../dom.js';
import { PLANE_AXIS, PLANES, planeDepth, type Plane } from '../render/composite.js';
import type { ViewId } from '../layout.js';
import { planeSliceLabel, shownSlice, voxelLabel } from '../render/numbering.js';

export function mountViewChrome(app: App, readoutHost: HTMLElement): void {
  const st = app.store;
  const sliders = {} as Record<Plane, { input: HTMLInputElement; ticks: HTMLElement; suggest: HTMLElement; strip: HTMLCanvasElement; label: HTMLElement; count: HTMLElement; badge: HTMLElement }>;

  for (const plane of PLANES) {
    const cell = app.layout.cells[plane];
    const input = el('input', { type: 'range', min: 0, max: 0, value: 0, step: 1, testid: `slice-slider-${plane}`, 'aria-label': `${plane} slice` });
    const ticks = el('div', { class: 'slice-ticks', testid: `slice-ticks-${plane}` });
    const label = el('span', { class: 'slice-label', testid: `slice-label-${plane}` }, '–');
    const count = el('span', { class: 'painted-count', testid: `painted-count-${plane}`, title: 'slices of this plane you painted on' }, '0 painted');
    // "annotate here next": the per-slice uncertainty as a heat strip under the slider, the ranked slices as ticks
    const strip = el('canvas', { class: 'suggest-strip', testid: `suggest-strip-${plane}`, width: 1, height: 1, hidden: true });
    const suggest = el('div', { class: 'slice-ticks suggest-ticks', testid: `suggest-ticks-${plane}` });
    const track = el('div', { class: 'slice-track' }, input, ticks, suggest, strip);
    cell.footer.append(track, label, count);
    input.addEventListener('input', () => app.setSlice(plane, Number(input.value)));
    const badge = el('span', { class: 'preview-badge', testid: `preview-badge-${plane}`, hidden: true, title: "the live session's prediction of this slice (outlined); Densify gives the whole-stack result" }, '');
    cell.header.querySelector('.view-title')?.after(badge);
    sliders[plane] = { input, ticks, suggest, strip, label, count, badge };
  }

  for (const id of ['xy', 'xz', 'yz', '3d'] as ViewId[]) {
    const cell = app.layout.cells[id];
    const tools = el(
      'span',
      { class: 'view-tools' },
      button('⤢', `maximise-${id}`, () => app.layout.toggleMaximise(id), 'maximise / restore (F)'),
      button('PNG', `snapshot-${id}`, () => void snapshot(app, id), 'save a PNG snapshot of this view'),
    );
    cell.header.append(tools);
  }

  const refreshSliders = () => {
    const v = st.volume;
    for (const plane of PLANES) {
      const s = sliders[plane];
      if (!v) continue;
      const depth = planeDepth(plane, v.dims);
      const idx = st.cursor[PLANE_AXIS[plane]];
      s.input.max = String(depth - 1);
      s.input.value = String(idx);
      s.label.textContent = `${shownSlice(idx)} / ${depth}`;
      s.input.setAttribute('aria-valuetext', `slice ${shownSlice(idx)} of ${depth}`);
    }
  };
  const refreshTicks = () => {
    const v = st.volume;
    for (const plane of PLANES) {
      const s = sliders[plane];
      s.ticks.replaceChildren();
      if (!v) continue;
      const depth = planeDepth(plane, v.dims);
      // the server's record of the slices painted on (the same after a reload, a reopened project, undo);
      // file slices, like the sliders (an out-of-core volume's slice views are at full resolution too)
      const slices = [...new Set(app.serverPainted[plane])];
      for (const i of slices.sort((a, b) => a - b)) {
        const t = el('i', { class: 'tick', 'data-slice': i, title: `${planeSliceLabel(plane, i)} painted` });
        t.style.left = `calc(${depth > 1 ? (i / (depth - 1)) * 100 : 0}% )`;
        s.ticks.append(t);
      }
      s.count.textContent = `${slices.length} of ${depth} painted`;
      s.count.dataset.count = String(slices.length);
    }
  };
  st.on('cursor', refreshSliders);
  st.on('volume', () => {
    refreshSliders();
    refreshTicks();
  });
  // after a stroke, undo or redo: ask the server (one request at a time, the last answer wins)
  let asking = false;
  let askAgain = false;
  const fetchPainted = async () => {
    if (asking) {
      askAgain = true;
      return;
    }
    asking = true;
    try {
      do {
        askAgain = false;
        const v = st.volume;
        if (!v) break;
        const s = await app.api.getAnnotationSummary({ volumeId: v.id }).catch(() => null);
        if (s && st.volume === v) app.serverPainted = s.paintedSlices;
      } while (askAgain);
    } finally {
      asking = false;
    }
    refreshTicks();
  };
  st.on('painted', () => void fetchPainted());

  // the preview badge says what the outlined layer is and which iteration drew it
  const refreshBadge = (plane: Plane) => {
    const b = sliders[plane].badge;
    const shown = app.views[plane].previewShown;
    b.hidden = !shown;
    b.textContent = shown ? `preview · iteration ${shown.iteration}` : '';
    b.dataset.iteration = shown ? String(shown.iteration) : '';
    b.dataset.revision = shown ? String(shown.revision) : '';
  };
  st.on('preview', (p) => {
    if (p !== '3d') refreshBadge(p);
  });
  st.on('cursor', () => {
    for (const p of PLANES) refreshBadge(p);
  });
  const refreshSuggestions = () => {
    const s = app.preview.suggestions;
    const v = st.volume;
    for (const plane of PLANES) {
      const { suggest, strip } = sliders[plane];
      suggest.replaceChildren();
      const scores = s && v ? s.perAxis[plane] : null;
      const depth = v ? planeDepth(plane, v.dims) : 0;
      if (!s || !v || !scores || scores.length !== depth) {
        strip.hidden = true;
        suggest.dataset.count = '0';
        continue;
      }
      strip.hidden = false;
      strip.width = depth;
      const g = strip.getContext('2d');
      if (g) {
        g.clearRect(0, 0, depth, 1);
        scores.forEach((sc, i) => {
          g.fillStyle = `rgba(34, 211, 238, ${Math.max(0, Math.min(1, sc)).toFixed(3)})`;
          g.fillRect(i, 0, 1, 1);
        });
      }
      const ranked = s.ranked.filter((r) => r.plane === plane);
      ranked.forEach((r) => {
        const rank = s.ranked.indexOf(r) + 1;
        const t = el('i', { class: 'tick suggest-tick', 'data-slice': r.index, 'data-rank': rank, title: `annotate here next (#${rank}): ${planeSliceLabel(plane, r.index)}` });
        t.style.left = `calc(${depth > 1 ? (r.index / (depth - 1)) * 100 : 0}% )`;
        suggest.append(t);
      });
      suggest.dataset.count = String(ranked.length);
    }
  };
  st.on('suggestions', refreshSuggestions);
  st.on('volume', refreshSuggestions);

  // readout: voxel, µm and the values under the pointer (or the crosshair)
  const readout = el(
    'div',
    { class: 'readout', testid: 'readout', title: 'position in slice numbers counted from 1, as in Fiji; then µm from the first voxel' },
    'No image open — drop a stack here or use Open.',
  );
  readoutHost.append(readout);
  const show = (vox: [number, number, number]) => {
    const v = st.volume;
    if (!v) return;
    const vals = app.valuesAt(...vox);
    const [x, y, z] = vox;
    const um = `${(x * v.spacing.x).toFixed(2)}, ${(y * v.spacing.y).toFixed(2)}, ${(z * v.spacing.z).toFixed(2)} ${v.spacing.unit}`;
    if (!vals) {
      readout.textContent = `${voxelLabel(vox)} (outside)`;
      return;
    }
    const chans = vals.channels.map((c, i) => `${st.channels[i]?.name ?? `ch${i + 1}`}: ${Number.isInteger(c) ? c : c.toFixed(3)}`).join('  ');
    const lab = (id: number) => (id === 0 ? 'unannotated' : (st.classById(id)?.name ?? `class ${id}`));
    readout.textContent = `${voxelLabel(vox)}  |  ${um}  |  ${chans}  |  annotation: ${lab(vals.annotation)}${vals.prediction !== null ? `  prediction: ${lab(vals.prediction)}` : ''}`;
    readout.dataset.voxel = `${x},${y},${z}`;
  };
  app.readout = show;
  st.on('cursor', (c) => show(c));
}

async function snapshot(app: App, id: ViewId): Promise<void> {
  try {
    const url = id === '3d' ? await app.view3d.snapshot() : await app.views[id].snapshot();
    const name = `${app.store.volume?.name ?? 'sliceform'}_${id}.png`.replace(/[^\w.-]+/g, '_');
    const path = await app.api.showDialog({ kind: 'save-snapshot', defaultPath: name }).catch(() => null);
    if (path) {
      const bytes = Uint8Array.from(atob(url.split(',')[1]), (c) => c.charCodeAt(0));
      const res = await app.api.saveSnapshot({ path, png: bytes });
      app.store.status(`Saved ${res.path}`);
    } else {
      const a = el('a', { href: url, download: name, testid: 'snapshot-link' });
      document.body.append(a);
      a.click();
      a.remove();
      app.store.status(`Snapshot of the ${id} view downloaded as ${name}`);
    }
  } catch (e) {
    app.error(e, 'Saving the snapshot');
  }
}
