package spandedupprocessor

import (
	"context"
	"errors"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"
)

// batch builds traces with one resource per entry of spans, each holding
// one scope with spans of the given IDs (trace 1).
func batch(spans ...[]byte) ptrace.Traces {
	td := ptrace.NewTraces()
	for i, ids := range spans {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutInt("n", int64(i))
		ss := rs.ScopeSpans().AppendEmpty()
		for _, id := range ids {
			s := ss.Spans().AppendEmpty()
			s.SetTraceID(pcommon.TraceID{1})
			s.SetSpanID(pcommon.SpanID{id})
		}
	}
	return td
}

func ids(td ptrace.Traces) []byte {
	var out []byte
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		sss := td.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			for k := 0; k < sss.At(j).Spans().Len(); k++ {
				out = append(out, sss.At(j).Spans().At(k).SpanID()[0])
			}
		}
	}
	return out
}

func TestFilter(t *testing.T) {
	for _, tc := range []struct {
		name          string
		seen          []byte
		in            ptrace.Traces
		want          []byte
		wantResources int
		wantDropped   int
	}{
		{"all new", nil, batch([]byte{1, 2}, []byte{3}), []byte{1, 2, 3}, 2, 0},
		{"a copy inside one batch", nil, batch([]byte{1, 1}, []byte{1}), []byte{1}, 1, 2},
		{"copies of earlier spans", []byte{2, 3}, batch([]byte{1, 2}, []byte{3}), []byte{1}, 1, 2},
		{"nothing left", []byte{1, 2}, batch([]byte{1}, []byte{2}), nil, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSeenSet(16)
			for _, id := range tc.seen {
				s.add(key(id))
			}
			fresh, dropped := filter(tc.in, s.add)
			if got := ids(tc.in); string(got) != string(tc.want) {
				t.Errorf("left %v, want %v", got, tc.want)
			}
			if len(fresh) != len(tc.want) || dropped != tc.wantDropped {
				t.Errorf("fresh %d, dropped %d; want %d, %d", len(fresh), dropped, len(tc.want), tc.wantDropped)
			}
			if n := tc.in.ResourceSpans().Len(); n != tc.wantResources {
				t.Errorf("%d resources left, want %d (empty ones removed)", n, tc.wantResources)
			}
		})
	}
}

func newProcessor(t *testing.T, maxSpans int, next consumer.Traces) *dedup {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.MaxSpans = maxSpans
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := NewFactory().CreateTraces(context.Background(),
		processortest.NewNopSettings(typeStr), cfg, next)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	return p.(*dedup)
}

// Two paths: the same spans arrive twice; the next consumer gets each once.
func TestTwoPaths(t *testing.T) {
	sink := new(consumertest.TracesSink)
	p := newProcessor(t, 100, sink)
	ctx := context.Background()
	for _, td := range []ptrace.Traces{batch([]byte{1, 2, 3}), batch([]byte{2, 3, 4}), batch([]byte{1, 2, 3, 4})} {
		if err := p.ConsumeTraces(ctx, td); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	for _, td := range sink.AllTraces() {
		got = append(got, ids(td)...)
	}
	if string(got) != string([]byte{1, 2, 3, 4}) {
		t.Errorf("passed %v, want each of 1..4 once", got)
	}
	if n := len(sink.AllTraces()); n != 2 {
		t.Errorf("%d batches passed on, want 2 (an all-copies batch is not sent on)", n)
	}
}

type refusing struct {
	consumertest.TracesSink
	refuse bool
}

func (r *refusing) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	if r.refuse {
		return errors.New("refused")
	}
	return r.TracesSink.ConsumeTraces(ctx, td)
}

// A batch the next consumer refused is retried by its sender: the retry
// is not a copy.
func TestRefusedBatchIsNotRemembered(t *testing.T) {
	next := &refusing{refuse: true}
	p := newProcessor(t, 100, next)
	ctx := context.Background()
	if err := p.ConsumeTraces(ctx, batch([]byte{1, 2})); err == nil {
		t.Fatal("the next consumer's error was not returned")
	}
	next.refuse = false
	if err := p.ConsumeTraces(ctx, batch([]byte{1, 2})); err != nil {
		t.Fatal(err)
	}
	if got := next.SpanCount(); got != 2 {
		t.Errorf("%d spans passed after the retry, want 2", got)
	}
}

func TestConfig(t *testing.T) {
	if err := createDefaultConfig().(*Config).Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	for _, n := range []int{0, -1} {
		err := (&Config{MaxSpans: n}).Validate()
		if !errors.Is(err, errMaxSpans) {
			t.Errorf("max_spans %d: %v, want errMaxSpans", n, err)
		}
	}
	if NewFactory().Type() != component.MustNewType("span_dedup") {
		t.Errorf("type %s", NewFactory().Type())
	}
}

// Copies arriving at once on several connections: each span passes once.
func TestConcurrentCopies(t *testing.T) {
	sink := new(consumertest.TracesSink)
	p := newProcessor(t, 1000, sink)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				ids := []byte{byte(i), byte(i + 50), byte(i + 100)}
				if err := p.ConsumeTraces(context.Background(), batch(ids)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if got := sink.SpanCount(); got != 150 {
		t.Errorf("%d spans passed, want the 150 distinct ones once each", got)
	}
}
