/**
 * Objects panel: the instances of the densify result (server: main/services/objects-service.ts). Finds them
 * after each densify, shows the current xy slice with every object in its own colour, a table that sorts
 * (click a header) and filters (minimum volume, class), click a row → the crosshair jumps to the object.
 * Edit tools on the object map: click two objects to merge them, or drag a line across one to split it;
 * Undo takes back the last merge/split. Export writes the instance labels (uint16 ImageJ TIFF) and the CSV.
 */
import type { ObjectRowInfo, ObjectsTable } from '../../../main/common/api.js';
import type { App } from '../app.js';
import { button, el } from '../dom.js';
import type { ClassDef } from '../state.js';

type SortKey = 'id' | 'class' | 'volumeUm3' | 'equivalentDiameterUm' | 'sphericity' | 'z';
const COLUMNS: Array<[SortKey, string, (o: ObjectRowInfo) => string]> = [
  ['id', 'id', (o) => String(o.id)],
  ['class', 'class', (o) => String(o.class)],
  ['volumeUm3', 'volume µm³', (o) => o.volumeUm3.toFixed(2)],
  ['equivalentDiameterUm', 'diam. µm', (o) => o.equivalentDiameterUm.toFixed(2)],
  ['sphericity', 'spher.', (o) => o.sphericity.toFixed(2)],
  ['z', 'x, y, z', (o) => o.centroid.join(', ')],
];

/** the value an object id is shown with in the views: 2..255 (1 = no object), cycling over 254 colours */
export function displayValue(id: number): number {
  return ((id - 1) % 254) + 2;
}

/** a distinct colour per id (golden-angle hues of its display value), as RGB 0..255 */
export function objectColor(id: number): [number, number, number] {
  const h = (displayValue(id) * 137.508) % 360;
  const s = 0.75;
  const l = 0.55;
  const k = (n: number) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
  return [Math.round(f(0) * 255), Math.round(f(8) * 255), Math.round(f(4) * 255)];
}

export function objectsPanel(app: App): HTMLElement {
  const st = app.store;
  const api = app.api;
  let table: ObjectsTable | null = null;
  let sortKey: SortKey = 'id';
  let sortDir = 1;
  let selected: number[] = [];
  let mode: 'merge' | 'split' = 'merge';
  let sliceIds: Uint32Array | null = null;
  let sliceKey = '';
  let busy = false;

  const status = el('div', { class: 'job-status', testid: 'objects-status' }, 'Densify first: the objects of the result appear here.');
  const minSep = el('input', { type: 'number', min: 0, step: 0.5, value: 2.5, testid: 'objects-min-sep', title: 'seeds closer than this (µm) are one object' });
  const minSize = el('input', { type: 'number', min: 0, step: 1, value: 0, testid: 'objects-min-size', title: 'drop objects smaller than this (µm³)' });
  const split = el('select', { testid: 'objects-split', title: 'split touching objects by a watershed on the distance transform' }, el('option', { value: 'distance' }, 'split touching'), el('option', { value: 'none' }, 'components only'));
  const find = button('Find objects', 'objects-compute', () => void compute(), 'instances of the densify result');
  const filterMin = el('input', { type: 'number', min: 0, step: 1, value: 0, testid: 'objects-filter-min', title: 'show objects of at least this volume (µm³)' });
  const filterClass = el('input', { type: 'text', value: '', placeholder: 'all', size: 3, testid: 'objects-filter-class', title: 'show only this class' });
  const colourViews = el('input', { type: 'checkbox', testid: 'objects-colour-views', title: 'colour every object distinctly in the slice views and in 3D (instead of the classes)' });
  const modeSel = el('select', { testid: 'objects-mode' }, el('option', { value: 'merge' }, 'click two to merge'), el('option', { value: 'split' }, 'draw a line to split'));
  const merge = button('Merge selected', 'objects-merge', () => void doMerge(), 'merge the selected objects into one');
  const undo = button('↶ Undo', 'objects-undo', () => void run(() => api.undoObjects({ volumeId: vid() }), 'Undo'), 'take back the last merge or split');
  const exportPath = el('input', { type: 'text', value: '', placeholder: '/path/objects.tif', testid: 'objects-export-path' });
  const exportBtn = button('Export', 'objects-export', () => void doExport(), 'instance labels (uint16 ImageJ TIFF) + table (CSV beside it)');
  const exportResult = el('div', { class: 'hint', testid: 'objects-export-result' }, '');
  const canvas = el('canvas', { class: 'objects-map', testid: 'objects-canvas', width: 1, height: 1, title: 'objects in the current xy slice' });
  canvas.style.width = '100%';
  canvas.style.imageRendering = 'pixelated';
  canvas.style.cursor = 'crosshair';
  const thead = el('thead', {});
  const tbody = el('tbody', {});
  const tableEl = el('table', { class: 'objects-table', testid: 'objects-table' }, thead, tbody);
  const scroller = el('div', { class: 'objects-scroll' }, tableEl);
  scroller.style.maxHeight = '220px';
  scroller.style.overflowY = 'auto';
  const root = el(
    'details',
    { class: 'panel', open: true, testid: 'objects-panel', 'data-count': '' },
    el('summary', {}, 'Objects'),
    el(
      'div',
      { class: 'panel-body' },
      el('div', { class: 'row' }, el('label', {}, 'min sep. µm ', minSep), el('label', {}, ' min µm³ ', minSize)),
      el('div', { class: 'row' }, split, find),
      status,
      canvas,
      el('label', { class: 'row' }, colourViews, ' colour objects in the views and 3D'),
      el('div', { class: 'row' }, modeSel, merge, undo),
      el('div', { class: 'row' }, el('label', {}, 'vol ≥ ', filterMin), el('label', {}, ' class ', filterClass)),
      scroller,
      el('div', { class: 'row' }, exportPath, exportBtn),
      exportResult,
    ),
  );

  const vid = () => {
    const v = st.volume;
    if (!v) throw new Error('no volume open');
    return v.id;
  };

  async function run(fn: () => Promise<ObjectsTable>, action: string): Promise<void> {
    if (busy) return;
    busy = true;
    root.dataset.busy = '1';
    try {
      setTable(await fn());
    } catch (e) {
      app.error(e, action);
    } finally {
      busy = false;
      delete root.dataset.busy;
    }
  }

  async function compute(): Promise<void> {
    if (!st.volume || !st.prediction) {
      status.textContent = 'Densify first: the objects of the result appear here.';
      return;
    }
    status.textContent = 'Finding objects…';
    await run(
      () => api.computeObjects({ volumeId: vid(), split: split.value as 'distance' | 'none', minSeparationUm: Number(minSep.value) || 0, minSizeUm3: Number(minSize.value) || 0 }),
      'Finding objects',
    );
  }

  async function doMerge(): Promise<void> {
    if (selected.length < 2) {
      status.textContent = 'Select two objects (click them in the map or ctrl-click rows) to merge.';
      return;
    }
    const ids = selected.slice();
    selected = [];
    await run(() => api.mergeObjects({ volumeId: vid(), ids }), 'Merging objects');
  }

  async function doExport(): Promise<void> {
    const path = exportPath.value.trim();
    if (!path || !table) return;
    try {
      const csvPath = path.replace(/\.tiff?$/i, '') + '.csv';
      const r = await api.exportObjects({ volumeId: vid(), path, csvPath });
      exportResult.textContent = `Wrote ${r.path} (${r.bytes} bytes) and ${csvPath}`;
      exportResult.dataset.path = r.path;
    } catch (e) {
      app.error(e, 'Exporting the objects');
    }
  }

  function setTable(t: ObjectsTable): void {
    table = t;
    root.dataset.count = String(t.count);
    root.dataset.revision = String(t.revision);
    const present = new Set(t.objects.map((o) => o.id));
    selected = selected.filter((id) => present.has(id));
    status.textContent = `${t.count} objects${t.undoDepth ? ` (${t.undoDepth} edit${t.undoDepth > 1 ? 's' : ''} to undo)` : ''}.`;
    undo.disabled = t.undoDepth === 0;
    sliceKey = '';
    renderTable();
    void drawMap();
    if (colourViews.checked) void showInViews();
  }

  /** the palette the label lookup tables use while objects are shown: class 1 as it is, 2..255 object colours */
  function palette(): ClassDef[] {
    const bg = st.classById(1);
    const out: ClassDef[] = [{ id: 1, name: bg?.name ?? 'background', color: bg?.color ?? [0.25, 0.45, 1], visible: bg?.visible ?? true, opacity: bg?.opacity ?? 0.05 }];
    for (let v = 2; v <= 255; v++) {
      const rgb = objectColor(v - 1); // object id v - 1 has display value v
      out.push({ id: v, name: `object ${v}`, color: [rgb[0] / 255, rgb[1] / 255, rgb[2] / 255], visible: true, opacity: 0.8 });
    }
    return out;
  }

  async function showInViews(): Promise<void> {
    const v = st.volume;
    if (!v || !table) return;
    try {
      const vol = await api.getObjectVolume({ volumeId: v.id });
      if (st.volume !== v || !colourViews.checked) return;
      const vals = new Uint8Array(vol.ids.length);
      for (let i = 0; i < vals.length; i++) vals[i] = vol.ids[i] ? displayValue(vol.ids[i]!) : 1;
      app.setObjectsDisplay(vals, palette());
      root.dataset.colouredViews = '1';
    } catch (e) {
      app.error(e, 'Colouring the objects');
    }
  }

  function visibleRows(): ObjectRowInfo[] {
    if (!table) return [];
    const vmin = Number(filterMin.value) || 0;
    const cls = filterClass.value.trim();
    const rows = table.objects.filter((o) => o.volumeUm3 >= vmin && (!cls || String(o.class) === cls));
    const key = (o: ObjectRowInfo) => (sortKey === 'z' ? o.centroid[2] : o[sortKey]);
    return rows.sort((a, b) => (key(a) - key(b)) * sortDir || a.id - b.id);
  }

  function renderTable(): void {
    thead.replaceChildren(
      el(
        'tr',
        {},
        ...COLUMNS.map(([k, label]) => {
          const th = el('th', { testid: `objects-sort-${k}`, title: 'sort' }, label + (k === sortKey ? (sortDir > 0 ? ' ▲' : ' ▼') : ''));
          th.style.cursor = 'pointer';
          th.addEventListener('click', () => {
            if (sortKey === k) sortDir = -sortDir;
            else {
              sortKey = k;
              sortDir = 1;
            }
            renderTable();
          });
          return th;
        }),
      ),
    );
    const rows = visibleRows();
    tableEl.dataset.rows = String(rows.length);
    tbody.replaceChildren(
      ...rows.map((o) => {
        const [r, g, b] = objectColor(o.id);
        const tr = el('tr', { testid: 'objects-row', 'data-id': o.id, class: selected.includes(o.id) ? 'selected' : undefined }, ...COLUMNS.map(([, , f]) => el('td', {}, f(o))));
        (tr.firstChild as HTMLElement).style.borderLeft = `6px solid rgb(${r},${g},${b})`;
        if (selected.includes(o.id)) tr.style.background = 'rgba(255,255,255,0.15)';
        tr.addEventListener('click', (ev) => {
          if (ev.ctrlKey || ev.metaKey || ev.shiftKey) toggleSelect(o.id);
          else selected = [o.id];
          st.setCursor(o.centroid);
          renderTable();
        });
        return tr;
      }),
    );
  }

  function toggleSelect(id: number): void {
    selected = selected.includes(id) ? selected.filter((s) => s !== id) : [...selected, id];
  }

  /** the current xy slice, each object in its colour, selected ones brighter, the crosshair */
  let drawing: Promise<void> | null = null;
  let drawAgain = false;
  /** coalesced: one slice request at a time, then again for the latest crosshair */
  function drawMap(): Promise<void> {
    if (drawing) {
      drawAgain = true;
      return drawing;
    }
    drawing = (async () => {
      try {
        do {
          drawAgain = false;
          await drawMapOnce();
        } while (drawAgain);
      } finally {
        drawing = null;
      }
    })();
    return drawing;
  }

  async function drawMapOnce(): Promise<void> {
    const v = st.volume;
    if (!v || !table) return;
    const z = st.cursor[2];
    const key = `${v.id}:${table.revision}:${z}`;
    if (key !== sliceKey) {
      try {
        const s = await api.getObjectSlice({ volumeId: v.id, plane: 'xy', index: z });
        sliceIds = s.ids;
        sliceKey = key;
      } catch (e) {
        app.error(e, 'Reading the objects slice');
        return;
      }
    }
    if (!sliceIds) return;
    const W = v.dims.x;
    const H = v.dims.y;
    canvas.width = W;
    canvas.height = H;
    const ctx = canvas.getContext('2d');
    if (!ctx) return;
    const img = ctx.createImageData(W, H);
    const sel = new Set(selected);
    for (let i = 0; i < W * H; i++) {
      const id = sliceIds[i]!;
      const p = 4 * i;
      if (!id) {
        img.data[p] = img.data[p + 1] = img.data[p + 2] = 20;
      } else {
        const [r, g, b] = objectColor(id);
        const k = sel.has(id) ? 1 : 0.8;
        img.data[p] = r * k + (sel.has(id) ? 50 : 0);
        img.data[p + 1] = g * k + (sel.has(id) ? 50 : 0);
        img.data[p + 2] = b * k + (sel.has(id) ? 50 : 0);
      }
      img.data[p + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    ctx.strokeStyle = 'rgba(255,255,255,0.6)';
    ctx.lineWidth = 0.5;
    ctx.beginPath();
    ctx.moveTo(st.cursor[0] + 0.5, 0);
    ctx.lineTo(st.cursor[0] + 0.5, H);
    ctx.moveTo(0, st.cursor[1] + 0.5);
    ctx.lineTo(W, st.cursor[1] + 0.5);
    ctx.stroke();
    canvas.dataset.z = String(z);
  }

  const toVoxel = (ev: MouseEvent): [number, number] => {
    const r = canvas.getBoundingClientRect();
    return [((ev.clientX - r.left) / r.width) * canvas.width, ((ev.clientY - r.top) / r.height) * canvas.height];
  };
  let lineStart: [number, number] | null = null;
  canvas.addEventListener('mousedown', (ev) => {
    if (!table || !sliceIds) return;
    const [u, v] = toVoxel(ev);
    if (mode === 'split') {
      lineStart = [u, v];
      return;
    }
    const id = sliceIds[Math.floor(v) * canvas.width + Math.floor(u)] ?? 0;
    if (!id) return;
    toggleSelect(id);
    renderTable();
    void drawMap();
    if (selected.length >= 2) void doMerge();
  });
  canvas.addEventListener('mouseup', (ev) => {
    if (mode !== 'split' || !lineStart) return;
    const a = lineStart;
    lineStart = null;
    const b = toVoxel(ev);
    if (Math.hypot(b[0] - a[0], b[1] - a[1]) < 2) return;
    void run(() => api.splitObject({ volumeId: vid(), plane: 'xy', index: st.cursor[2], line: [a, b] }), 'Splitting the object');
  });
  modeSel.addEventListener('change', () => {
    mode = modeSel.value as 'merge' | 'split';
    selected = [];
    renderTable();
    void drawMap();
  });
  colourViews.addEventListener('change', () => {
    if (colourViews.checked) void showInViews();
    else {
      app.setObjectsDisplay(null, null);
      delete root.dataset.colouredViews;
    }
  });
  filterMin.addEventListener('input', renderTable);
  filterClass.addEventListener('input', renderTable);
  st.on('cursor', () => void drawMap());
  st.on('labels', (layer) => {
    // a new densify result: its objects replace the old ones
    if (layer === 'prediction' && st.prediction) void compute();
  });
  st.on('volume', () => {
    table = null;
    sliceIds = null;
    sliceKey = '';
    selected = [];
    root.dataset.count = '';
    colourViews.checked = false;
    delete root.dataset.colouredViews;
    tbody.replaceChildren();
    status.textContent = 'Densify first: the objects of the result appear here.';
  });
  undo.disabled = true;
  return root;
}
