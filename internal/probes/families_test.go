package probes

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// fake is a family that records when it starts and stops.
type fake struct {
	name  string
	after []Probe // nil: not Dependent
	dep   bool
	err   error
	gate  chan struct{} // Start waits on it when set
	log   *events
}

type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.list = append(e.list, s)
	e.mu.Unlock()
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

func (f *fake) Name() string { return f.name }
func (f *fake) Start(context.Context) error {
	f.log.add("start " + f.name)
	if f.gate != nil {
		<-f.gate
	}
	if f.err != nil {
		return f.err
	}
	f.log.add("started " + f.name)
	return nil
}
func (f *fake) Track(*Process) error { return nil }
func (f *fake) Untrack(int)          {}
func (f *fake) Shutdown(context.Context) error {
	f.log.add("stop " + f.name)
	return nil
}

// dependent is a fake that names what it starts after.
type dependent struct{ *fake }

func (d dependent) After() []Probe { return d.fake.after }

func TestFamiliesStartOrder(t *testing.T) {
	ev := &events{}
	sock := &fake{name: "sock", log: ev}
	inj := dependent{&fake{name: "inj", log: ev}}
	inj.after = []Probe{sock}
	// opt's Start waits (5 s at most) until grpc's has begun: grpc
	// starts beside inj and opt, as it depends on sock alone.
	optGate := make(chan struct{})
	opt := &fake{name: "opt", log: ev, gate: optGate} // not Dependent: after sock and inj
	grpc := dependent{&fake{name: "grpc", log: ev}}
	grpc.after = []Probe{sock}
	http := dependent{&fake{name: "http", log: ev}}
	http.after = []Probe{sock, inj}
	go func() {
		defer close(optGate)
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if slices.Contains(ev.get(), "start grpc") {
				return
			}
		}
	}()
	f := NewFamilies(nil, nil, sock, inj, opt, http, grpc)
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := ev.get()
	at := func(s string) int {
		i := slices.Index(got, s)
		if i < 0 {
			t.Fatalf("%q missing from %v", s, got)
		}
		return i
	}
	for _, c := range [][2]string{
		{"started sock", "start inj"}, {"started sock", "start grpc"}, {"started inj", "start opt"},
		{"started inj", "start http"}, {"start grpc", "started opt"},
	} {
		if at(c[0]) > at(c[1]) {
			t.Errorf("%q after %q: %v", c[0], c[1], got)
		}
	}
	if err := f.Start(context.Background()); err != nil || len(ev.get()) != len(got) {
		t.Errorf("a second Start started something: %v, %v", err, ev.get())
	}
	// Shutdown: each family stops before those it started after.
	if err := f.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	stops := ev.get()[len(got):]
	if len(stops) != 5 {
		t.Fatalf("stops %v, want each family's once", stops)
	}
	for _, c := range [][2]string{
		{"stop inj", "stop sock"}, {"stop grpc", "stop sock"}, {"stop opt", "stop inj"}, {"stop http", "stop inj"},
	} {
		if slices.Index(stops, c[0]) > slices.Index(stops, c[1]) || !slices.Contains(stops, c[0]) {
			t.Errorf("%q after %q: %v", c[0], c[1], stops)
		}
	}
}

func TestFamiliesStartFailure(t *testing.T) {
	ev := &events{}
	boom := errors.New("boom")
	sock := &fake{name: "sock", log: ev}
	inj := dependent{&fake{name: "inj", log: ev, err: boom}}
	inj.after = []Probe{sock}
	http := dependent{&fake{name: "http", log: ev}}
	http.after = []Probe{sock, inj}
	grpc := dependent{&fake{name: "grpc", log: ev}}
	grpc.after = []Probe{sock}
	f := NewFamilies(nil, nil, sock, inj, http, grpc)
	err := f.Start(context.Background())
	if !errors.Is(err, boom) {
		t.Fatalf("Start: %v, want the injector's error", err)
	}
	got := ev.get()
	if slices.Contains(got, "start http") {
		t.Errorf("a family whose dependency failed was started: %v", got)
	}
	for _, want := range []string{"stop sock", "stop grpc"} {
		if !slices.Contains(got, want) {
			t.Errorf("%q missing: the started families are stopped on failure: %v", want, got)
		}
	}
	if slices.Contains(got, "stop inj") {
		t.Errorf("the failed family was stopped: %v", got)
	}
}
