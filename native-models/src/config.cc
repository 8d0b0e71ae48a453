// Pure shape maths (mirrors unetOutputSize/validInputSize in main/common/engine.ts), network config checks, and
// what this libtorch offers (version, CUDA, threads).
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <sstream>

#include "model.h"

namespace sf {

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

}  // namespace sf
