// The U-Net, the loss, the optimizers, predict and checkpoints over ATen (libtorch 1.13 .. 2.x).
// Pure C++: no N-API here. Parameters are plain tensors held in named lists so that the names are
// stable for checkpoints and for the TF.js engine's weight mapping (see docs/engine.md).
#include "model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <map>
#include <unordered_map>
#include <mutex>
#include <random>
#include <sstream>

#ifndef _WIN32
#include <unistd.h>
#endif

#define SF_TORCH_AT_LEAST(maj, min) \
  (TORCH_VERSION_MAJOR > (maj) || (TORCH_VERSION_MAJOR == (maj) && TORCH_VERSION_MINOR >= (min)))

namespace sf {

using at::Tensor;

// ---------------------------------------------------------------------------------------------
// shape maths

int64_t unetOutputSize(int64_t n, int levels, bool padSame) {
  if (padSame) return (n > 0 && n % (int64_t(1) << (levels - 1)) == 0) ? n : -1;
  int64_t s = n;
  for (int l = 0; l < levels - 1; l++) {
    s -= 4;
    if (s <= 0 || s % 2 != 0) return -1;
    s /= 2;
  }
  s -= 4;
  if (s <= 0) return -1;
  for (int l = 0; l < levels - 1; l++) {
    s = s * 2 - 4;
    if (s <= 0) return -1;
  }
  return s;
}

int64_t validInputSize(int64_t near, int levels, bool padSame) {
  for (int64_t d = 0; d < 4096; d++) {
    for (int64_t n : {near + d, near - d})
      if (n > 0 && unetOutputSize(n, levels, padSame) > 0) return n;
  }
  return -1;
}

std::string configString(const NetConfig& c) {
  std::ostringstream s;
  s << "{dims: " << c.dims << ", inChannels: " << c.inChannels << ", numClasses: " << c.numClasses
    << ", levels: " << c.levels << ", baseFilters: " << c.baseFilters
    << ", padding: " << (c.padSame ? "same" : "valid") << ", batchNorm: " << (c.batchNorm ? "true" : "false")
    << "}";
  return s.str();
}

void validateConfig(const NetConfig& c) {
  auto bad = [](const std::string& m) { throw Error("bad-input", "invalid network config: " + m); };
  if (c.dims != 2 && c.dims != 3) bad("dims must be 2 or 3, got " + std::to_string(c.dims));
  if (c.inChannels < 1 || c.inChannels > 1024) bad("inChannels must be 1..1024, got " + std::to_string(c.inChannels));
  if (c.numClasses < 2 || c.numClasses > 65535) bad("numClasses must be 2..65535, got " + std::to_string(c.numClasses));
  if (c.levels < 1 || c.levels > 8) bad("levels must be 1..8, got " + std::to_string(c.levels));
  if (c.baseFilters < 1 || (int64_t(c.baseFilters) << c.levels) > (int64_t(1) << 16))
    bad("baseFilters must be >= 1 and baseFilters * 2^levels <= 65536, got " + std::to_string(c.baseFilters));
}

std::string torchVersion() { return TORCH_VERSION; }

bool cudaAvailable() {
  try {
    return torch::cuda::is_available();
  } catch (...) {
    return false;
  }
}

void setThreads(int n) {
  if (n > 0) at::set_num_threads(n);
}
int getThreads() { return at::get_num_threads(); }

// ---------------------------------------------------------------------------------------------
// errors: turn libtorch's exceptions into sf::Error with a user-facing message

[[noreturn]] static void rethrow(const char* what, const std::string& context) {
  std::string m = what;
  // c10 messages carry a long C++ backtrace after the first line(s); keep the headline.
  auto cut = m.find("\nException raised from");
  if (cut != std::string::npos) m = m.substr(0, cut);
  bool oom = m.find("out of memory") != std::string::npos || m.find("can't allocate memory") != std::string::npos ||
             m.find("bad_alloc") != std::string::npos;
  if (oom) throw Error("oom", "out of memory during " + context + ": " + m + " (use a smaller tile or batch)");
  throw Error("engine", context + " failed: " + m);
}

template <typename F>
static auto guarded(const std::string& context, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    rethrow("std::bad_alloc", context);
  } catch (const std::exception& e) {
    rethrow(e.what(), context);
  }
}

static double availableHostBytes() {
#ifdef __linux__
  std::ifstream f("/proc/meminfo");
  std::string key;
  double kb;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024.0;
#endif
  return -1;
}


// ---------------------------------------------------------------------------------------------
// CPU caching allocator
//
// Activations are allocated and freed afresh in every call; glibc serves big blocks from mmap, so each call
// page-faults and zeroes every activation again (measured: a third of the CPU time of a forward pass went to
// the kernel, in this addon and in PyTorch alike). A training loop allocates the same sizes every step, so
// freed blocks >= 1 MiB are kept and handed out again (same size, or up to 1/8 larger). The cache is bounded
// (SLICEFORM_CPU_CACHE_MB, default a quarter of physical memory; 0 turns it off) and emptied when the last
// model is disposed. Blocks use context == data and raw_deleter(), as mkldnn's raw_allocate() requires.

namespace {

class CachingCPUAllocator;
CachingCPUAllocator* gAllocator = nullptr;

class CachingCPUAllocator final : public c10::Allocator {
 public:
  explicit CachingCPUAllocator(size_t cap) : cap_(cap) {}

  // libtorch 1.13 declares allocate() const, 2.x non-const: define both (each overrides on its version)
  c10::DataPtr allocate(size_t n) const { return const_cast<CachingCPUAllocator*>(this)->alloc(n); }
  c10::DataPtr allocate(size_t n) { return alloc(n); }
  // pure virtual since libtorch 2.3; a harmless extra method before
  void copy_data(void* dest, const void* src, size_t count) const { std::memcpy(dest, src, count); }
  c10::DeleterFnPtr raw_deleter() const override { return &CachingCPUAllocator::release; }

  size_t cachedBytes() {
    std::lock_guard<std::mutex> l(mu_);
    return cached_;
  }
  void emptyCache() {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& kv : free_) std::free(kv.second);
    free_.clear();
    cached_ = 0;
  }

 private:
  static constexpr size_t kMin = size_t(1) << 20;
  static constexpr size_t kRound = size_t(1) << 16;

  c10::DataPtr alloc(size_t n) {
    size_t want = n < kMin ? n : (n + kRound - 1) / kRound * kRound;
    void* p = nullptr;
    size_t got = want;
    if (n >= kMin) {
      std::lock_guard<std::mutex> l(mu_);
      auto it = free_.lower_bound(want);
      if (it != free_.end() && it->first <= want + want / 8) {
        p = it->second;
        got = it->first;
        cached_ -= got;
        free_.erase(it);
      } else {
        // make room: the cache plus this block stays under the cap
        while (!free_.empty() && cached_ + want > cap_) {
          auto big = std::prev(free_.end());
          std::free(big->second);
          cached_ -= big->first;
          free_.erase(big);
        }
      }
    }
    if (!p && want > 0) {
      if (posix_memalign(&p, 64, want) != 0 || !p) {
        emptyCache();  // give the cache back and try once more before reporting OOM
        p = nullptr;
        if (posix_memalign(&p, 64, want) != 0 || !p)
          throw Error("oom", "out of memory: cannot allocate " + std::to_string(want >> 20) + " MiB on the CPU");
      }
    }
    if (p && n >= kMin) {
      std::lock_guard<std::mutex> l(mu_);
      live_[p] = got;
    }
    return c10::DataPtr(p, p, &CachingCPUAllocator::release, c10::Device(c10::DeviceType::CPU));
  }

  static void release(void* p) {
    if (!p) return;
    CachingCPUAllocator* self = gAllocator;
    {
      std::lock_guard<std::mutex> l(self->mu_);
      auto it = self->live_.find(p);
      if (it != self->live_.end()) {
        size_t size = it->second;
        self->live_.erase(it);
        if (self->cached_ + size <= self->cap_) {
          self->free_.emplace(size, p);
          self->cached_ += size;
          return;
        }
      }
    }
    std::free(p);
  }

  size_t cap_;
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> live_;  // blocks >= kMin that are in use
  size_t cached_ = 0;
};

std::mutex gAllocMu;
int gLiveModels = 0;

void installAllocator() {
  std::lock_guard<std::mutex> l(gAllocMu);
  gLiveModels++;
  if (gAllocator) return;
  double total = 0;
#ifdef __linux__
  total = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
#endif
  size_t cap = total > 0 ? (size_t)(total / 4) : (size_t(4) << 30);
  if (const char* e = std::getenv("SLICEFORM_CPU_CACHE_MB")) cap = (size_t)std::strtoull(e, nullptr, 10) << 20;
  if (cap == 0) return;
  gAllocator = new CachingCPUAllocator(cap);  // lives for the process: blocks may outlive any model
  c10::SetCPUAllocator(gAllocator, /*priority=*/100);
}

void modelGone() {
  std::lock_guard<std::mutex> l(gAllocMu);
  if (--gLiveModels == 0 && gAllocator) gAllocator->emptyCache();
}

size_t cachedHostBytes() { return gAllocator ? gAllocator->cachedBytes() : 0; }

}  // namespace

size_t cpuCacheBytes() { return cachedHostBytes(); }

// ---------------------------------------------------------------------------------------------
// the model

namespace {

struct Named {
  std::string name;
  Tensor t;
};

constexpr char kMagic[16] = {'S', 'L', 'I', 'C', 'E', 'F', 'O', 'R', 'M', '-', 'C', 'K', 'P', 'T', '\n', '\0'};
constexpr uint32_t kFormatVersion = 1;

class UNet final : public Model {
 public:
  UNet(const NetConfig& c, const OptimConfig& o, const Options& opt) : cfg_(c), optim_(o), opt_(opt) {
    validateConfig(c);
    if (!(o.lr > 0) || !std::isfinite(o.lr)) throw Error("bad-input", "learning rate must be > 0");
    if (o.momentum < 0 || o.momentum >= 1) throw Error("bad-input", "momentum must be in [0, 1)");
    if (o.weightDecay < 0) throw Error("bad-input", "weightDecay must be >= 0");
    if (opt.precision < 0 || opt.precision > 2) throw Error("bad-input", "precision must be fp32, tf32 or bf16");
    if (opt.cuda) {
      if (!cudaAvailable())
        throw Error("bad-input", "device 'cuda' requested but this libtorch (" + torchVersion() +
                                     ") sees no CUDA device; use device 'cpu' or build against a CUDA libtorch");
      device_ = at::Device(at::kCUDA, 0);
    } else if (opt.precision != 0) {
      throw Error("bad-input", "precision tf32/bf16 is only available on CUDA; use fp32 on the CPU");
    }
    dtype_ = opt.float64 ? at::kDouble : at::kFloat;
    guarded("model creation", [&] { build(); return 0; });
    if (!opt.cuda) installAllocator();
    counted_ = !opt.cuda;
  }
  ~UNet() override {
    params_.clear();
    buffers_.clear();
    optState_.clear();
    enc_.clear();
    dec_.clear();
    out_ = Conv();
    if (counted_) modelGone();
  }

  const NetConfig& config() const override { return cfg_; }
  int64_t paramCount() const override { return paramCount_; }
  int64_t bnParamCount() const override { return bnParamCount_; }

  std::vector<int64_t> outputShape(const std::vector<int64_t>& spatial) const override {
    if ((int)spatial.size() != cfg_.dims)
      throw Error("bad-input", "expected " + std::to_string(cfg_.dims) + " spatial sizes, got " +
                                   std::to_string(spatial.size()));
    std::vector<int64_t> out;
    for (auto n : spatial) {
      int64_t o = unetOutputSize(n, cfg_.levels, cfg_.padSame);
      if (o <= 0) throw Error("bad-input", invalidShapeMessage(spatial));
      out.push_back(o);
    }
    return out;
  }

  StepResult trainStep(const Batch& b) override { return run(b, true, nullptr); }
  StepResult lossAndGrad(const Batch& b, std::vector<NamedArray>* grads) override { return run(b, false, grads); }

  std::vector<float> predict(const float* input, size_t len, const std::vector<int64_t>& shape,
                             std::vector<int64_t>* outShape) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto outSp = checkInput(len, shape, false);
    checkFinite(input, len);
    return guarded("predict", [&] {
      ThreadGuard tg(opt_);
      c10::InferenceMode im;
      AutocastGuard ag(opt_);
      Tensor x = toDevice(input, shape);
      Tensor logits = forward(x, /*train=*/false, /*updateStats=*/false);
      Tensor p = at::softmax(logits.to(at::kFloat), 1).to(at::kCPU).contiguous();
      std::vector<float> out(p.numel());
      std::memcpy(out.data(), p.data_ptr<float>(), out.size() * sizeof(float));
      outShape->assign(p.sizes().begin(), p.sizes().end());
      return out;
    });
  }

  void setLearningRate(double lr) override {
    if (!(lr > 0) || !std::isfinite(lr)) throw Error("bad-input", "learning rate must be > 0");
    std::lock_guard<std::mutex> lock(mu_);
    optim_.lr = lr;
  }
  double learningRate() const override { return optim_.lr; }

  // checkpoint format (little-endian, see docs/engine.md):
  //   magic[16] u32 version | i32 dims inCh classes levels base padSame batchNorm bnBatch |
  //   u8 adam | f64 lr momentum weightDecay | i64 step | u32 n | n x (u32 len, name, u32 ndim, i64 dims.., f32 data)
  void save(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Named> all = stateTensors();
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
      int32_t c[8] = {cfg_.dims, cfg_.inChannels, cfg_.numClasses, cfg_.levels, cfg_.baseFilters,
                      cfg_.padSame, cfg_.batchNorm, cfg_.bnBatchAtTest};
      w(c, sizeof c);
      uint8_t adam = optim_.adam;
      w(&adam, 1);
      double o[3] = {optim_.lr, optim_.momentum, optim_.weightDecay};
      w(o, sizeof o);
      w(&step_, 8);
      uint32_t n = all.size();
      w(&n, 4);
      for (auto& nt : all) {
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

  void load(const std::string& path) override {
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
    if (fc.dims != cfg_.dims || fc.inChannels != cfg_.inChannels || fc.numClasses != cfg_.numClasses ||
        fc.levels != cfg_.levels || fc.baseFilters != cfg_.baseFilters || fc.padSame != cfg_.padSame ||
        fc.batchNorm != cfg_.batchNorm)
      throw bad("checkpoint was saved for network config " + configString(fc) + " but this model is " +
                configString(cfg_) + "; create a model with the checkpoint's config");
    uint8_t adam;
    r(&adam, 1);
    double o[3];
    r(o, sizeof o);
    int64_t step;
    r(&step, 8);
    uint32_t n;
    r(&n, 4);
    if (n > 100000) throw bad("corrupt checkpoint (tensor count " + std::to_string(n) + ")");
    std::vector<NamedArray> arrays(n);
    for (auto& a : arrays) {
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
    std::lock_guard<std::mutex> lock(mu_);
    guarded("load", [&] {
      // model weights and BN statistics must all be present; optimizer state only if the optimizer matches
      std::map<std::string, const NamedArray*> byName;
      for (auto& a : arrays) byName[a.name] = &a;
      std::vector<Named> model = modelTensors();
      for (auto& nt : model) {
        auto it = byName.find(nt.name);
        if (it == byName.end()) throw bad("checkpoint lacks tensor " + nt.name);
        checkShape(*it->second, nt.t, path);
      }
      for (auto& nt : model) copyInto(nt.t, *byName[nt.name]);
      optState_.clear();
      step_ = 0;
      if ((bool)adam == optim_.adam) {
        step_ = step;
        for (auto& p : params_) {
          for (const char* k : {"buf", "m", "v"}) {
            auto it = byName.find(std::string("optim.") + k + "." + p.name);
            if (it == byName.end()) continue;
            Tensor t = at::empty(p.t.sizes(), p.t.options().requires_grad(false));
            checkShape(*it->second, t, path);
            copyInto(t, *it->second);
            optState_[std::string(k) + "." + p.name] = t;
          }
        }
      }
      return 0;
    });
  }

  std::vector<NamedArray> exportParams() override {
    std::lock_guard<std::mutex> lock(mu_);
    return guarded("exportParams", [&] {
      std::vector<NamedArray> out;
      for (auto& nt : modelTensors()) out.push_back(toArray(nt.name, nt.t));
      return out;
    });
  }

  void importParams(const std::vector<NamedArray>& params) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, const NamedArray*> byName;
    for (auto& a : params) byName[a.name] = &a;
    std::vector<Named> model = modelTensors();
    std::vector<std::string> missing;
    for (auto& nt : model) {
      auto it = byName.find(nt.name);
      if (it == byName.end()) {
        missing.push_back(nt.name);
        continue;
      }
      checkShape(*it->second, nt.t, "importParams");
    }
    if (!missing.empty()) {
      std::string m = "importParams: missing " + std::to_string(missing.size()) + " tensor(s): " + missing[0];
      for (size_t i = 1; i < std::min<size_t>(missing.size(), 5); i++) m += ", " + missing[i];
      throw Error("bad-input", m);
    }
    for (auto& a : params) {
      bool known = false;
      for (auto& nt : model) known = known || nt.name == a.name;
      if (!known) throw Error("bad-input", "importParams: unknown tensor " + a.name);
    }
    guarded("importParams", [&] {
      for (auto& nt : model) copyInto(nt.t, *byName[nt.name]);
      return 0;
    });
  }

 private:
  struct ThreadGuard {
    explicit ThreadGuard(const Options& o) {
      // at::set_num_threads is per calling thread under OpenMP: set it on the worker thread every call
      if (o.threads > 0 && at::get_num_threads() != o.threads) at::set_num_threads(o.threads);
      if (o.cuda) {
        // process-global switches, set per call so that models with different precisions can coexist
        auto& ctx = at::globalContext();
        ctx.setBenchmarkCuDNN(true);
        ctx.setAllowTF32CuBLAS(o.precision >= 1);
        ctx.setAllowTF32CuDNN(o.precision >= 1);
      }
    }
  };

  struct AutocastGuard {
    bool on = false;
    explicit AutocastGuard(const Options& o) {
      if (!o.cuda || o.precision != 2) return;
#if SF_TORCH_AT_LEAST(2, 4)
      at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
      at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(true);
#endif
      on = true;
    }
    ~AutocastGuard() {
      if (!on) return;
#if SF_TORCH_AT_LEAST(2, 4)
      at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
      at::autocast::set_enabled(false);
#endif
      at::autocast::clear_cache();
    }
  };

  // --- construction ---
  Tensor newParam(const std::string& name, std::vector<int64_t> shape, double stdv, bool bn = false) {
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
  Tensor newBuffer(const std::string& name, int64_t n, double v) {
    Tensor t = at::full({n}, v, at::TensorOptions().dtype(dtype_)).to(device_);
    buffers_.push_back({name, t});
    return t;
  }

  struct Conv {
    Tensor w, b;
    Tensor g, beta, rm, rv;  // BN
  };

  Conv makeConv(const std::string& pre, int idx, int64_t cin, int64_t cout, int k, bool bn) {
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

  void build() {
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

  at::MemoryFormat memFormat() const {
    return cfg_.dims == 3 ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::ChannelsLast;
  }

  // --- forward ---
  Tensor conv(const Tensor& x, const Conv& c, int pad) const {
    std::vector<int64_t> stride(cfg_.dims, 1), padding(cfg_.dims, pad);
    return cfg_.dims == 3 ? at::conv3d(x, c.w, c.b, stride, padding) : at::conv2d(x, c.w, c.b, stride, padding);
  }

  Tensor convBnRelu(const Tensor& x, const Conv& c, bool train, bool updateStats) const {
    Tensor y = conv(x, c, cfg_.padSame ? 1 : 0);
    if (cfg_.batchNorm) {
      bool useBatch = train || cfg_.bnBatchAtTest;
      bool passStats = train ? updateStats : !cfg_.bnBatchAtTest;
      y = at::batch_norm(y, c.g, c.beta, passStats ? c.rm : Tensor(), passStats ? c.rv : Tensor(), useBatch, 0.1,
                         1e-5, true);
    }
    return at::relu_(y);
  }

  static Tensor centreCrop(const Tensor& x, const Tensor& like) {
    Tensor y = x;
    for (int64_t d = 2; d < x.dim(); d++) {
      int64_t off = (x.size(d) - like.size(d)) / 2;
      if (off > 0 || x.size(d) != like.size(d)) y = y.narrow(d, off, like.size(d));
    }
    return y;
  }

  Tensor forward(Tensor x, bool train, bool updateStats) const {
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

  // --- input checks ---
  std::string invalidShapeMessage(const std::vector<int64_t>& spatial) const {
    std::string got, want, outw;
    for (size_t i = 0; i < spatial.size(); i++) {
      int64_t v = validInputSize(spatial[i], cfg_.levels, cfg_.padSame);
      got += (i ? "x" : "") + std::to_string(spatial[i]);
      want += (i ? "x" : "") + std::to_string(v);
      outw += (i ? "x" : "") + std::to_string(unetOutputSize(v, cfg_.levels, cfg_.padSame));
    }
    return "input tile " + got + " (spatial, " + (cfg_.dims == 3 ? "D x H x W" : "H x W") +
           ") is not a valid input shape for a " + std::to_string(cfg_.levels) + "-level " +
           (cfg_.padSame ? "same" : "valid") + "-padded U-Net; the nearest valid shape is " + want + " (output " +
           outw + ")";
  }

  // returns output spatial shape
  std::vector<int64_t> checkInput(size_t len, const std::vector<int64_t>& shape, bool train) const {
    const size_t rank = cfg_.dims + 2;
    std::string layout = cfg_.dims == 3 ? "[N, C, D, H, W]" : "[N, C, H, W]";
    if (shape.size() != rank)
      throw Error("bad-input", "inputShape must be " + layout + " (" + std::to_string(rank) + " numbers), got " +
                                   std::to_string(shape.size()) + " numbers");
    if (shape[0] < 1) throw Error("bad-input", "batch size N must be >= 1, got " + std::to_string(shape[0]));
    if (shape[1] != cfg_.inChannels)
      throw Error("bad-input", "input has " + std::to_string(shape[1]) + " channel(s) but the network expects " +
                                   std::to_string(cfg_.inChannels));
    std::vector<int64_t> sp(shape.begin() + 2, shape.end());
    auto out = outputShape(sp);
    checkMemory(shape, train);  // before the size check: "too large" is the more useful message
    int64_t n = 1;
    for (auto s : shape) n *= s;
    if ((int64_t)len != n)
      throw Error("bad-input", "input buffer has " + std::to_string(len) + " values but inputShape needs " +
                                   std::to_string(n));
    return out;
  }

  // Rough activation memory of one call; refuse before the allocator (or the kernel's OOM killer) does.
  void checkMemory(const std::vector<int64_t>& shape, bool train) const {
    if (opt_.cuda) return;  // CUDA OOM surfaces as a c10 error and is converted by guarded()
    double avail = availableHostBytes();
    if (avail <= 0) return;
    avail += (double)cachedHostBytes();  // our own cache is reusable memory
    const int L = cfg_.levels;
    std::vector<int64_t> sp(shape.begin() + 2, shape.end());
    double N = shape[0], elems = 0, peak = 0, skipSum = 0;
    auto vox = [&](const std::vector<int64_t>& s) {
      double v = 1;
      for (auto x : s) v *= x;
      return v;
    };
    auto convOut = [&](std::vector<int64_t>& s) {
      if (!cfg_.padSame)
        for (auto& x : s) x -= 2;
    };
    for (int l = 0; l < L; l++) {
      convOut(sp);
      double a = N * (cfg_.baseFilters << l) * vox(sp);
      convOut(sp);
      double b = N * (cfg_.baseFilters << (l + 1)) * vox(sp);
      elems += a + b;
      peak = std::max(peak, a + b);
      if (l < L - 1) {
        skipSum += b;
        for (auto& x : sp) x /= 2;
      }
    }
    for (int l = L - 2; l >= 0; l--) {
      for (auto& x : sp) x *= 2;
      double up = N * (cfg_.baseFilters << (l + 2)) * vox(sp);
      double cat = N * ((cfg_.baseFilters << (l + 2)) + (cfg_.baseFilters << (l + 1))) * vox(sp);
      convOut(sp);
      double a = N * (cfg_.baseFilters << (l + 1)) * vox(sp);
      convOut(sp);
      double b = N * (cfg_.baseFilters << (l + 1)) * vox(sp);
      elems += up + cat + a + b;
      peak = std::max(peak, up + cat + a);
    }
    double bytesPer = opt_.float64 ? 8 : 4;
    // training keeps conv, BN and ReLU outputs for backward and the same again for gradients
    double need = train ? elems * bytesPer * (cfg_.batchNorm ? 3.0 : 2.0) : (skipSum + 2 * peak) * bytesPer;
    if (need > avail) {
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "out of memory: this %s call needs about %.1f GiB of activations but only %.1f GiB is "
                    "available; use a smaller tile or batch",
                    train ? "training" : "predict", need / (1 << 30), avail / (1 << 30));
      throw Error("oom", buf);
    }
  }

  static void checkFinite(const float* p, size_t n) {
    for (size_t i = 0; i < n; i++)
      if (!std::isfinite(p[i]))
        throw Error("bad-input", "input contains a non-finite value (" + std::to_string(p[i]) + ") at index " +
                                     std::to_string(i) + "; normalise the image and replace NaN/Inf first");
  }

  Tensor toDevice(const float* p, const std::vector<int64_t>& shape) const {
    Tensor x = at::from_blob(const_cast<float*>(p), shape, at::TensorOptions().dtype(at::kFloat));
    x = x.to(device_, dtype_, /*non_blocking=*/false, /*copy=*/true);
    if (opt_.channelsLast) x = x.contiguous(memFormat());
    return x;
  }

  Tensor labelsTensor(const Batch& b, const std::vector<int64_t>& outSp, int64_t* annotated) const {
    std::vector<int64_t> shape = {b.inputShape[0]};
    shape.insert(shape.end(), outSp.begin(), outSp.end());
    int64_t n = 1;
    for (auto s : shape) n *= s;
    if ((int64_t)b.labelsLen != n) {
      std::string s;
      for (size_t i = 1; i < shape.size(); i++) s += (i > 1 ? "x" : "") + std::to_string(shape[i]);
      throw Error("bad-input", "labels have " + std::to_string(b.labelsLen) + " values but the output shape N=" +
                                   std::to_string(shape[0]) + " x " + s + " needs " + std::to_string(n) +
                                   " (labels are given at the OUTPUT shape)");
    }
    Tensor t = at::empty(shape, at::TensorOptions().dtype(at::kLong));
    int64_t* d = t.data_ptr<int64_t>();
    int64_t maxv = 0, ann = 0;
    for (int64_t i = 0; i < n; i++) {
      int64_t v = b.labelBytes == 1 ? static_cast<const uint8_t*>(b.labels)[i] : static_cast<const uint16_t*>(b.labels)[i];
      d[i] = v;
      maxv = std::max(maxv, v);
      ann += v > 0;
    }
    if (maxv > cfg_.numClasses)
      throw Error("bad-input", "label value " + std::to_string(maxv) + " out of range: labels are 0 (unannotated) or 1.." +
                                   std::to_string(cfg_.numClasses) + " (class k-1)");
    *annotated = ann;
    return t.to(device_);
  }

  // Loss = sum_i w[label_i] * CE_i / #annotated (label 0 weighs exactly 0)
  Tensor lossOf(const Tensor& logits, const Tensor& labels, const std::vector<double>& weights, int64_t annotated) const {
    Tensor logp = at::log_softmax(logits.to(dtype_), 1);
    Tensor target = (labels - 1).clamp_min(0).unsqueeze(1);
    Tensor nll = -logp.gather(1, target).squeeze(1);
    std::vector<double> wt(cfg_.numClasses + 1, 1.0);
    wt[0] = 0.0;
    for (size_t k = 0; k < weights.size(); k++) wt[k + 1] = weights[k];
    Tensor wtab = at::tensor(wt, at::TensorOptions().dtype(at::kDouble)).to(device_, dtype_);
    Tensor w = wtab.index_select(0, labels.reshape({-1})).reshape(labels.sizes());
    return (w * nll).sum() / static_cast<double>(annotated);
  }

  // Soft Dice over the annotated voxels of the whole batch ("batch Dice"), averaged over classes 2..K
  // (class 1, conventionally background, is left out as in nnU-Net): 1 - mean_k (2 I_k + s) / (P_k + G_k + s)
  Tensor diceLossOf(const Tensor& logits, const Tensor& labels) const {
    const int64_t K = cfg_.numClasses;
    Tensor prob = at::softmax(logits.to(dtype_), 1);
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

  StepResult run(const Batch& b, bool step, std::vector<NamedArray>* grads) {
    std::lock_guard<std::mutex> lock(mu_);
    auto outSp = checkInput(b.inputLen, b.inputShape, true);
    checkFinite(b.input, b.inputLen);
    if (!b.classWeights.empty() && (int)b.classWeights.size() != cfg_.numClasses)
      throw Error("bad-input", "classWeights has " + std::to_string(b.classWeights.size()) +
                                   " entries but the network has " + std::to_string(cfg_.numClasses) + " classes");
    for (double w : b.classWeights)
      if (!(w >= 0) || !std::isfinite(w)) throw Error("bad-input", "classWeights must be finite and >= 0");
    if (!(b.diceWeight >= 0) || !std::isfinite(b.diceWeight)) throw Error("bad-input", "diceWeight must be finite and >= 0");
    StepResult res;
    Tensor labels = labelsTensor(b, outSp, &res.annotated);
    res.outputVoxels = labels.numel();
    return guarded(step ? "trainStep" : "lossAndGrad", [&] {
      ThreadGuard tg(opt_);
      for (auto& p : params_) p.t.mutable_grad() = Tensor();
      if (res.annotated == 0) {
        // nothing annotated: zero loss, no gradient, no update
        if (grads)
          for (auto& p : params_) grads->push_back(toArray(p.name, at::zeros_like(p.t)));
        return res;
      }
      Tensor loss;
      // BN running statistics are updated by the forward pass: keep a copy to undo a step that is rejected
      std::vector<Tensor> stats;
      if (step)
        for (auto& bf : buffers_) stats.push_back(bf.t.clone());
      auto undoStats = [&] {
        c10::AutoGradMode ng(false);
        for (size_t i = 0; i < stats.size(); i++) buffers_[i].t.copy_(stats[i]);
      };
      {
        AutocastGuard ag(opt_);
        Tensor x = toDevice(b.input, b.inputShape);
        Tensor logits = forward(x, /*train=*/true, /*updateStats=*/step);
        loss = lossOf(logits, labels, b.classWeights, res.annotated);
        if (b.diceWeight > 0) loss = loss + diceLossOf(logits, labels) * b.diceWeight;
      }
      res.loss = loss.item<double>();
      if (!std::isfinite(res.loss)) {
        undoStats();
        throw Error("engine", "loss is not finite (" + std::to_string(res.loss) +
                                  "); lower the learning rate or check the input normalisation");
      }
      loss.backward();
      if (grads)
        for (auto& p : params_) grads->push_back(toArray(p.name, p.t.grad()));
      if (step) optimizerStep();
      return res;
    });
  }

  void optimizerStep() {
    c10::AutoGradMode ng(false);
    step_++;
    const double lr = optim_.lr, wd = optim_.weightDecay;
    for (auto& p : params_) {
      Tensor g = p.t.grad();
      if (!g.defined()) continue;
      if (wd > 0) g = g.add(p.t, wd);
      if (!optim_.adam) {
        Tensor& buf = optState_["buf." + p.name];
        if (optim_.momentum > 0) {
          if (!buf.defined())
            buf = g.clone();
          else
            buf.mul_(optim_.momentum).add_(g);
          p.t.add_(buf, -lr);
        } else {
          p.t.add_(g, -lr);
        }
      } else {
        Tensor& m = optState_["m." + p.name];
        Tensor& v = optState_["v." + p.name];
        if (!m.defined()) m = at::zeros_like(p.t);
        if (!v.defined()) v = at::zeros_like(p.t);
        m.mul_(optim_.beta1).add_(g, 1 - optim_.beta1);
        v.mul_(optim_.beta2).addcmul_(g, g, 1 - optim_.beta2);
        double bc1 = 1 - std::pow(optim_.beta1, (double)step_), bc2 = 1 - std::pow(optim_.beta2, (double)step_);
        Tensor denom = (v.sqrt() / std::sqrt(bc2)).add_(optim_.eps);
        p.t.addcdiv_(m, denom, -lr / bc1);
      }
    }
  }

  // --- tensors by name ---
  std::vector<Named> modelTensors() const {
    std::vector<Named> all = params_;
    all.insert(all.end(), buffers_.begin(), buffers_.end());
    return all;
  }
  std::vector<Named> stateTensors() const {
    std::vector<Named> all = modelTensors();
    for (auto& kv : optState_)
      if (kv.second.defined()) all.push_back({"optim." + kv.first, kv.second});
    return all;
  }

  static NamedArray toArray(const std::string& name, const Tensor& t) {
    NamedArray a;
    a.name = name;
    a.shape.assign(t.sizes().begin(), t.sizes().end());
    Tensor h = t.detach().to(at::kCPU, at::kFloat).contiguous();
    a.data.resize(h.numel());
    std::memcpy(a.data.data(), h.data_ptr<float>(), a.data.size() * sizeof(float));
    return a;
  }

  static void checkShape(const NamedArray& a, const Tensor& t, const std::string& where) {
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

  void copyInto(Tensor& t, const NamedArray& a) const {
    c10::AutoGradMode ng(false);
    Tensor src = at::from_blob(const_cast<float*>(a.data.data()), a.shape, at::TensorOptions().dtype(at::kFloat));
    t.copy_(src);
  }

  struct Dec {
    Tensor up;
    Conv c1, c2;
  };

  NetConfig cfg_;
  OptimConfig optim_;
  Options opt_;
  at::Device device_ = at::Device(at::kCPU);
  at::ScalarType dtype_ = at::kFloat;
  at::Generator gen_;
  std::vector<std::array<Conv, 2>> enc_;
  std::vector<Dec> dec_;
  Conv out_;
  std::vector<Named> params_, buffers_;
  std::map<std::string, Tensor> optState_;
  int64_t step_ = 0;
  bool counted_ = false;
  int64_t paramCount_ = 0, bnParamCount_ = 0;
  mutable std::mutex mu_;
};

}  // namespace

std::unique_ptr<Model> Model::create(const NetConfig& cfg, const OptimConfig& opt, const Options& o) {
  validateConfig(cfg);
  return std::make_unique<UNet>(cfg, opt, o);
}

}  // namespace sf
