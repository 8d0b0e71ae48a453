/**
 * The keyboard shortcuts, as napari and ilastik users expect them, in one table: interaction.ts dispatches
 * on it and the help overlay (`?`, Esc closes it) lists it, so the two never disagree.
 */
import { button, el } from '../dom.js';

export interface Shortcut {
  /** the keys as shown to the user */
  keys: string[];
  what: string;
  group: 'Tools' | 'Slices and views' | 'Labels' | 'Model' | 'Help';
}

export const SHORTCUTS: readonly Shortcut[] = [
  { keys: ['1', '…', '9'], what: 'pick class 1–9 (and the brush)', group: 'Tools' },
  { keys: ['B'], what: 'brush', group: 'Tools' },
  { keys: ['E'], what: 'eraser (back to unannotated)', group: 'Tools' },
  { keys: ['N'], what: 'navigate (click moves the crosshair)', group: 'Tools' },
  { keys: ['['], what: 'smaller brush', group: 'Tools' },
  { keys: [']'], what: 'larger brush', group: 'Tools' },
  { keys: ['Ctrl+Z'], what: 'undo the last stroke', group: 'Tools' },
  { keys: ['Ctrl+Shift+Z', 'Ctrl+Y'], what: 'redo', group: 'Tools' },
  { keys: ['↑', '↓'], what: 'next / previous slice of the view under the pointer', group: 'Slices and views' },
  { keys: ['PageUp', 'PageDown'], what: '10 slices forward / back', group: 'Slices and views' },
  { keys: ['wheel'], what: 'step slices (Shift: 5 at a time); Ctrl+wheel zooms', group: 'Slices and views' },
  { keys: ['F'], what: 'maximise / restore the view under the pointer', group: 'Slices and views' },
  { keys: ['R'], what: 'reset the zoom of the view under the pointer', group: 'Slices and views' },
  { keys: ['H'], what: 'hide / show the labels (annotation and result)', group: 'Labels' },
  { keys: ['O'], what: 'labels as outlines only', group: 'Labels' },
  { keys: ['P'], what: 'show / hide the live preview layer', group: 'Labels' },
  { keys: ['T'], what: 'train on the annotation', group: 'Model' },
  { keys: ['D'], what: 'densify: segment the whole stack', group: 'Model' },
  { keys: ['G'], what: 'go to the slice to annotate next (best suggestion)', group: 'Model' },
  { keys: ['?'], what: 'this help', group: 'Help' },
  { keys: ['Esc'], what: 'close this help (else: navigate tool)', group: 'Help' },
];

/** The help overlay: hidden until `?`; Esc, the close button or a click beside the card hide it. */
export class ShortcutHelp {
  readonly root: HTMLElement;

  constructor() {
    const groups = [...new Set(SHORTCUTS.map((s) => s.group))];
    const card = el(
      'div',
      { class: 'shortcut-card' },
      el('div', { class: 'shortcut-head' }, el('strong', {}, 'Keyboard shortcuts'), button('×', 'shortcut-close', () => this.hide(), 'close (Esc)')),
      ...groups.map((g) =>
        el(
          'section',
          {},
          el('div', { class: 'subhead' }, g),
          el(
            'table',
            {},
            ...SHORTCUTS.filter((s) => s.group === g).map((s) =>
              el('tr', { testid: 'shortcut-row' }, el('td', {}, ...s.keys.flatMap((k, i) => [i ? ' ' : null, el('kbd', {}, k)])), el('td', {}, s.what)),
            ),
          ),
        ),
      ),
    );
    this.root = el('div', { class: 'shortcut-help', testid: 'shortcut-help', role: 'dialog', 'aria-label': 'Keyboard shortcuts', hidden: true }, card);
    this.root.addEventListener('click', (e) => {
      if (e.target === this.root) this.hide();
    });
  }

  get open(): boolean {
    return !this.root.hidden;
  }

  show(): void {
    this.root.hidden = false;
  }

  hide(): void {
    this.root.hidden = true;
  }

  toggle(): void {
    if (this.open) this.hide();
    else this.show();
  }
}
