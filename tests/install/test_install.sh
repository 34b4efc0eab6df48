#!/usr/bin/env bash
# test_install.sh: installs the build into a scratch prefix and builds an application against
# it twice, through pkg-config and through find_package(headroom); both must run. The man pages
# and the bash completion must be installed too, and work.
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

# the man pages render without a warning; the completion completes commands and options
test -f "$prefix/share/man/man1/headroom.1" && test -f "$prefix/share/man/man8/headroomd.8"
if command -v groff >/dev/null; then
    warnings=$(groff -man -Tutf8 -ww -z "$prefix/share/man/man1/headroom.1" "$prefix/share/man/man8/headroomd.8" 2>&1)
    [[ -z $warnings ]] || { echo "not ok - the man pages render without warnings: $warnings"; exit 1; }
fi
echo "ok - man pages installed: headroom.1, headroomd.8"
completion=$prefix/share/bash-completion/completions/headroom
test -f "$completion"
words=$(bash -c 'source "$1"; COMP_WORDS=(headroom lo); COMP_CWORD=1; _headroom; echo "${COMPREPLY[*]}";
                 COMP_WORDS=(headroom top --j); COMP_CWORD=2; _headroom; echo "${COMPREPLY[*]}";
                 COMP_WORDS=(headroom run x --load-mode m); COMP_CWORD=4; _headroom; echo "${COMPREPLY[*]}"' _ "$completion")
[[ $words == $'load\n--json\nmmap mlock' ]] || { echo "not ok - bash completion: got '$words'"; exit 1; }
echo "ok - bash completion installed: commands, options, values"
