/**
 * Mouse and keyboard on the slice views. Wheel steps slices (Shift: 5 at a time), Ctrl/Cmd+wheel zooms at the
 * pointer, middle-drag (or Space+drag) pans, right-drag zooms, left click/drag in the navigate tool moves the
 * linked crosshair. With brush/eraser, left-drag belongs to the vtk.js PaintWidget.
 *
 * Keys (the table in panels/shortcuts.ts, shown by `?`): ↑/↓ or PageUp/PageDown step the slice of the view
 * under the pointer; N navigate, B brush, E eraser; 1–9 pick a class; [ and ] change the brush size; Ctrl+Z
 * undo, Ctrl+Shift+Z (or Ctrl+Y) redo; O outline; H (or L) labels on/off; F maximise the view under the
 * pointer; R reset its zoom; T train; D densify; ? help; Esc closes the help (else: navigate).
 */
import type { App } from './app.js';
import type { ShortcutHelp } from './panels/shortcuts.js';
import { PLANES, type Plane } from './render/composite.js';
import type { ViewId } from './layout.js';

export function wireInteraction(app: App, help?: ShortcutHelp): void {
  const st = app.store;
  let hovered: ViewId = 'xy';
  let spaceDown = false;

  for (const plane of PLANES) {
    const view = app.views[plane];
    const host = view.container;
    host.addEventListener('pointerenter', () => {
      hovered = plane;
      app.activePlane = plane;
    });
    host.addEventListener(
      'wheel',
      (ev) => {
        ev.preventDefault();
        if (!st.volume) return;
        if (ev.ctrlKey || ev.metaKey) {
          const r = host.getBoundingClientRect();
          view.zoom(ev.deltaY < 0 ? 1.15 : 1 / 1.15, ev.clientX - r.left, ev.clientY - r.top);
          view.requestRender();
        } else {
          const step = (ev.deltaY > 0 ? 1 : ev.deltaY < 0 ? -1 : 0) * (ev.shiftKey ? 5 : 1);
          if (step) app.stepSlice(plane, step);
        }
      },
      { passive: false },
    );
    host.addEventListener('contextmenu', (ev) => ev.preventDefault());
    host.addEventListener('pointerdown', (ev) => {
      if (!st.volume) return;
      host.focus({ preventScroll: true });
      const r = host.getBoundingClientRect();
      const panning = ev.button === 1 || (ev.button === 0 && spaceDown);
      const zooming = ev.button === 2;
      const crosshair = ev.button === 0 && !spaceDown && st.tool === 'navigate';
      if (!panning && !zooming && !crosshair) return;
      ev.preventDefault();
      let lastX = ev.clientX;
      let lastY = ev.clientY;
      const moveCursor = (e: PointerEvent) => {
        const vox = view.displayToVoxel(e.clientX - r.left, e.clientY - r.top);
        st.setCursor(vox);
      };
      if (crosshair) moveCursor(ev);
      const move = (e: PointerEvent) => {
        if (crosshair) moveCursor(e);
        else if (panning) {
          view.panCss(e.clientX - lastX, e.clientY - lastY);
          view.requestRender();
        } else if (zooming) {
          view.zoom(Math.exp(-(e.clientY - lastY) * 0.01));
          view.requestRender();
        }
        lastX = e.clientX;
        lastY = e.clientY;
      };
      const up = () => {
        window.removeEventListener('pointermove', move);
        window.removeEventListener('pointerup', up);
      };
      window.addEventListener('pointermove', move);
      window.addEventListener('pointerup', up);
    });
    host.addEventListener('pointermove', (ev) => {
      if (!st.volume) return;
      const r = host.getBoundingClientRect();
      const vox = view.displayToVoxel(ev.clientX - r.left, ev.clientY - r.top).map(Math.round) as [number, number, number];
      app.readout?.(vox);
      if (st.tool !== 'navigate') view.requestRender(); // brush cursor follows the pointer
    });
  }
  app.layout.cells['3d'].canvasHost.addEventListener('pointerenter', () => (hovered = '3d'));

  window.addEventListener('keyup', (ev) => {
    if (ev.key === ' ') spaceDown = false;
  });
  window.addEventListener('keydown', (ev) => {
    const t = ev.target as HTMLElement | null;
    // typing in a text field or a list keeps its keys; checkboxes, buttons and sliders do not need them
    const typing =
      t && (t.tagName === 'SELECT' || t.tagName === 'TEXTAREA' || (t.tagName === 'INPUT' && ['text', 'number', 'search', 'color', 'file'].includes((t as HTMLInputElement).type)));
    if (typing) return;
    if (t && t.tagName === 'INPUT' && (t as HTMLInputElement).type === 'range' && ev.key.startsWith('Arrow')) return;
    const mod = ev.ctrlKey || ev.metaKey;
    const key = ev.key;
    if (mod && (key === 'z' || key === 'Z')) {
      ev.preventDefault();
      void app.undoRedo(ev.shiftKey ? 'redo' : 'undo');
      return;
    }
    if (mod && (key === 'y' || key === 'Y')) {
      ev.preventDefault();
      void app.undoRedo('redo');
      return;
    }
    if (mod) return;
    const plane: Plane = hovered === '3d' ? app.activePlane : hovered;
    switch (key) {
      case ' ':
        spaceDown = true;
        return;
      case 'ArrowUp':
      case 'ArrowRight':
      case 'PageUp':
        ev.preventDefault();
        app.stepSlice(plane, key === 'PageUp' ? 10 : 1);
        return;
      case 'ArrowDown':
      case 'ArrowLeft':
      case 'PageDown':
        ev.preventDefault();
        app.stepSlice(plane, key === 'PageDown' ? -10 : -1);
        return;
      case 'Escape':
        if (help?.open) help.hide();
        else setTool(app, 'navigate');
        return;
      case '?':
        help?.toggle();
        return;
      case 'n':
      case 'N':
        setTool(app, 'navigate');
        return;
      case 't':
      case 'T':
        clickButton('train-start');
        return;
      case 'd':
      case 'D':
        clickButton('densify');
        return;
      case 'b':
      case 'B':
        setTool(app, 'brush');
        return;
      case 'e':
      case 'E':
        setTool(app, 'eraser');
        return;
      case '[':
        app.setBrushRadius(st.brushRadius - 1);
        return;
      case ']':
        app.setBrushRadius(st.brushRadius + 1);
        return;
      case 'o':
      case 'O':
        st.outline = !st.outline;
        st.emit('overlay', undefined);
        return;
      case 'h':
      case 'H':
      case 'l':
      case 'L':
        st.showAnnotation = st.showPrediction = !(st.showAnnotation || st.showPrediction);
        st.emit('overlay', undefined);
        return;
      case 'p':
      case 'P':
        app.setShowPreview(!st.showPreview);
        return;
      case 'g':
      case 'G':
        if (!app.goToSuggestion(0)) st.status('No suggestion yet: they come with the first live preview or densify result.');
        return;
      case 'f':
      case 'F':
        app.layout.toggleMaximise(hovered);
        return;
      case 'r':
      case 'R':
        if (hovered === '3d') app.view3d.resetCamera();
        else app.views[hovered].resetCamera();
        if (hovered === '3d') app.view3d.requestRender(0);
        else app.views[hovered].requestRender();
        return;
    }
    if (/^[1-9]$/.test(key)) {
      const id = Number(key);
      if (st.classById(id)) {
        st.activeClass = id;
        if (st.tool === 'navigate' || st.tool === 'eraser') setTool(app, 'brush');
        else st.emit('tool', st.tool);
      }
    }
  });
}

export function setTool(app: App, tool: 'navigate' | 'brush' | 'eraser'): void {
  app.store.tool = tool;
  app.store.emit('tool', tool);
}

/** A shortcut for a panel's button does exactly what a click does (and nothing while it is disabled). */
function clickButton(testid: string): void {
  const b = document.querySelector(`[data-testid="${testid}"]`) as HTMLButtonElement | null;
  if (b && !b.disabled) b.click();
}
