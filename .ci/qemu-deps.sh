#!/usr/bin/env bash
# qemu-deps.sh installs what internal/qemutest needs to boot QEMU guests and
# fills its kernel cache ($ZSWITCH_QEMU_CACHE, default
# /var/cache/zswitch-qemutest). Idempotent: run it once before `go test`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# xz-utils unpacks the kernel for the fast PVH boot; cpio and kmod are for
# inspecting initramfs images and modules by hand (the Go code needs neither).
pkgs=(qemu-system-x86 busybox-static cpio kmod xz-utils)

sudo=()
if [[ $(id -u) != 0 ]]; then
	sudo=(sudo)
fi

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing+=("$p")
	fi
done
if ((${#missing[@]})); then
	echo "qemu-deps: installing ${missing[*]}" >&2
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

"${sudo[@]}" env ZSWITCH_QEMU_CACHE="${ZSWITCH_QEMU_CACHE:-/var/cache/zswitch-qemutest}" \
	bash "$here/../internal/qemutest/fetch-kernel.sh"
