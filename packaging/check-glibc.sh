#!/usr/bin/env bash
# Fails when a binary needs a newer glibc than the oldest we support:
#   packaging/check-glibc.sh BINARY [MAX]      (MAX defaults to 2.28)
# 2.28 is Debian 10/11's, Ubuntu 20.04's and RHEL 8's floor. A static binary
# (musl) has no versioned glibc symbol at all and passes.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ ! -f "$1" ]; then
    echo "usage: $0 BINARY [MAX]" >&2
    exit 2
fi
binary=$1
max=${2:-2.28}
command -v objdump >/dev/null || { echo "check-glibc: objdump is missing (binutils)" >&2; exit 1; }

if ! dynamic=$(objdump -T "$binary" 2>&1); then
    if grep -q 'not a dynamic object' <<<"$dynamic"; then
        echo "check-glibc: $binary is static: runs on any x86_64 Linux kernel >= 3.2, no glibc needed"
        exit 0
    fi
    echo "check-glibc: objdump cannot read $binary: $dynamic" >&2
    exit 1
fi
newest=$(grep -o 'GLIBC_[0-9][0-9.]*' <<<"$dynamic" | sed 's/GLIBC_//' | sort -uV | tail -n 1)
if [ -z "$newest" ]; then
    echo "check-glibc: $binary needs no versioned glibc symbol"
    exit 0
fi
if [ "$(printf '%s\n%s\n' "$newest" "$max" | sort -V | tail -n 1)" != "$max" ]; then
    echo "check-glibc: $binary needs glibc $newest, above $max; these symbols:" >&2
    grep "GLIBC_$newest" <<<"$dynamic" | awk '{ print "  " $NF }' >&2
    exit 1
fi
echo "check-glibc: $binary needs glibc $newest at most (limit $max)"
