# iotsocket_warnings: an interface target every project target links, so that all our
# code is held to the same warnings (and -Werror when IOTSOCKET_WERROR is on).
add_library(iotsocket_warnings INTERFACE)
target_compile_options(iotsocket_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wold-style-cast -Wnon-virtual-dtor -Woverloaded-virtual -Wimplicit-fallthrough
  -Wformat=2
  # GCC 12 warns when a designated initializer leaves out a member that has a default
  # member initializer (GCC bug 96868); leaving such members out is the point of them.
  -Wno-missing-field-initializers)
if(IOTSOCKET_WERROR)
  target_compile_options(iotsocket_warnings INTERFACE -Werror)
endif()
