// Package bench holds benchmarks of frames per second through the switch
// engine between real host ports: stream (unix socket, QEMU framing), TAP,
// and AF_PACKET on veth pairs, all inside a network namespace of their own.
// It has no code of its own; see host_test.go and README.md.
package bench
