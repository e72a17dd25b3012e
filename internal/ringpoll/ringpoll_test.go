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
	kernel.Require(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		t.Fatal(err)
	}
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
			if time.Since(start) > 100*time.Millisecond {
				t.Errorf("a read with the Past deadline waited %v", time.Since(start))
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
