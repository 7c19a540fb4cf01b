package frame

import (
	"sync"
	"testing"
)

func TestPoolGetPut(t *testing.T) {
	p := NewPool(4, 128)
	fs := make([]*Frame, 8)
	if n := p.Get(fs); n != 4 {
		t.Fatalf("Get from a pool of 4 returned %d", n)
	}
	for _, f := range fs[:4] {
		if f.Len() != 0 || f.Cap() != 128 || f.Pool() != p {
			t.Fatalf("fresh frame: len %d cap %d", f.Len(), f.Cap())
		}
	}
	if n := p.Get(fs[4:]); n != 0 {
		t.Fatalf("empty pool gave %d frames", n)
	}
	p.Put(fs[:4])
	if free, total := p.Stats(); free != 4 || total != 4 {
		t.Fatalf("after Put: free %d total %d", free, total)
	}
}

func TestPoolGrowsToLimitLazily(t *testing.T) {
	p := NewPool(0, 64)
	fs := make([]*Frame, 10)
	if n := p.Get(fs); n != 0 {
		t.Fatalf("pool with limit 0 gave %d", n)
	}
	p.Reserve(300)
	if n := p.Get(fs); n != 10 {
		t.Fatalf("after Reserve: %d", n)
	}
	if _, total := p.Stats(); total != growStep {
		t.Fatalf("grew to %d, want one step of %d", total, growStep)
	}
	big := make([]*Frame, 400)
	if n := p.Get(big); n != 290 {
		t.Fatalf("Get beyond the limit returned %d, want the 290 left", n)
	}
}

func TestRefcount(t *testing.T) {
	p := NewPool(1, 64)
	fs := make([]*Frame, 1)
	p.Get(fs)
	f := fs[0]
	f.Retain(2)
	if f.Release() || f.Release() {
		t.Fatal("released early")
	}
	if !f.Release() {
		t.Fatal("last Release did not report last")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("over-release did not panic")
		}
	}()
	f.Release()
}

func TestSetLenBounds(t *testing.T) {
	p := NewPool(1, 64)
	fs := make([]*Frame, 1)
	p.Get(fs)
	fs[0].SetLen(64)
	defer func() {
		if recover() == nil {
			t.Fatal("SetLen past the slot did not panic")
		}
	}()
	fs[0].SetLen(65)
}

// TestPoolStress moves frames between many producers and consumers through
// channels, sharing some by refcount, and checks every slot comes home
// exactly once. Run with -race.
func TestPoolStress(t *testing.T) {
	const slots, producers, consumers, rounds = 512, 8, 4, 2000
	p := NewPool(slots, 64)
	ch := make(chan []*Frame, 64)
	var prod, cons sync.WaitGroup
	for i := range producers {
		prod.Go(func() {
			for r := range rounds {
				fs := make([]*Frame, 1+r%16)
				n := p.GetWait(fs, nil)
				for _, f := range fs[:n] {
					f.Space()[0] = byte(i)
					f.SetLen(1)
					if r%3 == 0 {
						f.Retain(1) // a "flood" to two consumers
						ch <- []*Frame{f}
					}
				}
				ch <- fs[:n]
			}
		})
	}
	for range consumers {
		cons.Go(func() {
			var free []*Frame
			for fs := range ch {
				for _, f := range fs {
					if f.Release() {
						free = append(free, f)
					}
				}
				p.Put(free)
				free = free[:0]
			}
		})
	}
	prod.Wait()
	close(ch)
	cons.Wait()
	if free, total := p.Stats(); free != total || total != slots {
		t.Fatalf("free %d total %d, want %d both: slots leaked or doubled", free, total, slots)
	}
	seen := map[*Frame]bool{}
	fs := make([]*Frame, slots)
	p.Get(fs)
	for _, f := range fs {
		if seen[f] {
			t.Fatal("a slot is in the free list twice")
		}
		seen[f] = true
	}
}

func BenchmarkPoolBatch(b *testing.B) {
	p := NewPool(1024, DefaultSlotSize)
	fs := make([]*Frame, 64)
	b.ReportAllocs()
	for b.Loop() {
		n := p.Get(fs)
		for _, f := range fs[:n] {
			f.Release()
		}
		p.Put(fs[:n])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/frame")
}
