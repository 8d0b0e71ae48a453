// The U-Net: construction and forward pass (see network.h).
#include "network.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace sf {

Tensor Network::newParam(const std::string& name, std::vector<int64_t> shape, double stdv, bool bn) {
  Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype_));
  if (stdv > 0)
    t.normal_(0.0, stdv, gen_);
  else
    t.fill_(bn ? 1.0 : 0.0);
  t = t.to(device_);
  if (opt_.channelsLast && t.dim() == cfg_.dims + 2) t = t.contiguous(memFormat());
  t.set_requires_grad(true);
  params_.push_back({name, t});
  return t;
}
Tensor Network::newBuffer(const std::string& name, int64_t n, double v) {
  Tensor t = at::full({n}, v, at::TensorOptions().dtype(dtype_)).to(device_);
  buffers_.push_back({name, t});
  return t;
}

Network::Conv Network::makeConv(const std::string& pre, int idx, int64_t cin, int64_t cout, int k, bool bn) {
  Conv c;
  std::vector<int64_t> shape = {cout, cin};
  for (int d = 0; d < cfg_.dims; d++) shape.push_back(k);
  int64_t fanIn = cin;
  for (int d = 0; d < cfg_.dims; d++) fanIn *= k;
  std::string n = pre + ".conv" + std::to_string(idx);
  if (k == 1) n = pre;
  c.w = newParam(n + ".weight", shape, std::sqrt(2.0 / fanIn));  // He et al. init, as in the paper
  c.b = newParam(n + ".bias", {cout}, 0);
  paramCount_ += c.w.numel() + c.b.numel();
  if (bn) {
    std::string b = pre + ".bn" + std::to_string(idx);
    c.g = newParam(b + ".weight", {cout}, 0, true);
    c.beta = newParam(b + ".bias", {cout}, 0, false);
    c.rm = newBuffer(b + ".running_mean", cout, 0.0);
    c.rv = newBuffer(b + ".running_var", cout, 1.0);
    bnParamCount_ += 2 * cout;
  }
  return c;
}

void Network::build(const NetConfig& cfg, const Options& o, at::Device device, at::ScalarType dtype) {
  cfg_ = cfg;
  opt_ = o;
  device_ = device;
  dtype_ = dtype;
  gen_ = at::detail::createCPUGenerator(static_cast<uint64_t>(opt_.seed));
  const int L = cfg_.levels;
  const int64_t b = cfg_.baseFilters;
  int64_t cin = cfg_.inChannels;
  for (int l = 0; l < L; l++) {
    std::string pre = "enc" + std::to_string(l);
    int64_t mid = b << l, out = b << (l + 1);
    enc_.push_back({makeConv(pre, 1, cin, mid, 3, cfg_.batchNorm), makeConv(pre, 2, mid, out, 3, cfg_.batchNorm)});
    cin = out;
  }
  dec_.resize(L > 1 ? L - 1 : 0);
  for (int l = L - 2; l >= 0; l--) {
    std::string pre = "dec" + std::to_string(l);
    int64_t up = b << (l + 2), skip = b << (l + 1);
    std::vector<int64_t> shape = {up, up};  // ConvTranspose layout [in, out, k..]
    for (int d = 0; d < cfg_.dims; d++) shape.push_back(2);
    int64_t fanIn = up * (cfg_.dims == 3 ? 8 : 4);
    Dec& dd = dec_[l];
    dd.up = newParam(pre + ".upconv.weight", shape, std::sqrt(2.0 / fanIn));
    paramCount_ += dd.up.numel();
    dd.c1 = makeConv(pre, 1, up + skip, skip, 3, cfg_.batchNorm);
    dd.c2 = makeConv(pre, 2, skip, skip, 3, cfg_.batchNorm);
  }
  out_ = makeConv("out", 0, b << 1, cfg_.numClasses, 1, false);  // dec0 (or enc0 when levels = 1) has 2b channels
}

at::MemoryFormat Network::memFormat() const {
  return cfg_.dims == 3 ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::ChannelsLast;
}

Tensor Network::conv(const Tensor& x, const Conv& c, int pad) const {
  std::vector<int64_t> stride(cfg_.dims, 1), padding(cfg_.dims, pad);
  return cfg_.dims == 3 ? at::conv3d(x, c.w, c.b, stride, padding) : at::conv2d(x, c.w, c.b, stride, padding);
}

Tensor Network::convBnRelu(const Tensor& x, const Conv& c, bool train, bool updateStats) const {
  Tensor y = conv(x, c, cfg_.padSame ? 1 : 0);
  if (cfg_.batchNorm) {
    bool useBatch = train || cfg_.bnBatchAtTest;
    bool passStats = train ? updateStats : !cfg_.bnBatchAtTest;
    y = at::batch_norm(y, c.g, c.beta, passStats ? c.rm : Tensor(), passStats ? c.rv : Tensor(), useBatch, 0.1,
                       1e-5, true);
  }
  return at::relu_(y);
}

Tensor Network::centreCrop(const Tensor& x, const Tensor& like) {
  Tensor y = x;
  for (int64_t d = 2; d < x.dim(); d++) {
    int64_t off = (x.size(d) - like.size(d)) / 2;
    if (off > 0 || x.size(d) != like.size(d)) y = y.narrow(d, off, like.size(d));
  }
  return y;
}

Tensor Network::forward(Tensor x, bool train, bool updateStats) const {
  const int L = cfg_.levels;
  std::vector<Tensor> skips;
  for (int l = 0; l < L; l++) {
    x = convBnRelu(x, enc_[l][0], train, updateStats);
    x = convBnRelu(x, enc_[l][1], train, updateStats);
    if (l < L - 1) {
      skips.push_back(x);
      std::vector<int64_t> k(cfg_.dims, 2);
      x = cfg_.dims == 3 ? at::max_pool3d(x, k, k) : at::max_pool2d(x, k, k);
    }
  }
  for (int l = L - 2; l >= 0; l--) {
    std::vector<int64_t> s(cfg_.dims, 2);
    x = cfg_.dims == 3 ? at::conv_transpose3d(x, dec_[l].up, Tensor(), s)
                       : at::conv_transpose2d(x, dec_[l].up, Tensor(), s);
    Tensor sk = centreCrop(skips[l], x);
    x = at::cat({sk, x}, 1);
    if (opt_.channelsLast) x = x.contiguous(memFormat());
    skips[l] = Tensor();
    x = convBnRelu(x, dec_[l].c1, train, updateStats);
    x = convBnRelu(x, dec_[l].c2, train, updateStats);
  }
  return conv(x, out_, 0);
}

void Network::release() {
  params_.clear();
  buffers_.clear();
  enc_.clear();
  dec_.clear();
  out_ = Conv();
}

std::vector<Named> Network::tensors() const {
  std::vector<Named> all = params_;
  all.insert(all.end(), buffers_.begin(), buffers_.end());
  return all;
}

}  // namespace sf
