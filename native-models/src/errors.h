// Turning libtorch's exceptions into sf::Error with a user-facing message. Internal to the addon; no torch here.
#pragma once

#include <new>
#include <stdexcept>
#include <string>

#include "model.h"

namespace sf {

// Keeps the headline of a c10 message (drops the C++ backtrace) and throws sf::Error "oom" or "engine".
[[noreturn]] void rethrow(const char* what, const std::string& context);

// Runs f, converting any exception but sf::Error into one that names `context`.
template <typename F>
auto guarded(const std::string& context, F&& f) -> decltype(f()) {
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

}  // namespace sf
