package zbench

import (
	"bytes"
	"sync/atomic"
	"time"
)

// receiver checks every frame of one flow arriving at one endpoint:
// intact (length, header, fill), in order (seq never goes back), and
// counts gaps as loss.
type receiver struct {
	ep      *endpoint
	flow    uint16
	size    int
	expect  uint64 // next seq wanted; frames below it are out of order
	got     uint64
	reorder uint64
	corrupt uint64
	foreign uint64 // not ours, another flow, or not data (announces, host noise)
	last    time.Time
	// fc.progress[idx] is expect, published before every read.
	fc  *flowCtl
	idx int
}

// run receives until the reader fails (the controller's deadline) or all
// of want (set once the sender is done; 0 = unknown yet) has been accounted.
func (r *receiver) run(want *atomic.Uint64) error {
	rd := r.ep.rd
	fill := r.size - hdrLen
	rd.beforeRead = func() { r.fc.published(r.idx, r.expect) }
	defer func() { rd.beforeRead = nil }()
	reads := rd.reads
	for {
		f, err := rd.next()
		if err != nil {
			return err
		}
		if rd.reads != reads {
			reads = rd.reads
			if w := want.Load(); w != 0 && r.expect >= w {
				return nil
			}
		}
		flow, kind, seq, ok := parse(f)
		if !ok || flow != r.flow || kind != kindData {
			r.foreign++
			continue
		}
		if len(f) != r.size || !bytes.Equal(f[hdrLen:], fillTemplates[byte(seq)][:fill]) {
			r.corrupt++
			continue
		}
		if seq < r.expect {
			r.reorder++
			continue
		}
		r.expect = seq + 1
		r.got++
		r.last = time.Now()
		if w := want.Load(); w != 0 && r.expect >= w {
			r.fc.published(r.idx, r.expect)
			return nil
		}
	}
}
