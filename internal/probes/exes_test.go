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
