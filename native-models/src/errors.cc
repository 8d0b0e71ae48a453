// errors: turn libtorch's exceptions into sf::Error with a user-facing message
#include "errors.h"

namespace sf {

[[noreturn]] void rethrow(const char* what, const std::string& context) {
  std::string m = what;
  // c10 messages carry a long C++ backtrace after the first line(s); keep the headline.
  auto cut = m.find("\nException raised from");
  if (cut != std::string::npos) m = m.substr(0, cut);
  bool oom = m.find("out of memory") != std::string::npos || m.find("can't allocate memory") != std::string::npos ||
             m.find("bad_alloc") != std::string::npos;
  if (oom) throw Error("oom", "out of memory during " + context + ": " + m + " (use a smaller tile or batch)");
  throw Error("engine", context + " failed: " + m);
}

}  // namespace sf
