/**
 * SGD with momentum and Adam, PyTorch semantics (torch.optim.SGD with dampening 0, torch.optim.Adam with L2
 * weight decay added to the gradient), with explicit state so checkpoints can hold it.
 */
import type * as TF from '@tensorflow/tfjs';
import type { OptimConfig } from '../../common/engine.js';
import type { Tf } from './backend.js';

export const ADAM_BETA1 = 0.9;
export const ADAM_BETA2 = 0.999;
export const ADAM_EPS = 1e-8;
/** as the native engine: SGD without an explicit momentum uses the paper's 0.99 */
export const DEFAULT_SGD_MOMENTUM = 0.99;

/** State slot names per optimiser (saved as `optim.<param>.<slot>`). */
export function stateSlots(o: OptimConfig): string[] {
  return o.optimizer === 'sgd' ? ['momentum_buffer'] : ['exp_avg', 'exp_avg_sq'];
}

export class Optimizer {
  /** steps taken (Adam bias correction) */
  step = 0;
  lr: number;
  readonly state = new Map<string, TF.Variable[]>();

  constructor(
    private readonly tf: Tf,
    readonly cfg: OptimConfig,
    params: Map<string, TF.Variable>,
  ) {
    this.lr = cfg.lr;
    for (const [name, p] of params) {
      this.state.set(
        name,
        stateSlots(cfg).map((s) => tf.tidy(() => tf.variable(tf.zerosLike(p), false, `${p.name}/${s}`))),
      );
    }
  }

  apply(params: Map<string, TF.Variable>, grads: Record<string, TF.Tensor>): void {
    const tf = this.tf;
    const wd = this.cfg.weightDecay ?? 0;
    this.step += 1;
    const t = this.step;
    tf.tidy(() => {
      for (const [name, p] of params) {
        let g = grads[p.name];
        if (!g) continue;
        if (wd) g = tf.add(g, tf.mul(p, wd));
        const st = this.state.get(name)!;
        if (this.cfg.optimizer === 'sgd') {
          const mom = this.cfg.momentum ?? DEFAULT_SGD_MOMENTUM;
          const buf = st[0]!;
          // torch: first step buf = g; afterwards buf = mom * buf + g (buf starts at 0, so the same)
          buf.assign(mom ? tf.add(tf.mul(buf, mom), g) : g);
          p.assign(tf.sub(p, tf.mul(buf, this.lr)));
        } else {
          const [m, v] = st as [TF.Variable, TF.Variable];
          m.assign(tf.add(tf.mul(m, ADAM_BETA1), tf.mul(g, 1 - ADAM_BETA1)));
          v.assign(tf.add(tf.mul(v, ADAM_BETA2), tf.mul(tf.square(g), 1 - ADAM_BETA2)));
          const bc1 = 1 - ADAM_BETA1 ** t;
          const bc2 = 1 - ADAM_BETA2 ** t;
          const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), ADAM_EPS);
          p.assign(tf.sub(p, tf.mul(tf.div(m, denom), this.lr / bc1)));
        }
      }
    });
  }

  dispose(): void {
    for (const s of this.state.values()) for (const v of s) v.dispose();
    this.state.clear();
  }
}
