package sockets

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

type closer struct{ n atomic.Int32 }

func (c *closer) Close() error { c.n.Add(1); return nil }

func TestSessionEndsOnce(t *testing.T) {
	c := &closer{}
	s := NewSession(c)
	if s.IsDead() || s.Err() != nil {
		t.Fatal("a new session is dead")
	}
	var befores, firsts atomic.Int32
	errs := []error{errors.New("a"), errors.New("b"), errors.New("c"), errors.New("d")}
	var wg sync.WaitGroup
	for _, err := range errs {
		wg.Go(func() {
			if s.End(err, func() {
				befores.Add(1)
				if s.IsDead() {
					t.Error("Dead closed before before ran")
				}
			}) {
				firsts.Add(1)
			}
			// Whichever call ended it, the reason is there.
			if s.Err() == nil {
				t.Error("End returned with no Err")
			}
		})
	}
	wg.Wait()
	if f, b, n := firsts.Load(), befores.Load(), c.n.Load(); f != 1 || b != 1 || n != 1 {
		t.Fatalf("%d firsts, %d befores, %d closes; want 1 each", f, b, n)
	}
	select {
	case <-s.Dead():
	default:
		t.Fatal("Dead not closed")
	}
	if !s.IsDead() {
		t.Fatal("IsDead false after End")
	}
	if s.End(errors.New("late"), nil) {
		t.Fatal("End after End reported first")
	}
	if s.Err() == nil || s.Err().Error() == "late" {
		t.Fatalf("Err %v: want the first reason", s.Err())
	}
}
