// Moved to main/volume (shared maths below training and inference); this shim goes at 11:45 UTC.
export * from '../volume/predict.js';
