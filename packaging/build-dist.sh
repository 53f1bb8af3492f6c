#!/usr/bin/env bash
# Builds the shipped binary: the `dist` profile (release, stripped, no debug
# info), linked against glibc 2.28 so it runs on Debian 10 and later, Ubuntu
# 20.04 and later and RHEL/Rocky/Alma 8 and later:
#   packaging/build-dist.sh            prints the binary's path
#
# The linker and C compiler (ring, zstd, SQLite are C) come from zig through
# cargo-zigbuild, which targets an old glibc from any build machine; both
# are Python packages, installed into target/dist-tools (nothing system-wide).
# musl (fully static) is not the target: nix hides renameat2, which the agent
# uses for atomic swaps, on musl, and musl's allocator is slow for a server.
set -euo pipefail
cd "$(dirname "$0")/.."

glibc=2.28
triple=x86_64-unknown-linux-gnu
tools=target/dist-tools
if [ ! -x "$tools/bin/cargo-zigbuild" ] || [ ! -x "$tools/bin/python-zig" ]; then
    echo "== installing cargo-zigbuild and zig into $tools" >&2
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q ziglang==0.17.1 cargo-zigbuild==0.24.1
fi
export PATH=$PWD/$tools/bin:$PATH

cargo zigbuild --locked --profile dist --target "$triple.$glibc" --bin ferry >&2
binary=${CARGO_TARGET_DIR:-target}/$triple/dist/ferry
packaging/check-glibc.sh "$binary" "$glibc" >&2
echo "$binary"
