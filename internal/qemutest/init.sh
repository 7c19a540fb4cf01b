#!/bin/sh
# /init of qemutest guests (busybox ash as PID 1). Parameters come from the
# kernel command line: zs.name=, zs.mods=a,b (insmod order), zs.ip=, zs.ip6=.
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run
mount -t devpts devpts /dev/pts
# Keep kernel messages (e.g. e1000 link state) off the console the test parses.
dmesg -n 1

for p in $(cat /proc/cmdline); do
	case $p in
	zs.name=*) hostname "${p#*=}" ;;
	zs.mods=*) mods=${p#*=} ;;
	zs.ip=*) ip4=${p#*=} ;;
	zs.ip6=*) ip6=${p#*=} ;;
	esac
done

for m in $(echo "$mods" | tr , ' '); do
	insmod "/lib/modules/$m.ko" || echo "qemutest: insmod $m failed"
done

# No DAD, so IPv6 addresses are usable as soon as the link is up.
for c in all default; do
	echo 0 >/proc/sys/net/ipv6/conf/$c/accept_dad
done
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
	echo 0 >/proc/sys/net/ipv6/conf/eth0/accept_dad
	[ -n "$ip4" ] && ip addr add "$ip4" dev eth0
	[ -n "$ip6" ] && ip -6 addr add "$ip6" dev eth0
	ip link set eth0 up
	# e1000 reports carrier a moment after up; packets sent before are lost.
	i=0
	while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
fi

export PS1='zs-qemutest# ' PS2=''
# A session leader opening ttyS0 makes it the controlling tty, so ^C from the
# test reaches a hung command. PID 1 must never exit, hence the loop.
while :; do
	setsid sh -c 'exec </dev/ttyS0 >/dev/ttyS0 2>&1; stty -echo; echo "ZSQEMUTEST-READY"; exec sh -i'
	echo "qemutest: shell exited, restarting" >/dev/ttyS0
done
