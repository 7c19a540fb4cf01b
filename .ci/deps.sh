#!/usr/bin/env bash
# deps.sh installs every Debian package the test suite uses, then the QEMU
# guest kernel. Idempotent; .ci/run calls it, and so can a developer.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# iproute2: netns, veth, bridges for host-port tests; iputils-ping, iperf3:
# real peers in those namespaces; tshark: checks captures; socat: pty and
# serial peers; ethtool: offloads off on test veths; prometheus: scrapes
# zswitch and runs every Grafana dashboard query (metrics/prometheus_test.go);
# busybox-static, qemu-system-x86: QEMU guests (see qemu-deps.sh);
# vde2: vde_switch and vde_plug, a peer of go run ./bench/cmd/zbench.
pkgs=(iproute2 iputils-ping iperf3 tshark socat ethtool prometheus ca-certificates vde2)

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
	echo "deps: installing ${missing[*]}" >&2
	"${sudo[@]}" apt-get update -qq
	# tshark asks whether non-root users may capture; the default (no) is fine.
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The package also starts a system Prometheus on :9090 where systemd runs;
# the tests start their own on a free loopback port and need none.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
	"${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
"$here/qemu-deps.sh"

# gvproxy (gvisor-tap-vsock), the Go switch zbench compares with, pinned:
# the results name this version. Installed where zbench looks for it,
# $(go env GOPATH)/bin, unless that one is already there. GOFLAGS= drops
# flags meant for this module (e.g. -mod=vendor) from the install.
gvproxy_version=v0.8.9
gvproxy="$(go env GOPATH)/bin/gvproxy"
if ! "$gvproxy" -version 2>/dev/null | grep -q "$gvproxy_version"; then
	echo "deps: installing gvproxy $gvproxy_version" >&2
	GOFLAGS= go install "github.com/containers/gvisor-tap-vsock/cmd/gvproxy@$gvproxy_version"
fi
