package probes

import "testing"

// TestExes: an executable's entry lives while a process of it is counted,
// and goes with the last one.
func TestExes(t *testing.T) {
	e := NewExes[string]()
	a, b := ExeKey{Dev: 1, Ino: 10}, ExeKey{Dev: 1, Ino: 20}
	e.Use(1, a) // not attached: ignored
	if e.Release(1) {
		t.Fatal("a process of an unattached executable was counted")
	}
	e.Attached(a, nil, "grpc v1.66.2")
	e.Use(1, a)
	e.Use(2, a)
	e.Attached(b, nil, "other")
	e.Use(3, b)
	if info, ok := e.Info(a); !ok || info != "grpc v1.66.2" {
		t.Fatalf("Info(a) = %q, %v", info, ok)
	}
	if !e.Release(1) {
		t.Fatal("pid 1 not counted")
	}
	if _, ok := e.Info(a); !ok {
		t.Fatal("a detached while pid 2 still runs it")
	}
	e.Release(2)
	if _, ok := e.Info(a); ok {
		t.Fatal("a still attached after its last process went")
	}
	if e.Release(2) {
		t.Fatal("pid 2 released twice")
	}
	e.CloseAll()
	if _, ok := e.Info(b); ok || e.Release(3) {
		t.Fatal("CloseAll left b")
	}
}

// TestExesLinger: an executable selected at exec keeps its links after its
// last process, is taken up again by its next one, and at most MaxIdle
// such executables stay idle, the longest idle detached first.
func TestExesLinger(t *testing.T) {
	e := NewExes[int]()
	key := func(i int) ExeKey { return ExeKey{Dev: 1, Ino: uint64(i)} }
	for i := range MaxIdle + 2 {
		e.Attached(key(i), nil, i)
		e.Use(100+i, key(i))
		e.Linger(key(i))
	}
	for i := range MaxIdle {
		e.Release(100 + i) // idle: 0 … MaxIdle-1
	}
	e.Use(200, key(0)) // taken up again
	e.Release(200)     // idle again, now the most recent
	e.Release(100 + MaxIdle)
	e.Release(100 + MaxIdle + 1)
	// MaxIdle+2 idle executables: the two idle longest (1 and 2) went.
	for i := range MaxIdle + 2 {
		_, ok := e.Info(key(i))
		if want := i != 1 && i != 2; ok != want {
			t.Errorf("executable %d attached: %v, want %v", i, ok, want)
		}
	}
	if len(e.idle) != MaxIdle {
		t.Fatalf("%d idle, want %d", len(e.idle), MaxIdle)
	}
	// Without Linger, the last process still detaches.
	e.Attached(key(99), nil, 99)
	e.Use(300, key(99))
	e.Release(300)
	if _, ok := e.Info(key(99)); ok {
		t.Fatal("an executable not selected at exec stayed attached")
	}
}
