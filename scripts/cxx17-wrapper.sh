#!/usr/bin/env bash
# C++ compiler wrapper used to build Horovod 0.28.1 against PyTorch >= 2.1.
# Horovod's CMakeLists hard-code C++14 (CMAKE_CXX_STANDARD 14 -> -std=c++14),
# but current PyTorch headers need C++17. This rewrites any C++14 standard flag
# to C++17 and runs the real compiler (FLIGHTBASE_REAL_CXX, default g++).
set -euo pipefail
real="${FLIGHTBASE_REAL_CXX:-g++}"
args=()
for a in "$@"; do
  case "$a" in
    -std=c++14|-std=c++1y) args+=("-std=c++17") ;;
    -std=gnu++14|-std=gnu++1y) args+=("-std=gnu++17") ;;
    *) args+=("$a") ;;
  esac
done
exec "$real" "${args[@]}"
