// The checkpoint format and named-tensor exchange (see checkpoint.h).
#include "checkpoint.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#ifndef _WIN32
#include <unistd.h>
#endif

namespace sf {

using at::Tensor;

void writeCheckpoint(const std::string& path, const NetConfig& cfg, const OptimConfig& optim, int64_t step,
                     const std::vector<Named>& tensors) {
  std::string tmp = path + ".tmp-" + std::to_string(
#ifndef _WIN32
                                          (long)getpid()
#else
                                          0L
#endif
                                          ) +
                    "-" + std::to_string(std::random_device{}());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error("bad-input", path + ": cannot write checkpoint (" + std::strerror(errno) + ")");
  bool ok = true;
  auto w = [&](const void* p, size_t n) { ok = ok && std::fwrite(p, 1, n, f) == n; };
  try {
    w(kMagic, 16);
    w(&kFormatVersion, 4);
    int32_t c[8] = {cfg.dims, cfg.inChannels, cfg.numClasses, cfg.levels, cfg.baseFilters,
                    cfg.padSame, cfg.batchNorm, cfg.bnBatchAtTest};
    w(c, sizeof c);
    uint8_t adam = optim.adam;
    w(&adam, 1);
    double o[3] = {optim.lr, optim.momentum, optim.weightDecay};
    w(o, sizeof o);
    w(&step, 8);
    uint32_t n = tensors.size();
    w(&n, 4);
    for (auto& nt : tensors) {
      uint32_t len = nt.name.size();
      w(&len, 4);
      w(nt.name.data(), len);
      uint32_t nd = nt.t.dim();
      w(&nd, 4);
      for (auto s : nt.t.sizes()) {
        int64_t v = s;
        w(&v, 8);
      }
      Tensor h = nt.t.detach().to(at::kCPU, at::kFloat).contiguous();
      w(h.data_ptr<float>(), h.numel() * sizeof(float));
    }
    ok = ok && std::fflush(f) == 0;
#ifndef _WIN32
    ok = ok && fsync(fileno(f)) == 0;
#endif
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  int err = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    throw Error("engine", path + ": writing checkpoint failed (" + std::strerror(err) + ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    std::remove(tmp.c_str());
    throw Error("engine", path + ": cannot rename checkpoint into place (" + std::strerror(err) + ")");
  }
}

CheckpointData readCheckpoint(const std::string& path, const NetConfig& expect) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("bad-input", path + ": cannot open checkpoint (" + std::strerror(errno) + ")");
  auto bad = [&](const std::string& m) -> Error { return Error("bad-input", path + ": " + m); };
  auto r = [&](void* p, size_t n) {
    if (!f.read(static_cast<char*>(p), n)) throw bad("truncated checkpoint");
  };
  char magic[16];
  if (!f.read(magic, 16) || std::memcmp(magic, kMagic, 16) != 0) throw bad("not a Sliceform checkpoint (bad magic)");
  uint32_t ver;
  r(&ver, 4);
  if (ver != kFormatVersion) throw bad("unsupported checkpoint format version " + std::to_string(ver));
  int32_t c[8];
  r(c, sizeof c);
  NetConfig fc;
  fc.dims = c[0], fc.inChannels = c[1], fc.numClasses = c[2], fc.levels = c[3], fc.baseFilters = c[4];
  fc.padSame = c[5], fc.batchNorm = c[6], fc.bnBatchAtTest = c[7];
  if (fc.dims != expect.dims || fc.inChannels != expect.inChannels || fc.numClasses != expect.numClasses ||
      fc.levels != expect.levels || fc.baseFilters != expect.baseFilters || fc.padSame != expect.padSame ||
      fc.batchNorm != expect.batchNorm)
    throw bad("checkpoint was saved for network config " + configString(fc) + " but this model is " +
              configString(expect) + "; create a model with the checkpoint's config");
  CheckpointData d;
  uint8_t adam;
  r(&adam, 1);
  d.adam = adam;
  r(d.optim, sizeof d.optim);
  r(&d.step, 8);
  uint32_t n;
  r(&n, 4);
  if (n > 100000) throw bad("corrupt checkpoint (tensor count " + std::to_string(n) + ")");
  d.arrays.resize(n);
  for (auto& a : d.arrays) {
    uint32_t len;
    r(&len, 4);
    if (len > 4096) throw bad("corrupt checkpoint (name length)");
    a.name.resize(len);
    r(a.name.data(), len);
    uint32_t nd;
    r(&nd, 4);
    if (nd > 8) throw bad("corrupt checkpoint (rank of " + a.name + ")");
    a.shape.resize(nd);
    int64_t numel = 1;
    for (auto& s : a.shape) {
      r(&s, 8);
      if (s < 0 || s > (int64_t(1) << 32)) throw bad("corrupt checkpoint (shape of " + a.name + ")");
      numel *= s;
    }
    if (numel > (int64_t(1) << 32)) throw bad("corrupt checkpoint (size of " + a.name + ")");
    a.data.resize(numel);
    r(a.data.data(), numel * sizeof(float));
  }
  return d;
}

NamedArray toArray(const std::string& name, const Tensor& t) {
  NamedArray a;
  a.name = name;
  a.shape.assign(t.sizes().begin(), t.sizes().end());
  Tensor h = t.detach().to(at::kCPU, at::kFloat).contiguous();
  a.data.resize(h.numel());
  std::memcpy(a.data.data(), h.data_ptr<float>(), a.data.size() * sizeof(float));
  return a;
}

void checkShape(const NamedArray& a, const Tensor& t, const std::string& where) {
  std::vector<int64_t> want(t.sizes().begin(), t.sizes().end());
  auto str = [](const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); i++) r += (i ? "," : "") + std::to_string(s[i]);
    return r + "]";
  };
  if (a.shape != want)
    throw Error("bad-input", where + ": tensor " + a.name + " has shape " + str(a.shape) + ", expected " + str(want));
  int64_t n = 1;
  for (auto s : a.shape) n *= s;
  if ((int64_t)a.data.size() != n)
    throw Error("bad-input", where + ": tensor " + a.name + " has " + std::to_string(a.data.size()) +
                                 " values, shape " + str(a.shape) + " needs " + std::to_string(n));
}

void copyInto(Tensor& t, const NamedArray& a) {
  c10::AutoGradMode ng(false);
  Tensor src = at::from_blob(const_cast<float*>(a.data.data()), a.shape, at::TensorOptions().dtype(at::kFloat));
  t.copy_(src);
}

}  // namespace sf
