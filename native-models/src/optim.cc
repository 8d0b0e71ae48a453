// The optimisers (see optim.h).
#include "optim.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

namespace sf {

using at::Tensor;

void optimizerStep(std::vector<Named>& params, std::map<std::string, Tensor>& state, const OptimConfig& o,
                   int64_t* step) {
  c10::AutoGradMode ng(false);
  const int64_t n = ++*step;
  const double lr = o.lr, wd = o.weightDecay;
  for (auto& p : params) {
    Tensor g = p.t.grad();
    if (!g.defined()) continue;
    if (wd > 0) g = g.add(p.t, wd);
    if (!o.adam) {
      Tensor& buf = state["buf." + p.name];
      if (o.momentum > 0) {
        if (!buf.defined())
          buf = g.clone();
        else
          buf.mul_(o.momentum).add_(g);
        p.t.add_(buf, -lr);
      } else {
        p.t.add_(g, -lr);
      }
    } else {
      Tensor& m = state["m." + p.name];
      Tensor& v = state["v." + p.name];
      if (!m.defined()) m = at::zeros_like(p.t);
      if (!v.defined()) v = at::zeros_like(p.t);
      m.mul_(o.beta1).add_(g, 1 - o.beta1);
      v.mul_(o.beta2).addcmul_(g, g, 1 - o.beta2);
      double bc1 = 1 - std::pow(o.beta1, (double)n), bc2 = 1 - std::pow(o.beta2, (double)n);
      Tensor denom = (v.sqrt() / std::sqrt(bc2)).add_(o.eps);
      p.t.addcdiv_(m, denom, -lr / bc1);
    }
  }
}

}  // namespace sf
