// The optimisers: SGD with (heavy-ball) momentum, as in the paper, and Adam; weight decay added to the gradient.
// State tensors are kept by name ("buf.<param>", "m.<param>", "v.<param>") so that checkpoints carry them.
// Internal to the addon; the mirror of main/engine/tfjs/optim.ts.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model.h"
#include "network.h"

namespace sf {

// One step over every parameter that has a gradient; *step is the step count (incremented first: Adam's bias
// correction uses the new value).
void optimizerStep(std::vector<Named>& params, std::map<std::string, at::Tensor>& state, const OptimConfig& o,
                   int64_t* step);

}  // namespace sf
