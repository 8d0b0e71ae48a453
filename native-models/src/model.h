// Sliceform native engine: the 3D/2D U-Net of Çiçek et al. 2016 over libtorch.
//
// This header is deliberately free of torch and N-API includes: addon.cc (the N-API glue) compiles in
// seconds and only the model's parts pay for the libtorch headers: model.cc (input checks, guards, the Model
// implementation), network.cc (U-Net), losses.cc, optim.cc, checkpoint.cc (format), allocator.cc (CPU cache),
// config.cc (shape maths, config checks, runtime info), errors.cc. Every function here throws
// sf::Error (a std::runtime_error) with a message meant for the user; nothing aborts the process.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace sf {

struct Error : std::runtime_error {
  // kind: "bad-input" (invalid config/shape/size/file), "oom" (out of memory), "engine" (anything else)
  std::string kind;
  Error(std::string k, const std::string& msg) : std::runtime_error(msg), kind(std::move(k)) {}
};

struct NetConfig {
  int dims = 3;
  int inChannels = 1;
  int numClasses = 2;
  int levels = 4;
  int baseFilters = 32;
  bool padSame = false;
  bool batchNorm = true;
  bool bnBatchAtTest = false;  // bnAtTest: 'batch'
};

struct OptimConfig {
  bool adam = false;
  double lr = 1e-3;
  double momentum = 0.99;
  double weightDecay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

struct Options {
  bool cuda = false;
  int threads = 0;       // 0 = leave libtorch's default
  int precision = 0;     // 0 fp32, 1 tf32, 2 bf16 (autocast); tf32/bf16 only on CUDA
  bool channelsLast = false;
  int64_t seed = 0;
  bool float64 = false;  // debug: double-precision weights (gradient checks)
};

struct StepResult {
  double loss = 0;
  int64_t annotated = 0;
  int64_t outputVoxels = 0;
};

struct NamedArray {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// Borrowed input: pointers stay valid for the duration of the call (the addon pins the JS buffers).
struct Batch {
  const float* input = nullptr;
  size_t inputLen = 0;
  std::vector<int64_t> inputShape;  // [N, C, D, H, W] or [N, C, H, W]
  const void* labels = nullptr;
  size_t labelsLen = 0;
  int labelBytes = 1;  // 1 = uint8, 2 = uint16
  std::vector<double> classWeights;  // empty = all ones
  // weight of the soft Dice term (0 = cross-entropy only): loss = CE + diceWeight * (1 - mean Dice of classes 2..K
  // over the annotated voxels of the batch)
  double diceWeight = 0.0;
};

// Pure shape maths (mirrors unetOutputSize/validInputSize in main/common/engine.ts).
int64_t unetOutputSize(int64_t n, int levels, bool padSame);  // -1 when invalid
int64_t validInputSize(int64_t near, int levels, bool padSame);

void validateConfig(const NetConfig& c);
std::string configString(const NetConfig& c);

std::string torchVersion();
bool cudaAvailable();
void setThreads(int n);
// bytes held by the CPU block cache (freed activations kept for reuse; 0 once every model is disposed)
size_t cpuCacheBytes();
int getThreads();

class Model {
 public:
  virtual ~Model() = default;
  static std::unique_ptr<Model> create(const NetConfig& cfg, const OptimConfig& opt, const Options& o);

  virtual const NetConfig& config() const = 0;
  virtual int64_t paramCount() const = 0;
  virtual int64_t bnParamCount() const = 0;
  virtual std::vector<int64_t> outputShape(const std::vector<int64_t>& spatial) const = 0;

  virtual StepResult trainStep(const Batch& b) = 0;
  // loss and gradients, no optimizer step (tests: gradient check)
  virtual StepResult lossAndGrad(const Batch& b, std::vector<NamedArray>* grads) = 0;
  // softmax probabilities, N*K*D'*H'*W'
  virtual std::vector<float> predict(const float* input, size_t len, const std::vector<int64_t>& shape,
                                     std::vector<int64_t>* outShape) = 0;
  virtual void setLearningRate(double lr) = 0;
  virtual double learningRate() const = 0;
  virtual void save(const std::string& path) = 0;
  virtual void load(const std::string& path) = 0;
  virtual std::vector<NamedArray> exportParams() = 0;
  virtual void importParams(const std::vector<NamedArray>& params) = 0;
};

}  // namespace sf
