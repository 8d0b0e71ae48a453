// CPU caching allocator
//
// Activations are allocated and freed afresh in every call; glibc serves big blocks from mmap, so each call
// page-faults and zeroes every activation again (measured: a third of the CPU time of a forward pass went to
// the kernel, in this addon and in PyTorch alike). A training loop allocates the same sizes every step, so
// freed blocks >= 1 MiB are kept and handed out again (same size, or up to 1/8 larger). The cache is bounded
// (SLICEFORM_CPU_CACHE_MB, default a quarter of physical memory; 0 turns it off) and emptied when the last
// model is disposed. Blocks use context == data and raw_deleter(), as mkldnn's raw_allocate() requires.
#include "allocator.h"

#include <c10/core/CPUAllocator.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#ifndef _WIN32
#include <unistd.h>
#endif

#include "model.h"

namespace sf {

double availableHostBytes() {
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

}  // namespace

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

size_t cpuCacheBytes() { return cachedHostBytes(); }

}  // namespace sf
