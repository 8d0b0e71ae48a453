// The U-Net of Çiçek et al. 2016 as plain ATen tensors: construction (He init, names stable for checkpoints and
// for the TF.js engine's weight mapping, docs/engine.md) and the forward pass. Internal to the addon; the mirror
// of main/engine/tfjs/unet.ts.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "model.h"

namespace sf {

using at::Tensor;

struct Named {
  std::string name;
  Tensor t;
};

class Network {
 public:
  // Creates every parameter (seeded by o.seed) and BN buffer on `device` in `dtype`.
  void build(const NetConfig& cfg, const Options& o, at::Device device, at::ScalarType dtype);
  // Frees every tensor (the model's destructor calls this before it lets the allocator empty its cache).
  void release();

  // Logits; train = batch statistics for BN, updateStats = update the running statistics (training only).
  Tensor forward(Tensor x, bool train, bool updateStats) const;
  at::MemoryFormat memFormat() const;

  std::vector<Named>& params() { return params_; }
  std::vector<Named>& buffers() { return buffers_; }
  // parameters then BN buffers, in creation order: the model's named tensors
  std::vector<Named> tensors() const;
  int64_t paramCount() const { return paramCount_; }
  int64_t bnParamCount() const { return bnParamCount_; }

 private:
  struct Conv {
    Tensor w, b;
    Tensor g, beta, rm, rv;  // BN
  };
  struct Dec {
    Tensor up;
    Conv c1, c2;
  };

  Tensor newParam(const std::string& name, std::vector<int64_t> shape, double stdv, bool bn = false);
  Tensor newBuffer(const std::string& name, int64_t n, double v);
  Conv makeConv(const std::string& pre, int idx, int64_t cin, int64_t cout, int k, bool bn);
  Tensor conv(const Tensor& x, const Conv& c, int pad) const;
  Tensor convBnRelu(const Tensor& x, const Conv& c, bool train, bool updateStats) const;
  static Tensor centreCrop(const Tensor& x, const Tensor& like);

  NetConfig cfg_;
  Options opt_;
  at::Device device_ = at::Device(at::kCPU);
  at::ScalarType dtype_ = at::kFloat;
  at::Generator gen_;
  std::vector<std::array<Conv, 2>> enc_;
  std::vector<Dec> dec_;
  Conv out_;
  std::vector<Named> params_, buffers_;
  int64_t paramCount_ = 0, bnParamCount_ = 0;
};

}  // namespace sf
