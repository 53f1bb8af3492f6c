#!/usr/bin/env bash
# Builds the Debian package from a ferry binary:
#   packaging/build-deb.sh BINARY OUTDIR
# and prints the path of the .deb. The binary is shipped as given (build it
# with packaging/build-dist.sh for a release). FERRY_DEB_COMPRESSION picks
# dpkg-deb's compressor (default xz; the tests use none, which is fastest). The version comes from the
# binary itself (`ferry --version`), so the package can never claim another.
#
# Plain dpkg-deb with the layout spelled out here rather than cargo-deb: no
# tool to build on every CI run, and the integration tests build a package
# from the test binary in seconds.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BINARY OUTDIR" >&2
    exit 2
fi
binary=$1
outdir=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$binary" ]; then
    echo "$0: $binary is not an executable file" >&2
    exit 1
fi
for tool in dpkg-deb gzip; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 1; }
done

# "ferry 0.1.0 (commit ..., built ...)" -> 0.1.0
version=$("$binary" --version | awk 'NR == 1 && $1 == "ferry" { print $2 }')
if ! printf '%s' "$version" | grep -Eq '^[0-9][0-9A-Za-z.+~-]*$'; then
    echo "$0: cannot read a version from '$binary --version'" >&2
    exit 1
fi
case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) echo "$0: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/lib/sysusers.d" \
    "$root/etc/ferry" "$root/usr/share/man/man1" "$root/usr/share/bash-completion/completions" \
    "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d" \
    "$root/usr/share/doc/ferry"

install -m 0755 "$binary" "$root/usr/bin/ferry"
install -m 0644 "$here/ferry-server.service" "$here/ferry-agent.service" "$root/lib/systemd/system/"
install -m 0644 "$here/sysusers.conf" "$root/usr/lib/sysusers.d/ferry.conf"
# Modes here; postinst gives server.env to group ferry once the group exists.
install -m 0640 "$here/server.env" "$root/etc/ferry/server.env"
install -m 0600 "$here/agent.env" "$root/etc/ferry/agent.env"

"$binary" completions bash >"$root/usr/share/bash-completion/completions/ferry"
"$binary" completions zsh >"$root/usr/share/zsh/vendor-completions/_ferry"
"$binary" completions fish >"$root/usr/share/fish/vendor_completions.d/ferry.fish"
"$binary" man "$stage/man" >/dev/null
for page in "$stage"/man/*.1; do
    gzip -9n <"$page" >"$root/usr/share/man/man1/$(basename "$page").gz"
done
install -m 0644 "$here/copyright" "$root/usr/share/doc/ferry/copyright"
chmod 0644 "$root"/usr/share/man/man1/* "$root"/usr/share/*/*completions*/*

install -m 0755 "$here/deb/postinst" "$here/deb/prerm" "$here/deb/postrm" "$root/DEBIAN/"
printf '/etc/ferry/server.env\n/etc/ferry/agent.env\n' >"$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
# A static (musl) binary needs no libc; a glibc one needs 2.28 or newer.
depends=
# (grep without -q: it must read all, or objdump dies of SIGPIPE under pipefail.)
if objdump -T "$root/usr/bin/ferry" 2>/dev/null | grep GLIBC_ >/dev/null; then
    depends="Depends: libc6 (>= 2.28)"$'\n'
fi
cat >"$root/DEBIAN/control" <<CONTROL
Package: ferry
Version: $version
Architecture: $arch
Maintainer: Ferry developers <ferry@example.invalid>
Section: admin
Priority: optional
Installed-Size: $size
${depends}Recommends: bubblewrap
Description: self-hosted release system: server, agent and CLI in one binary
 Ferry builds releases, stores them and rolls them out to a fleet of hosts.
 The one binary is the server (ferry-server.service), the agent on every
 host (ferry-agent.service) and the command-line client. Neither service is
 enabled on install: set /etc/ferry/server.env or agent.env first.
 The server runs builds inside bubblewrap, hence the recommendation.
CONTROL

mkdir -p "$outdir"
deb="$outdir/ferry_${version}_${arch}.deb"
dpkg-deb --root-owner-group "-Z${FERRY_DEB_COMPRESSION:-xz}" --build "$root" "$deb" >/dev/null
echo "$deb"
