# Sanitizers apply to every target in the build (a sanitized library linked into an
# unsanitized test would miss half the checks), so they are set directory-wide.
if(IOTSOCKET_SANITIZE)
  add_compile_options(-fsanitize=${IOTSOCKET_SANITIZE} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${IOTSOCKET_SANITIZE})
endif()

if(IOTSOCKET_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "IOTSOCKET_FUZZ needs clang: configure with -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Instrument all code for coverage; only the fuzz targets link libFuzzer's main().
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
