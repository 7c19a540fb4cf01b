#!/usr/bin/env bash
# fetch-kernel.sh downloads Debian's amd64 kernel package (the one the
# linux-image-amd64 meta-package currently depends on) and unpacks it into the
# qemutest cache as $cache/kernel/<package>_<version>_amd64/{boot,lib/modules}.
#
# It is idempotent and safe to run concurrently (flock): once any kernel is
# unpacked it does nothing. The Go package embeds this file and runs it when
# the cache is empty; .ci/qemu-deps.sh runs it directly. Progress goes to
# stderr.
set -euo pipefail

cache=${ZSWITCH_QEMU_CACHE:-/var/cache/zswitch-qemutest}
mkdir -p "$cache/kernel"
exec 9>"$cache/kernel/.lock"
flock 9

for d in "$cache"/kernel/*/; do
	if [[ -e $d.complete ]]; then
		echo "qemutest: kernel already cached in $d" >&2
		exit 0
	fi
done

# The meta-package is resolved instead of pinning an ABI version because
# Debian drops superseded linux-image-<abi> packages from the mirror.
resolve() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
pkg=$(resolve || true)
if [[ -z $pkg && $(id -u) == 0 ]]; then
	echo "qemutest: apt lists look empty, running apt-get update" >&2
	apt-get update -qq >&2
	pkg=$(resolve || true)
fi
if [[ -z $pkg ]]; then
	echo "qemutest: cannot resolve linux-image-amd64 (run apt-get update?)" >&2
	exit 1
fi

tmp=$(mktemp -d "$cache/kernel/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "qemutest: downloading $pkg into $cache/kernel" >&2
apt_opts=()
if [[ $(id -u) == 0 ]]; then
	apt_opts=(-o APT::Sandbox::User=root) # _apt cannot write into a root-owned cache
fi
(cd "$tmp" && apt-get download -q "${apt_opts[@]}" "$pkg") >&2
debs=("$tmp"/*.deb)
deb=${debs[0]}
dpkg-deb -x "$deb" "$tmp/root"
if ! compgen -G "$tmp/root/boot/vmlinuz-*" >/dev/null; then
	echo "qemutest: $deb has no /boot/vmlinuz-*" >&2
	exit 1
fi
touch "$tmp/root/.complete"
name=$(basename "$deb" .deb)
rm -rf "${cache:?}/kernel/$name"
mv "$tmp/root" "$cache/kernel/$name"
echo "qemutest: kernel unpacked into $cache/kernel/$name" >&2
