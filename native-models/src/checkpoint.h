// The checkpoint format (weights.pt of a model folder) and the exchange of named tensors with plain arrays.
// Internal to the addon; the mirror of main/engine/tfjs/checkpoint.ts. The format (little-endian, docs/engine.md):
//   magic[16] u32 version | i32 dims inCh classes levels base padSame batchNorm bnBatch |
//   u8 adam | f64 lr momentum weightDecay | i64 step | u32 n | n x (u32 len, name, u32 ndim, i64 dims.., f32 data)
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model.h"
#include "network.h"

namespace sf {

constexpr char kMagic[16] = {'S', 'L', 'I', 'C', 'E', 'F', 'O', 'R', 'M', '-', 'C', 'K', 'P', 'T', '\n', '\0'};
constexpr uint32_t kFormatVersion = 1;

// Writes the checkpoint atomically (temporary file, fsync, rename); errors name `path`.
void writeCheckpoint(const std::string& path, const NetConfig& cfg, const OptimConfig& optim, int64_t step,
                     const std::vector<Named>& tensors);

struct CheckpointData {
  bool adam = false;
  double optim[3] = {0, 0, 0};  // lr, momentum, weightDecay as saved
  int64_t step = 0;
  std::vector<NamedArray> arrays;
};

// Reads a checkpoint; refuses one saved for another network config than `expect` (bnAtTest may differ) before
// reading its tensors. Errors are "bad-input" and name `path`.
CheckpointData readCheckpoint(const std::string& path, const NetConfig& expect);

// A tensor as a float32 host array.
NamedArray toArray(const std::string& name, const at::Tensor& t);
// Refuses an array whose shape or length differs from the tensor's ("<where>: tensor <name> has shape ...").
void checkShape(const NamedArray& a, const at::Tensor& t, const std::string& where);
// Copies the array into the tensor in place (no gradient).
void copyInto(at::Tensor& t, const NamedArray& a);

}  // namespace sf
