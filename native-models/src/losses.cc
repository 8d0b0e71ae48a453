// The training losses (see losses.h).
#include "losses.h"

#include <ATen/ATen.h>

namespace sf {

using at::Tensor;

Tensor weightedCrossEntropy(const Tensor& logits, const Tensor& labels, const std::vector<double>& weights,
                            int64_t annotated, int numClasses, at::ScalarType dtype, at::Device device) {
  Tensor logp = at::log_softmax(logits.to(dtype), 1);
  Tensor target = (labels - 1).clamp_min(0).unsqueeze(1);
  Tensor nll = -logp.gather(1, target).squeeze(1);
  std::vector<double> wt(numClasses + 1, 1.0);
  wt[0] = 0.0;
  for (size_t k = 0; k < weights.size(); k++) wt[k + 1] = weights[k];
  Tensor wtab = at::tensor(wt, at::TensorOptions().dtype(at::kDouble)).to(device, dtype);
  Tensor w = wtab.index_select(0, labels.reshape({-1})).reshape(labels.sizes());
  return (w * nll).sum() / static_cast<double>(annotated);
}

Tensor softDiceLoss(const Tensor& logits, const Tensor& labels, int numClasses, at::ScalarType dtype) {
  const int64_t K = numClasses;
  Tensor prob = at::softmax(logits.to(dtype), 1);
  Tensor mask = labels.gt(0).unsqueeze(1).to(prob.scalar_type());
  Tensor target = (labels - 1).clamp_min(0).unsqueeze(1);
  Tensor onehot = at::zeros_like(prob).scatter_(1, target, 1.0) * mask;
  Tensor p = prob * mask;
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < prob.dim(); d++) dims.push_back(d);
  Tensor inter = (p * onehot).sum(dims), denom = p.sum(dims) + onehot.sum(dims);
  const double s = 1e-5;
  Tensor dice = (inter * 2 + s) / (denom + s);
  return 1 - dice.slice(0, 1, K).mean();
}

}  // namespace sf
