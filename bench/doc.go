// Package bench holds benchmarks of frames per second through the switch
// engine between real host ports: stream (unix socket, QEMU framing), TAP,
// and AF_PACKET on veth pairs, all inside a network namespace of their own.
// It has no code of its own; see host_test.go and README.md.
//
// The switch-versus-switch harness of issue 6 lives in internal/zbench
// (run it with go run ./bench/cmd/zbench); zbench_quick_test.go runs its
// quick mode so CI exercises it.
package bench
