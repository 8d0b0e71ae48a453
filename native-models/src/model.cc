// The model: a U-Net (network.cc) with its loss (losses.cc), optimiser (optim.cc) and checkpoints
// (checkpoint.cc) behind the torch-free sf::Model interface of model.h; this file checks every input, guards
// threads, precision and memory, and turns libtorch's exceptions into sf::Error. Pure C++: no N-API here.
// The parts mirror the TF.js engine (main/engine/tfjs/: unet.ts, optim.ts, checkpoint.ts); see docs/engine.md.
#include "model.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "allocator.h"
#include "checkpoint.h"
#include "errors.h"
#include "losses.h"
#include "network.h"
#include "optim.h"

#define SF_TORCH_AT_LEAST(maj, min) \
  (TORCH_VERSION_MAJOR > (maj) || (TORCH_VERSION_MAJOR == (maj) && TORCH_VERSION_MINOR >= (min)))

namespace sf {

using at::Tensor;

namespace {

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
    guarded("model creation", [&] { net_.build(cfg_, opt_, device_, dtype_); return 0; });
    if (!opt.cuda) installAllocator();
    counted_ = !opt.cuda;
  }
  ~UNet() override {
    net_.release();
    optState_.clear();
    if (counted_) modelGone();
  }

  const NetConfig& config() const override { return cfg_; }
  int64_t paramCount() const override { return net_.paramCount(); }
  int64_t bnParamCount() const override { return net_.bnParamCount(); }

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
      Tensor logits = net_.forward(x, /*train=*/false, /*updateStats=*/false);
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

  // checkpoint format: checkpoint.h (docs/engine.md)
  void save(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    writeCheckpoint(path, cfg_, optim_, step_, stateTensors());
  }

  void load(const std::string& path) override {
    CheckpointData d = readCheckpoint(path, cfg_);  // read (and config-checked) before taking the lock
    auto bad = [&](const std::string& m) -> Error { return Error("bad-input", path + ": " + m); };
    std::lock_guard<std::mutex> lock(mu_);
    guarded("load", [&] {
      // model weights and BN statistics must all be present; optimizer state only if the optimizer matches
      std::map<std::string, const NamedArray*> byName;
      for (auto& a : d.arrays) byName[a.name] = &a;
      std::vector<Named> model = net_.tensors();
      for (auto& nt : model) {
        auto it = byName.find(nt.name);
        if (it == byName.end()) throw bad("checkpoint lacks tensor " + nt.name);
        checkShape(*it->second, nt.t, path);
      }
      for (auto& nt : model) copyInto(nt.t, *byName[nt.name]);
      optState_.clear();
      step_ = 0;
      if (d.adam == optim_.adam) {
        step_ = d.step;
        for (auto& p : net_.params()) {
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
      for (auto& nt : net_.tensors()) out.push_back(toArray(nt.name, nt.t));
      return out;
    });
  }

  void importParams(const std::vector<NamedArray>& params) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, const NamedArray*> byName;
    for (auto& a : params) byName[a.name] = &a;
    std::vector<Named> model = net_.tensors();
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
    if (opt_.channelsLast) x = x.contiguous(net_.memFormat());
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
      for (auto& p : net_.params()) p.t.mutable_grad() = Tensor();
      if (res.annotated == 0) {
        // nothing annotated: zero loss, no gradient, no update
        if (grads)
          for (auto& p : net_.params()) grads->push_back(toArray(p.name, at::zeros_like(p.t)));
        return res;
      }
      Tensor loss;
      // BN running statistics are updated by the forward pass: keep a copy to undo a step that is rejected
      std::vector<Tensor> stats;
      if (step)
        for (auto& bf : net_.buffers()) stats.push_back(bf.t.clone());
      auto undoStats = [&] {
        c10::AutoGradMode ng(false);
        for (size_t i = 0; i < stats.size(); i++) net_.buffers()[i].t.copy_(stats[i]);
      };
      {
        AutocastGuard ag(opt_);
        Tensor x = toDevice(b.input, b.inputShape);
        Tensor logits = net_.forward(x, /*train=*/true, /*updateStats=*/step);
        loss = weightedCrossEntropy(logits, labels, b.classWeights, res.annotated, cfg_.numClasses, dtype_, device_);
        if (b.diceWeight > 0) loss = loss + softDiceLoss(logits, labels, cfg_.numClasses, dtype_) * b.diceWeight;
      }
      res.loss = loss.item<double>();
      if (!std::isfinite(res.loss)) {
        undoStats();
        throw Error("engine", "loss is not finite (" + std::to_string(res.loss) +
                                  "); lower the learning rate or check the input normalisation");
      }
      loss.backward();
      if (grads)
        for (auto& p : net_.params()) grads->push_back(toArray(p.name, p.t.grad()));
      if (step) optimizerStep(net_.params(), optState_, optim_, &step_);
      return res;
    });
  }

  // --- tensors by name: the model's, then the optimiser state (checkpoints) ---
  std::vector<Named> stateTensors() const {
    std::vector<Named> all = net_.tensors();
    for (auto& kv : optState_)
      if (kv.second.defined()) all.push_back({"optim." + kv.first, kv.second});
    return all;
  }

  NetConfig cfg_;
  OptimConfig optim_;
  Options opt_;
  at::Device device_ = at::Device(at::kCPU);
  at::ScalarType dtype_ = at::kFloat;
  Network net_;
  std::map<std::string, Tensor> optState_;
  int64_t step_ = 0;
  bool counted_ = false;
  mutable std::mutex mu_;
};

}  // namespace

std::unique_ptr<Model> Model::create(const NetConfig& cfg, const OptimConfig& opt, const Options& o) {
  validateConfig(cfg);
  return std::make_unique<UNet>(cfg, opt, o);
}

}  // namespace sf
