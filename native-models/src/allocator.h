// The CPU caching allocator (see allocator.cc) and the host-memory figures the models use. Internal; no torch.
#pragma once

#include <cstddef>

namespace sf {

// A CPU model was created: install the caching allocator on first use (unless SLICEFORM_CPU_CACHE_MB=0).
void installAllocator();
// A CPU model was disposed: empty the cache once none is left.
void modelGone();
// Bytes held by the cache (freed blocks kept for reuse).
size_t cachedHostBytes();
// MemAvailable from /proc/meminfo in bytes, or -1 where unknown.
double availableHostBytes();

}  // namespace sf
