package stream

import (
	"bytes"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// TestTryWrite: TryWriteFrames writes whole frames at once, in order, with
// the framing intact, also after a WriteFrames whose deadline has passed,
// and only up to the first frame WriteFrames would drop, counting nothing.
func TestTryWrite(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			c, q := listenPair(t, network, Options{WriteTimeout: 10 * time.Millisecond, MaxFrame: 1600})
			out := frames(t, 8, frame.DefaultSlotSize)
			for i, f := range out {
				setFrame(f, ethFrame(i, 60+i*100))
			}
			if n, cut := c.TryWriteFrames(out); n != len(out) || cut {
				t.Fatalf("TryWriteFrames to an idle peer: %d of %d frames, cut %v", n, len(out), cut)
			}
			for i := range out {
				if b := q.recv(t, 5*time.Second); !bytes.Equal(b, ethFrame(i, 60+i*100)) {
					t.Fatalf("frame %d: %d bytes, not the one sent", i, len(b))
				}
			}

			// WriteFrames leaves a write deadline that passes: TryWriteFrames
			// does not care.
			if n, err := c.WriteFrames(out[:1]); n != 1 || err != nil {
				t.Fatalf("WriteFrames: %d, %v", n, err)
			}
			q.recv(t, 5*time.Second)
			time.Sleep(30 * time.Millisecond)
			if n, _ := c.TryWriteFrames(out[1:2]); n != 1 {
				t.Fatalf("TryWriteFrames after the write deadline passed: %d frames", n)
			}
			q.recv(t, 5*time.Second)

			// A runt or an oversize frame ends the prefix it writes.
			for _, bad := range []int{0, 1601} {
				setFrame(out[2], ethFrame(2, bad))
				if n, _ := c.TryWriteFrames(out[:4]); n != 2 {
					t.Fatalf("frame 2 of length %d: TryWriteFrames wrote %d frames, want 2", bad, n)
				}
				q.recv(t, 5*time.Second)
				q.recv(t, 5*time.Second)
				if n, _ := c.TryWriteFrames(out[2:4]); n != 0 {
					t.Fatalf("TryWriteFrames wrote %d frames starting with one of length %d", n, bad)
				}
			}
			for r := range ports.NumDropReasons {
				if d := c.EgressDrops[r].Load(); d != 0 {
					t.Fatalf("TryWriteFrames counted %d drops (%v)", d, r)
				}
			}
		})
	}
}

// TestTryWriteFullSocket: against a peer that does not read, TryWriteFrames
// never waits; it writes what fits, keeps the rest of a frame it cut, and
// writes nothing more until Flush or WriteFrames has finished that frame.
// The peer then gets every frame counted as written, whole and in order.
func TestTryWriteFullSocket(t *testing.T) {
	for _, network := range networks {
		for _, finish := range []string{"Flush", "WriteFrames"} {
			t.Run(network+"/"+finish, func(t *testing.T) { testTryWriteFull(t, network, finish) })
		}
	}
}

func testTryWriteFull(t *testing.T, network, finish string) {
	c, q := listenPair(t, network, Options{})
	out := frames(t, 64, frame.DefaultSlotSize)
	sizes := []int{1514, 1023, 61, 777, 64}
	sent := 0 // frames TryWriteFrames reported written
	size := func(i int) int { return sizes[i%len(sizes)] }
	// recvAll reads every frame written so far and checks it.
	recvd := 0
	recvAll := func() {
		t.Helper()
		for ; recvd < sent; recvd++ {
			b, err := q.Recv(5 * time.Second)
			if err != nil {
				t.Fatalf("after %d of %d frames: %v", recvd, sent, err)
			}
			if !bytes.Equal(b, ethFrame(recvd, size(recvd))) {
				t.Fatalf("frame %d: %d bytes, not the one sent: the stream broke", recvd, len(b))
			}
		}
	}
	cut := false
	for round := 0; !cut; round++ {
		if round == 50 {
			t.Fatal("no frame was ever cut")
		}
		// Fill the socket: the first call that cannot write everything
		// found it full.
		for {
			for i, f := range out {
				setFrame(f, ethFrame(sent+i, size(sent+i)))
			}
			t0 := time.Now()
			n, k := c.TryWriteFrames(out)
			if d := time.Since(t0); d > 100*time.Millisecond {
				t.Fatalf("TryWriteFrames took %v", d)
			}
			sent += n
			if cut = k; n < len(out) {
				break
			}
		}
		if !cut {
			recvAll() // full at a frame boundary: drain, try again
		}
	}
	// The cut frame's rest is due first: nothing else goes out now.
	for i, f := range out {
		setFrame(f, ethFrame(sent+i, size(sent+i)))
	}
	if n, k := c.TryWriteFrames(out); n != 0 || k {
		t.Fatalf("TryWriteFrames with a frame cut: %d frames, cut %v", n, k)
	}
	done := make(chan error, 1)
	go func() {
		var err error
		if finish == "Flush" {
			err = c.Flush()
		} else {
			var n int
			n, err = c.WriteFrames(out[:1])
			if n != 1 {
				t.Errorf("WriteFrames after the cut: %d frames", n)
			}
		}
		done <- err
	}()
	recvAll()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if finish == "WriteFrames" {
		sent++
		recvAll()
	}
	// Clean again: TryWriteFrames writes at once.
	setFrame(out[0], ethFrame(sent, size(sent)))
	if n, k := c.TryWriteFrames(out[:1]); n != 1 || k {
		t.Fatalf("TryWriteFrames after the cut frame went out: %d, cut %v", n, k)
	}
	sent++
	recvAll()
	if c.Flush() != nil {
		t.Fatal("Flush with nothing cut failed")
	}
	for r := range ports.NumDropReasons {
		if d := c.EgressDrops[r].Load(); d != 0 {
			t.Fatalf("%d drops (%v)", d, r)
		}
	}
}

// TestTryWriteNotNow: no socket descriptor (a net.Pipe), a closed port: TryWriteFrames
// writes nothing and leaves everything to WriteFrames.
func TestTryWriteNotNow(t *testing.T) {
	out := frames(t, 2, frame.DefaultSlotSize)
	for i, f := range out {
		setFrame(f, ethFrame(i, 100))
	}
	c, _ := pipePair(t, Options{})
	if n, cut := c.TryWriteFrames(out); n != 0 || cut {
		t.Fatalf("TryWriteFrames on a pipe: %d, %v", n, cut)
	}
	d, _ := listenPair(t, "unix", Options{})
	d.Close()
	if n, cut := d.TryWriteFrames(out); n != 0 || cut {
		t.Fatalf("TryWriteFrames on a closed port: %d, %v", n, cut)
	}
	if err := d.Flush(); err != nil {
		t.Fatalf("Flush on a closed port: %v", err)
	}
}

func TestTryWriteZeroAllocs(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			a, b := portPair(t, network, Options{})
			out, in := frames(t, 8, frame.DefaultSlotSize), frames(t, 8, frame.DefaultSlotSize)
			for i, f := range out {
				setFrame(f, ethFrame(i, 100))
			}
			allocs := testing.AllocsPerRun(200, func() {
				if n, cut := a.TryWriteFrames(out); n != len(out) || cut {
					t.Fatalf("TryWriteFrames: %d, %v", n, cut)
				}
				for got := 0; got < len(out); {
					n, err := b.ReadFrames(in[:len(out)-got])
					if err != nil {
						t.Fatal(err)
					}
					got += n
				}
			})
			if allocs != 0 {
				t.Fatalf("%v allocs per batch, want 0", allocs)
			}
		})
	}
}
