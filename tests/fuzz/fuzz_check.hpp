// FUZZ_CHECK: a property a fuzz harness asserts. It aborts (which libFuzzer and the replay
// driver both report as a crash, with the input saved) and says which property broke.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                          \
  do {                                                                                 \
    if (!(condition)) {                                                                \
      std::fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__,       \
                   #condition);                                                        \
      std::abort();                                                                    \
    }                                                                                  \
  } while (false)
