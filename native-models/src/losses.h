// The training losses over logits [N, K, spatial..] and labels [N, spatial..] (0 = unannotated, k = class k-1).
// Internal to the addon; the mirror of the loss in main/engine/tfjs.ts.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

namespace sf {

// Weighted cross-entropy: sum_i w[label_i] * CE_i / #annotated (label 0 weighs exactly 0); weights has one entry
// per class (empty = all ones), computed in `dtype` on `device`.
at::Tensor weightedCrossEntropy(const at::Tensor& logits, const at::Tensor& labels, const std::vector<double>& weights,
                                int64_t annotated, int numClasses, at::ScalarType dtype, at::Device device);

// Soft Dice over the annotated voxels of the whole batch ("batch Dice"), averaged over classes 2..K
// (class 1, conventionally background, is left out as in nnU-Net): 1 - mean_k (2 I_k + s) / (P_k + G_k + s)
at::Tensor softDiceLoss(const at::Tensor& logits, const at::Tensor& labels, int numClasses, at::ScalarType dtype);

}  // namespace sf
