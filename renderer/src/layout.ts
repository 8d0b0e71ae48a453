/**
 * The 2x2 view grid: xy | yz over xz | 3D (Fiji's orthogonal-view arrangement, so xy and yz share y and xy and
 * xz share x). The splitters between columns and rows drag; any cell can be maximised (double-click its title
 * or press F over it) and restored.
 */
import { el } from './dom.js';

export type ViewId = 'xy' | 'xz' | 'yz' | '3d';

export interface ViewCell {
  id: ViewId;
  root: HTMLElement;
  header: HTMLElement;
  /** vtk.js render window container */
  canvasHost: HTMLElement;
  footer: HTMLElement;
}

export class Layout {
  readonly root: HTMLElement;
  readonly cells: Record<ViewId, ViewCell>;
  private col = 0.5;
  private row = 0.5;
  maximised: ViewId | null = null;
  onChange: () => void = () => {};

  constructor() {
    const mk = (id: ViewId, title: string): ViewCell => {
      const header = el('div', { class: 'view-header' }, el('span', { class: 'view-title' }, title));
      const canvasHost = el('div', { class: 'view-canvas', testid: `view-${id}`, tabindex: 0 });
      const footer = el('div', { class: 'view-footer' });
      const root = el('section', { class: `view-cell view-${id}`, testid: `cell-${id}` }, header, canvasHost, footer);
      header.addEventListener('dblclick', () => this.toggleMaximise(id));
      return { id, root, header, canvasHost, footer };
    };
    this.cells = { xy: mk('xy', 'XY'), yz: mk('yz', 'YZ'), xz: mk('xz', 'XZ'), '3d': mk('3d', '3D') };
    const vSplit = el('div', { class: 'splitter splitter-v', testid: 'splitter-v' });
    const hSplit = el('div', { class: 'splitter splitter-h', testid: 'splitter-h' });
    this.root = el('div', { class: 'view-grid', testid: 'view-grid' }, this.cells.xy.root, vSplit, this.cells.yz.root, hSplit, this.cells.xz.root, this.cells['3d'].root);
    this.drag(vSplit, (fx) => (this.col = fx), 'x');
    this.drag(hSplit, (_fx, fy) => (this.row = fy), 'y');
    this.apply();
  }

  private drag(handle: HTMLElement, set: (fx: number, fy: number) => void, axis: 'x' | 'y'): void {
    handle.addEventListener('pointerdown', (ev) => {
      ev.preventDefault();
      handle.setPointerCapture(ev.pointerId);
      const move = (e: PointerEvent) => {
        const r = this.root.getBoundingClientRect();
        const fx = Math.min(0.85, Math.max(0.15, (e.clientX - r.left) / r.width));
        const fy = Math.min(0.85, Math.max(0.15, (e.clientY - r.top) / r.height));
        set(axis === 'x' ? fx : this.col, axis === 'y' ? fy : this.row);
        this.apply();
      };
      const up = () => {
        handle.removeEventListener('pointermove', move);
        handle.removeEventListener('pointerup', up);
      };
      handle.addEventListener('pointermove', move);
      handle.addEventListener('pointerup', up);
    });
  }

  setSplit(col: number, row: number): void {
    this.col = col;
    this.row = row;
    this.apply();
  }

  toggleMaximise(id: ViewId): void {
    this.maximised = this.maximised === id ? null : id;
    this.apply();
  }

  private apply(): void {
    const g = this.root;
    g.style.gridTemplateColumns = `${this.col}fr 6px ${1 - this.col}fr`;
    g.style.gridTemplateRows = `${this.row}fr 6px ${1 - this.row}fr`;
    g.classList.toggle('maximised', this.maximised !== null);
    for (const c of Object.values(this.cells)) {
      c.root.classList.toggle('is-max', c.id === this.maximised);
      c.root.dataset.maximised = c.id === this.maximised ? '1' : '0';
    }
    this.onChange();
  }
}
