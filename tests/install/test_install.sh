#!/usr/bin/env bash
# test_install.sh: installs the build into a scratch prefix and builds an application against
# it twice, through pkg-config and through find_package(headroom); both must run.
# usage: test_install.sh BUILD_DIR SOURCE_DIR SCRATCH_DIR
set -euo pipefail
build=$1 source=$2 scratch=$3
rm -rf "$scratch"; mkdir -p "$scratch"
prefix=$scratch/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name 'libheadroom.so' | head -n 1)")

PKG_CONFIG_PATH=$libdir/pkgconfig cc -o "$scratch/consumer-pc" "$source/tests/install/consumer.c" \
    $(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --cflags --libs headroom) -Wl,-rpath,"$libdir"
"$scratch/consumer-pc"
echo "ok - pkg-config consumer"

cmake -S "$source/tests/install" -B "$scratch/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_RPATH="$libdir" >/dev/null
cmake --build "$scratch/cmake" >/dev/null
"$scratch/cmake/consumer"
echo "ok - find_package consumer"
test -x "$prefix/bin/headroom" && test -x "$prefix/bin/headroom-mkmodel" && test -f "$prefix/include/headroom.h"
"$prefix/bin/headroom" version
echo "ok - tools installed"
