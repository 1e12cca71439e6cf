#!/usr/bin/env bash
# Installs the build (cmake --install) into a temporary prefix and builds the sensor loop
# example against it twice, as a device developer would: with find_package(iotsocket-client)
# and with pkg-config. Then runs both (without arguments they print their usage, exit 2),
# and checks the installed files.
#   client_install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
# The library directory is lib/ or lib/<multiarch>/, as GNUInstallDirs chose at configure.
libdir=$(dirname "$(find "$prefix" -name libiotsocket-client.a | head -1)")
[[ $libdir == "$prefix"/lib* ]] || { echo "libiotsocket-client.a not installed"; exit 1; }
for f in "$prefix/include/iotsocket/client.hpp" \
         "$libdir/cmake/iotsocket-client/iotsocket-client-config.cmake" \
         "$libdir/cmake/iotsocket-client/iotsocket-client-config-version.cmake" \
         "$libdir/pkgconfig/iotsocket-client.pc" "$prefix/bin/iotsocket-client"; do
  [[ -e $f ]] || { echo "not installed: $f"; exit 1; }
done
# The header stands alone: it includes nothing of ours but itself.
if grep -n '#include "' "$prefix/include/iotsocket/client.hpp"; then
  echo "the installed header includes project headers"; exit 1
fi

cmake -S "$source/client/examples" -B "$work/cmake-build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null

export PKG_CONFIG_PATH=$libdir/pkgconfig
g++ -std=c++17 -Wall -Werror "$source/client/examples/sensor_loop.cpp" \
  $(pkg-config --cflags --libs iotsocket-client) -o "$work/sensor_loop_pc"

# The README's sensor loop, as printed there, compiles too.
awk '/^## For device developers/ {on = 1} on && /^```cpp$/ {code = 1; next}
     code && /^```$/ {exit} code {print}' "$source/README.md" >"$work/readme_loop.cpp"
[[ -s $work/readme_loop.cpp ]] || { echo "no C++ block in the README's device section"; exit 1; }
g++ -std=c++17 -Wall -Werror "$work/readme_loop.cpp" \
  $(pkg-config --cflags --libs iotsocket-client) -o "$work/readme_loop"

for binary in "$work/cmake-build/sensor_loop" "$work/sensor_loop_pc" "$work/readme_loop"; do
  set +e
  out=$("$binary" 2>&1)
  code=$?
  set -e
  [[ $code -eq 2 && $out == usage:* ]] || { echo "$binary: exit $code, output: $out"; exit 1; }
done
sh -n "$source/client/examples/sensor_loop.sh"
echo "installed client library builds and links with CMake and with pkg-config"
