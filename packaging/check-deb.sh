#!/usr/bin/env bash
# Proves a Debian package built by build-deb.sh is whole:
#   packaging/check-deb.sh PACKAGE.deb
# It reads the package's metadata and file list, unpacks it into a throw-away
# directory (nothing is installed on this machine, no maintainer script runs)
# and runs what it unpacked: the binary's --version must match the package's
# version, the completion scripts and man pages must parse, the systemd units
# must pass systemd-analyze verify. Fails naming the first thing wrong.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -f "$1" ]; then
    echo "usage: $0 PACKAGE.deb" >&2
    exit 2
fi
deb=$1
fail() { echo "check-deb: $*" >&2; exit 1; }
for tool in dpkg-deb bash groff systemd-analyze; do
    command -v "$tool" >/dev/null || fail "$tool is missing"
done

info=$(dpkg-deb --info "$deb") || fail "dpkg-deb cannot read $deb"
printf '%s\n' "$info"
version=$(dpkg-deb --field "$deb" Version)
[ "$(dpkg-deb --field "$deb" Package)" = ferry ] || fail "package name is not ferry"

contents=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/ferry ./lib/systemd/system/ferry-server.service ./lib/systemd/system/ferry-agent.service \
    ./usr/lib/sysusers.d/ferry.conf ./etc/ferry/server.env ./etc/ferry/agent.env \
    ./usr/share/bash-completion/completions/ferry ./usr/share/zsh/vendor-completions/_ferry \
    ./usr/share/fish/vendor_completions.d/ferry.fish ./usr/share/man/man1/ferry.1.gz \
    ./usr/share/man/man1/ferry-deploy.1.gz ./usr/share/man/man1/ferry-server.1.gz \
    ./usr/share/man/man1/ferry-agent.1.gz ./usr/share/doc/ferry/copyright; do
    grep -q " $path\$" <<<"$contents" || fail "$path is not in the package"
done
grep -Eq '^-rw------- root/root .* \./etc/ferry/agent\.env$' <<<"$contents" || fail "agent.env is not root-only (0600)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb --control "$deb" "$work/DEBIAN"
for conf in /etc/ferry/server.env /etc/ferry/agent.env; do
    grep -qx "$conf" "$work/DEBIAN/conffiles" || fail "$conf is not a conffile"
done
for script in postinst prerm postrm; do
    sh -n "$work/DEBIAN/$script" || fail "$script does not parse"
done
grep -q 'ferry' "$work/DEBIAN/postinst" || fail "postinst does not create the ferry user"

root=$work/root
dpkg-deb -x "$deb" "$root"
ferry=$root/usr/bin/ferry
said=$("$ferry" --version) || fail "the packaged binary does not run"
echo "packaged binary: $said"
grep -Eq "^ferry $version \(commit [0-9a-z.-]+, built [0-9]{4}-[0-9]{2}-[0-9]{2}\)\$" <<<"$said" \
    || fail "--version says '$said', the package is version $version"

bash -n "$root/usr/share/bash-completion/completions/ferry" || fail "the bash completion does not parse"
for page in "$root"/usr/share/man/man1/*.gz; do
    errors=$(gzip -dc "$page" | groff -man -Tutf8 -ww -z 2>&1) || fail "groff fails on $(basename "$page")"
    [ -z "$errors" ] || fail "groff warns on $(basename "$page"): $errors"
done

# The units as installed, with ExecStart pointing at the unpacked binary
# (verify checks that the command exists).
mkdir "$work/units"
for unit in ferry-server.service ferry-agent.service; do
    sed "s#/usr/bin/ferry#$ferry#" "$root/lib/systemd/system/$unit" >"$work/units/$unit"
done
out=$(cd "$work" && systemd-analyze verify --man=no "$work/units/ferry-server.service" "$work/units/ferry-agent.service" 2>&1) \
    || fail "systemd-analyze verify fails: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"

echo "check-deb: $deb is whole (ferry $version, $(grep -c '\.1\.gz$' <<<"$contents") man pages)"
