package fdb

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func mac(i int) MAC { return MAC{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)} }

func key(i int) Key { return Key{MAC: mac(i)} }

const t0 = int64(1_700_000_000_000) // an arbitrary wall-clock instant, in ms

func TestLearnLookup(t *testing.T) {
	tb := New(Config{})
	if _, ok := tb.Lookup(key(1)); ok {
		t.Fatal("empty table found a MAC")
	}
	if r := tb.Learn(key(1), 3, t0); r != Learned {
		t.Fatalf("first Learn = %v, want Learned", r)
	}
	if r := tb.Learn(key(1), 3, t0+5); r != Known {
		t.Fatalf("second Learn = %v, want Known", r)
	}
	if p, ok := tb.Lookup(key(1)); !ok || p != 3 {
		t.Fatalf("Lookup = %d,%v want 3,true", p, ok)
	}
	// The same MAC in another VLAN is another entry.
	if _, ok := tb.Lookup(Key{MAC: mac(1), VLAN: 100}); ok {
		t.Fatal("VLAN 100 saw VLAN 0's entry")
	}
	// The all-zero MAC is a valid key, not an empty slot.
	tb.Learn(Key{}, 7, t0)
	if p, ok := tb.Lookup(Key{}); !ok || p != 7 {
		t.Fatalf("zero MAC: %d,%v", p, ok)
	}
}

func TestMoveIsCounted(t *testing.T) {
	tb := New(Config{})
	tb.Learn(key(1), 1, t0)
	if r := tb.Learn(key(1), 2, t0+1); r != Moved {
		t.Fatalf("Learn on new port = %v, want Moved", r)
	}
	if p, _ := tb.Lookup(key(1)); p != 2 {
		t.Fatalf("after move: port %d, want 2", p)
	}
	if s := tb.Stats(); s.Moved != 1 || s.Learned != 1 || s.Entries != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestAging(t *testing.T) {
	tb := New(Config{AgingTime: 300 * time.Second})
	tb.Learn(key(1), 1, t0)
	tb.Learn(key(2), 1, t0)
	// key 2 keeps talking; its refresh happens once a second at most.
	for ms := int64(0); ms <= 200_000; ms += 500 {
		tb.Learn(key(2), 1, t0+ms)
	}
	if n := tb.Expire(t0 + 299_999); n != 0 {
		t.Fatalf("expired %d entries before the aging time", n)
	}
	if n := tb.Expire(t0 + 300_000); n != 1 {
		t.Fatalf("expired %d, want 1 (only the silent MAC)", n)
	}
	if _, ok := tb.Lookup(key(1)); ok {
		t.Fatal("aged entry still found")
	}
	if _, ok := tb.Lookup(key(2)); !ok {
		t.Fatal("active entry aged out")
	}
	if s := tb.Stats(); s.Aged != 1 || s.Entries != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestAgingDisabled(t *testing.T) {
	tb := New(Config{AgingTime: -1})
	tb.Learn(key(1), 1, t0)
	if n := tb.Expire(t0 + int64(365*24*time.Hour/time.Millisecond)); n != 0 {
		t.Fatalf("aging disabled but %d expired", n)
	}
}

func TestTableLimit(t *testing.T) {
	tb := New(Config{MaxEntries: 100})
	for i := range 150 {
		tb.Learn(key(i), 1, t0)
	}
	s := tb.Stats()
	if s.Entries != 100 || s.Refused != 50 {
		t.Fatalf("entries %d refused %d, want 100 and 50", s.Entries, s.Refused)
	}
	// Known MACs keep working, and aging frees room.
	if r := tb.Learn(key(5), 1, t0+1); r != Known {
		t.Fatalf("known MAC in full table: %v", r)
	}
	tb.Delete(key(0))
	if r := tb.Learn(key(149), 1, t0); r != Learned {
		t.Fatalf("after a delete: %v, want Learned", r)
	}
}

func TestPortLimit(t *testing.T) {
	tb := New(Config{PortLimit: 2})
	tb.Learn(key(1), 1, t0)
	tb.Learn(key(2), 1, t0)
	if r := tb.Learn(key(3), 1, t0); r != Refused {
		t.Fatalf("third MAC on a limited port: %v", r)
	}
	if r := tb.Learn(key(3), 2, t0); r != Learned {
		t.Fatalf("other port: %v", r)
	}
	// A move into a full port is refused too; a move out frees a place.
	if r := tb.Learn(key(3), 1, t0); r != Refused {
		t.Fatalf("move into full port: %v", r)
	}
	tb.Learn(key(1), 2, t0)
	if r := tb.Learn(key(4), 1, t0); r != Learned {
		t.Fatalf("after a move out: %v", r)
	}
}

func TestStatic(t *testing.T) {
	tb := New(Config{AgingTime: time.Second})
	tb.Learn(key(1), 1, t0)
	tb.AddStatic(key(1), 4)
	if r := tb.Learn(key(1), 2, t0); r != Bound {
		t.Fatalf("learning over a static entry: %v", r)
	}
	if n := tb.Expire(t0 + 10_000); n != 0 {
		t.Fatalf("static entry aged")
	}
	if p, _ := tb.Lookup(key(1)); p != 4 {
		t.Fatalf("static port %d", p)
	}
	if n := tb.Flush(); n != 0 {
		t.Fatal("Flush removed a static entry")
	}
	if n := tb.FlushPort(4, true); n != 1 {
		t.Fatal("FlushPort with static kept it")
	}
	if s := tb.Stats(); s.Entries != 0 || s.Static != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFlushPort(t *testing.T) {
	tb := New(Config{})
	for i := range 10 {
		tb.Learn(key(i), uint16(i%2), t0)
	}
	if n := tb.FlushPort(1, false); n != 5 {
		t.Fatalf("flushed %d, want 5", n)
	}
	for i := range 10 {
		_, ok := tb.Lookup(key(i))
		if ok != (i%2 == 0) {
			t.Fatalf("key %d present=%v", i, ok)
		}
	}
}

// TestChurnRehash drives many inserts and deletes through a small table so
// tombstones force rebuilds, and checks against a map.
func TestChurnRehash(t *testing.T) {
	tb := New(Config{MaxEntries: 64})
	ref := map[Key]uint16{}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		k := key(rng.IntN(200))
		if rng.IntN(3) == 0 {
			if tb.Delete(k) != (ref[k] != 0) {
				t.Fatalf("Delete(%v) disagrees with reference", k)
			}
			delete(ref, k)
			continue
		}
		p := uint16(1 + rng.IntN(5))
		if r := tb.Learn(k, p, t0); r != Refused {
			ref[k] = p
		}
	}
	for i := range 200 {
		p, ok := tb.Lookup(key(i))
		if ok != (ref[key(i)] != 0) || (ok && p != ref[key(i)]) {
			t.Fatalf("key %d: table %d,%v reference %d", i, p, ok, ref[key(i)])
		}
	}
	if s := tb.Stats(); s.Entries != len(ref) {
		t.Fatalf("entries %d, reference %d", s.Entries, len(ref))
	}
	if got := len(tb.Entries()); got != len(ref) {
		t.Fatalf("Entries() lists %d, reference %d", got, len(ref))
	}
}

// TestConcurrentLookupDuringChurn runs lock-free readers against writers
// under -race; a reader must never see a port no writer ever stored.
func TestConcurrentLookupDuringChurn(t *testing.T) {
	tb := New(Config{MaxEntries: 256, AgingTime: time.Millisecond})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if p, ok := tb.Lookup(key(i % 300)); ok && (p < 1 || p > 4) {
					t.Errorf("reader %d: impossible port %d", r, p)
					return
				}
			}
		})
	}
	for i := range 50000 {
		tb.Learn(key(i%300), uint16(1+i%4), t0+int64(i))
		if i%1000 == 0 {
			tb.Expire(t0 + int64(i))
		}
	}
	close(stop)
	wg.Wait()
}

func TestLookupAllocs(t *testing.T) {
	tb := New(Config{})
	tb.Learn(key(1), 1, t0)
	if a := testing.AllocsPerRun(1000, func() {
		tb.Lookup(key(1))
		tb.Learn(key(1), 1, t0+2000)
	}); a != 0 {
		t.Fatalf("Lookup+Learn allocate %v per call", a)
	}
}

func TestParseMAC(t *testing.T) {
	m, err := ParseMAC("52:54:00:12:34:56")
	if err != nil || m != (MAC{0x52, 0x54, 0, 0x12, 0x34, 0x56}) {
		t.Fatalf("ParseMAC: %v %v", m, err)
	}
	if _, err := ParseMAC("52:54:00:12:34"); err == nil {
		t.Fatal("short MAC accepted")
	}
	if k := keyFromWord(Key{MAC: m, VLAN: 4095}.word()); k.MAC != m || k.VLAN != 4095 {
		t.Fatalf("key round trip: %v", k)
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{16, 100_000} {
		b.Run(fmt.Sprintf("%dMACs", n), func(b *testing.B) {
			tb := New(Config{MaxEntries: max(n, DefaultMaxEntries)})
			for i := range n {
				tb.Learn(key(i), uint16(i%16), t0)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tb.Lookup(key(i % n))
				i++
			}
		})
	}
}

func BenchmarkLearnKnown(b *testing.B) {
	tb := New(Config{})
	for i := range 16 {
		tb.Learn(key(i), 1, t0)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tb.Learn(key(i&15), 1, t0)
		i++
	}
}
