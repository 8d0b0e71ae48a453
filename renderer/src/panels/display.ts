/** Channels panel (colour, visibility, window) and labels panel (classes, overlay, 3D options). */
import type { App } from '../app.js';
import { button, el } from '../dom.js';
import { AUTO_WINDOW_PERCENTILES, autoWindow, hexToRgb, rgbToHex, type ChannelDisplay } from '../render/composite.js';
import { CLASS_COLORS, type ClassDef } from '../state.js';

export function channelsPanel(app: App): HTMLElement {
  const st = app.store;
  const body = el('div', { class: 'panel-body', testid: 'channels' });
  const root = el('details', { class: 'panel', open: true }, el('summary', {}, 'Channels'), body);
  const rebuild = () => {
    body.replaceChildren();
    if (!st.channels.length) body.append(el('p', { class: 'hint' }, 'Open a stack to see its channels.'));
    st.channels.forEach((ch, i) => {
      const vis = el('input', { type: 'checkbox', testid: `channel-visible-${i}`, checked: ch.visible, title: 'show this channel' });
      const color = el('input', { type: 'color', testid: `channel-color-${i}`, value: rgbToHex(ch.color), title: 'channel colour' });
      const step = (ch.rangeMax - ch.rangeMin) / 1000 || 1;
      const mk = (v: number, tid: string, label: string) =>
        el('input', { type: 'range', min: ch.rangeMin, max: ch.rangeMax, step, value: v, testid: tid, title: label });
      const lo = mk(ch.min, `channel-min-${i}`, 'black point');
      const hi = mk(ch.max, `channel-max-${i}`, 'white point');
      const val = el('span', { class: 'wl', testid: `channel-window-${i}`, title: 'intensities shown from black to full colour, of the range in the data' }, windowText(ch));
      const [pLo, pHi] = AUTO_WINDOW_PERCENTILES;
      const auto = button('auto', `channel-auto-${i}`, () => {
        const data = st.volume?.channels[i];
        if (!data) return;
        [ch.min, ch.max] = autoWindow(data);
        lo.value = String(ch.min);
        hi.value = String(ch.max);
        changed();
      }, `window from the ${pLo}–${pHi} % percentiles (the window a stack opens with)`);
      const changed = () => {
        val.textContent = windowText(ch);
        st.emit('channels', st.channels);
      };
      vis.addEventListener('change', () => {
        ch.visible = vis.checked;
        changed();
      });
      color.addEventListener('input', () => {
        ch.color = hexToRgb(color.value);
        changed();
      });
      lo.addEventListener('input', () => {
        ch.min = Math.min(Number(lo.value), ch.max - step);
        changed();
      });
      hi.addEventListener('input', () => {
        ch.max = Math.max(Number(hi.value), ch.min + step);
        changed();
      });
      body.append(
        el('div', { class: 'channel-row', testid: `channel-${i}` }, vis, color, el('span', { class: 'ch-name' }, ch.name), auto),
        el('div', { class: 'channel-wl' }, el('label', { class: 'wl-label' }, 'black', lo), el('label', { class: 'wl-label' }, 'white', hi), val),
      );
    });
  };
  st.on('volume', rebuild);
  rebuild();
  return root;
}

/** "display 0 – 33776 of 0 – 61711": the window, then the data range it sits in, both labelled */
function windowText(ch: ChannelDisplay): string {
  return `display ${fmt(ch.min)} – ${fmt(ch.max)} of data ${fmt(ch.rangeMin)} – ${fmt(ch.rangeMax)}`;
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(2);
}

export function labelsPanel(app: App): HTMLElement {
  const st = app.store;
  const list = el('div', { class: 'class-list', testid: 'class-list' });
  const opacity = el('input', { type: 'range', min: 0, max: 1, step: 0.05, value: st.labelOpacity, testid: 'label-opacity', title: 'overlay opacity' });
  const outline = el('input', { type: 'checkbox', testid: 'label-outline', checked: st.outline });
  const showAnn = el('input', { type: 'checkbox', testid: 'show-annotation', checked: st.showAnnotation });
  const showPred = el('input', { type: 'checkbox', testid: 'show-prediction', checked: st.showPrediction });
  const vol3d = el('input', { type: 'checkbox', testid: 'show-3d-volume', checked: st.show3DVolume });
  const lab3d = el('input', { type: 'checkbox', testid: 'show-3d-labels', checked: st.show3DLabels });
  const planes3d = el('input', { type: 'checkbox', testid: 'show-3d-planes', checked: st.showPlanesIn3D });
  const overlay = () => {
    st.labelOpacity = Number(opacity.value);
    st.outline = outline.checked;
    st.showAnnotation = showAnn.checked;
    st.showPrediction = showPred.checked;
    st.show3DVolume = vol3d.checked;
    st.show3DLabels = lab3d.checked;
    st.showPlanesIn3D = planes3d.checked;
    st.emit('overlay', undefined);
  };
  for (const i of [opacity, outline, showAnn, showPred, vol3d, lab3d, planes3d]) i.addEventListener('input', overlay);
  st.on('overlay', () => {
    outline.checked = st.outline;
    showAnn.checked = st.showAnnotation;
    showPred.checked = st.showPrediction;
  });

  const rebuild = () => {
    list.replaceChildren();
    for (const c of st.classes) list.append(classRow(app, c));
    list.append(
      button('+ class', 'class-add', () => {
        const id = Math.max(0, ...st.classes.map((k) => k.id)) + 1;
        if (id > 255) return;
        const next: ClassDef = { id, name: `class ${id}`, color: CLASS_COLORS[(id - 1) % CLASS_COLORS.length], visible: true, opacity: 0.8 };
        void app.pushClasses([...st.classes, next]);
      }),
    );
  };
  st.on('classes', rebuild);
  st.on('tool', rebuild);
  rebuild();

  const lbl = (text: string, input: HTMLElement) => el('label', { class: 'row' }, input, ' ', text);
  return el(
    'details',
    { class: 'panel', open: true },
    el('summary', {}, 'Labels'),
    el(
      'div',
      { class: 'panel-body' },
      list,
      el('label', { class: 'row' }, 'overlay opacity ', opacity),
      lbl('outline only (O)', outline),
      lbl('show annotation', showAnn),
      lbl('show prediction', showPred),
      el('div', { class: 'subhead' }, '3D view'),
      lbl('volume rendering', vol3d),
      lbl('labels in 3D', lab3d),
      lbl('slice planes in 3D', planes3d),
    ),
  );
}

function classRow(app: App, c: ClassDef): HTMLElement {
  const st = app.store;
  const pick = el('input', { type: 'radio', name: 'active-class', testid: `class-select-${c.id}`, checked: st.activeClass === c.id, title: `paint with this class (key ${c.id})` });
  const color = el('input', { type: 'color', value: rgbToHex(c.color), testid: `class-color-${c.id}` });
  const name = el('input', { type: 'text', value: c.name, testid: `class-name-${c.id}`, class: 'class-name' });
  const vis = el('input', { type: 'checkbox', checked: c.visible, testid: `class-visible-${c.id}`, title: 'show this class' });
  const op = el('input', { type: 'range', min: 0, max: 1, step: 0.05, value: c.opacity, testid: `class-opacity-${c.id}`, title: 'opacity in 3D' });
  pick.addEventListener('change', () => {
    st.activeClass = c.id;
    if (st.tool === 'navigate') {
      st.tool = 'brush';
    }
    st.emit('tool', st.tool);
  });
  const push = () => void app.pushClasses(st.classes.map((k) => (k.id === c.id ? { ...c } : k)));
  // colour / visibility / opacity: restyle without rebuilding this row (keeps the control under the pointer)
  const restyle = () => app.restyleLabels();
  color.addEventListener('input', () => {
    c.color = hexToRgb(color.value);
    restyle();
  });
  color.addEventListener('change', push);
  name.addEventListener('change', () => {
    c.name = name.value.trim() || `class ${c.id}`;
    push();
  });
  vis.addEventListener('change', () => {
    c.visible = vis.checked;
    restyle();
  });
  op.addEventListener('input', () => {
    c.opacity = Number(op.value);
    restyle();
  });
  return el('div', { class: `class-row${st.activeClass === c.id ? ' active' : ''}`, testid: `class-${c.id}` }, pick, el('kbd', {}, String(c.id)), color, name, vis, op);
}
