/**
 * Messages between the app process (web-shell server / Electron main) and the compute process
 * (node child_process.fork, or Electron utilityProcess). Both sides validate what they receive.
 * Typed arrays travel by structured clone ('advanced' serialization / utilityProcess messages).
 */
import { z } from 'zod';

const typed = z.custom<ArrayBufferView>((v) => ArrayBuffer.isView(v), 'expected a typed array');
const apiErrorInfo = z.object({
  code: z.string(),
  message: z.string(),
  file: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});
const progress = z.object({
  fraction: z.number(),
  etaSeconds: z.number().optional(),
  stage: z.string().optional(),
  message: z.string().optional(),
  details: z.record(z.string(), z.union([z.number(), z.string(), z.undefined()])).optional(),
});

export const ComputeJobKind = z.enum(['train', 'densify', 'evaluate', 'batch', 'selftest']);
export type ComputeJobKind = z.infer<typeof ComputeJobKind>;

export const ToCompute = z.discriminatedUnion('type', [
  z.object({ type: z.literal('start'), jobId: z.string(), kind: ComputeJobKind, payload: z.unknown() }),
  z.object({ type: z.literal('cancel'), jobId: z.string() }),
  /** graceful stop: finish the current iteration and return what was trained so far */
  z.object({ type: z.literal('stop'), jobId: z.string() }),
  z.object({ type: z.literal('info') }),
]);
export type ToCompute = z.infer<typeof ToCompute>;

export const ComputeInfo = z.object({
  engine: z
    .object({ name: z.enum(['native', 'tfjs']), version: z.string(), devices: z.array(z.enum(['cpu', 'cuda'])), backend: z.string().optional(), threads: z.number().optional() })
    .nullable(),
  engineError: z.string().optional(),
  features: z.record(z.string(), z.boolean()),
  pid: z.number(),
});
export type ComputeInfo = z.infer<typeof ComputeInfo>;

export const FromCompute = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready'), pid: z.number() }),
  z.object({ type: z.literal('info'), info: ComputeInfo }),
  z.object({ type: z.literal('progress'), jobId: z.string(), progress }),
  z.object({ type: z.literal('done'), jobId: z.string(), result: z.unknown() }),
  z.object({ type: z.literal('failed'), jobId: z.string(), error: apiErrorInfo }),
  /** the child could not parse a message it was sent */
  z.object({ type: z.literal('protocol-error'), message: z.string() }),
]);
export type FromCompute = z.infer<typeof FromCompute>;

/** A volume as sent to the compute process (one time point, channel-planar, x fastest). */
export const ComputeVolume = z.object({
  id: z.string(),
  data: typed,
  dtype: z.string(),
  shape: z.object({ x: z.number(), y: z.number(), z: z.number(), c: z.number(), t: z.number() }),
  spacing: z.object({ x: z.number(), y: z.number(), z: z.number(), unit: z.string() }),
  labels: z.instanceof(Uint8Array),
});
export type ComputeVolume = z.infer<typeof ComputeVolume>;
