package ringpoll

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/weft-dev/weft/internal/testutil/kernel"
)

// writer loads a program that puts one 8-byte record in m with the given
// bpf_ringbuf_output flags each time it runs.
func writer(t *testing.T, m *ebpf.Map, flags int32) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL", Instructions: asm.Instructions{
		asm.Mov.Imm(asm.R1, 42),
		asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.Mov.Imm(asm.R3, 8),
		asm.Mov.Imm(asm.R4, flags),
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// ring makes a 64 KiB ring buffer and a reader of it; the map closes
// with the test.
func ring(t *testing.T) (*ebpf.Map, *ringbuf.Reader) {
	t.Helper()
	kernel.Require(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		t.Fatal(err)
	}
	return m, rd
}

func woken(w *Waker, within time.Duration) bool {
	select {
	case <-w.C():
		return true
	case <-time.After(within):
		return false
	}
}

// TestWaker: a record submitted with a wakeup wakes the loop through the
// netpoller, one with BPF_RB_NO_WAKEUP does not (the loop's timer finds
// it), a reader with the Past deadline drains both without waiting, and
// Close is safe twice and on nil.
func TestWaker(t *testing.T) {
	m, rd := ring(t)
	defer rd.Close()
	rd.SetDeadline(Past)
	w, err := NewWaker(m)
	if err != nil {
		t.Fatal(err)
	}
	drain := func() int {
		n := 0
		var rec ringbuf.Record
		for {
			start := time.Now()
			err := rd.ReadInto(&rec)
			// Past makes the reader's epoll_wait timeout 0. Without a
			// deadline a read of the empty ring blocks until a record
			// comes (none do: the test hangs); with one in the future it
			// returns then. The bound only has to leave room for a
			// goroutine descheduled on a loaded machine.
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("a read with the Past deadline waited %v", d)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return n
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n := drain(); n != 0 {
		t.Fatalf("%d records in a new ring", n)
	}
	in := make([]byte, 14)
	wake, quiet := writer(t, m, 0), writer(t, m, 1) // 1: BPF_RB_NO_WAKEUP
	if _, err := wake.Run(&ebpf.RunOptions{Data: in}); err != nil {
		t.Fatal(err)
	}
	if !woken(w, 2*time.Second) {
		t.Fatal("a record with a wakeup did not wake the waker")
	}
	if n := drain(); n != 1 {
		t.Errorf("drained %d records, want 1", n)
	}
	if _, err := quiet.Run(&ebpf.RunOptions{Data: in}); err != nil {
		t.Fatal(err)
	}
	if woken(w, 300*time.Millisecond) {
		t.Error("a record with BPF_RB_NO_WAKEUP woke the waker")
	}
	if n := drain(); n != 1 {
		t.Errorf("drained %d records, want 1", n)
	}
	for range 3 { // each wakes again once drained
		if _, err := wake.Run(&ebpf.RunOptions{Data: in}); err != nil {
			t.Fatal(err)
		}
		if !woken(w, 2*time.Second) {
			t.Fatal("no wakeup for a record after a drain")
		}
		drain()
	}
	w.Close()
	w.Close()
	var none *Waker
	none.Close()
	if none.C() != nil {
		t.Error("a nil Waker's channel is not nil")
	}
}

// TestGate: Pending is false on an empty ring and true with a record in
// it, whatever its wakeup flag; reading the record empties it; after
// Close (safe twice) Pending is false and a read says closed.
func TestGate(t *testing.T) {
	m, rd := ring(t)
	g := NewGate(rd)
	defer g.Close()
	rd.SetDeadline(Past)
	if g.Pending() || g.Closed() {
		t.Fatalf("a new ring: Pending %v, Closed %v", g.Pending(), g.Closed())
	}
	in := make([]byte, 14)
	for _, flags := range []int32{0, 1} { // 1: BPF_RB_NO_WAKEUP
		if _, err := writer(t, m, flags).Run(&ebpf.RunOptions{Data: in}); err != nil {
			t.Fatal(err)
		}
		if !g.Pending() {
			t.Fatalf("flags %d: a record is in the ring, Pending says no", flags)
		}
		var rec ringbuf.Record
		if err := rd.ReadInto(&rec); err != nil || len(rec.RawSample) != 8 {
			t.Fatalf("flags %d: read %d bytes, %v", flags, len(rec.RawSample), err)
		}
		if g.Pending() {
			t.Fatalf("flags %d: the ring was read empty, Pending says not", flags)
		}
	}
	if _, err := writer(t, m, 0).Run(&ebpf.RunOptions{Data: in}); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if g.Pending() || !g.Closed() {
		t.Errorf("after Close: Pending %v, Closed %v", g.Pending(), g.Closed())
	}
	var rec ringbuf.Record
	if err := rd.ReadInto(&rec); !errors.Is(err, ringbuf.ErrClosed) {
		t.Errorf("read after Close: %v, want ErrClosed", err)
	}
}
