package spans

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

// TestAttrPool: arrays come back empty and cleared, the span lets go of
// its own, odd sizes and a nil pool are fine.
func TestAttrPool(t *testing.T) {
	var nilPool *AttrPool
	if a := nilPool.Attrs(16); len(a) != 0 || cap(a) != 16 {
		t.Fatalf("nil pool: len %d cap %d", len(a), cap(a))
	}
	nilPool.Recycle(&Span{Attrs: make([]attribute.KeyValue, 3, 16)})

	p := &AttrPool{}
	a := p.Attrs(16)
	if len(a) != 0 || cap(a) < 16 {
		t.Fatalf("len %d cap %d", len(a), cap(a))
	}
	a = append(a, attribute.String("url.path", "/secret"), attribute.Int("server.port", 80))
	s := Span{Attrs: a}
	p.Recycle(&s)
	if s.Attrs != nil {
		t.Fatal("the span still holds its attributes")
	}
	// Whatever comes back must be empty, big enough, and hold nothing of
	// the last span.
	for range 100 {
		b := p.Attrs(12)
		if len(b) != 0 || cap(b) < 12 {
			t.Fatalf("len %d cap %d", len(b), cap(b))
		}
		for _, kv := range b[:cap(b)] {
			if kv.Key != "" || kv.Value.Type() != attribute.INVALID {
				t.Fatalf("a recycled array still holds %v", kv)
			}
		}
		s := Span{Attrs: append(b, attribute.String("k", "v"))}
		p.Recycle(&s)
	}
	// Too small or too big to be worth keeping: left to the collector.
	p.Recycle(&Span{Attrs: make([]attribute.KeyValue, 1, 2)})
	p.Recycle(&Span{Attrs: make([]attribute.KeyValue, 1, 1024)})
	if b := p.Attrs(16); cap(b) > 32 {
		t.Fatalf("a %d-slot array came back", cap(b))
	}

	// A batch at once: every span lets go, and the pool keeps at most
	// poolKeep arrays however many come back.
	batch := make([]Span, poolKeep+100)
	for i := range batch {
		batch[i].Attrs = append(p.Attrs(16), attribute.String("k", "v"))
	}
	p.RecycleAll(batch)
	for i := range batch {
		if batch[i].Attrs != nil {
			t.Fatalf("span %d still holds its attributes", i)
		}
	}
	if len(p.free) != poolKeep {
		t.Fatalf("the pool keeps %d arrays, want %d", len(p.free), poolKeep)
	}
	for range poolKeep {
		b := p.Attrs(16)
		for _, kv := range b[:cap(b)] {
			if kv.Key != "" {
				t.Fatalf("a recycled array still holds %v", kv)
			}
		}
	}
	nilPool.RecycleAll(batch[:2])
}

func BenchmarkAttrPool(b *testing.B) {
	p := &AttrPool{}
	for b.Loop() {
		a := p.Attrs(16)
		a = append(a, attribute.String("http.request.method", "GET"))
		s := Span{Attrs: a}
		p.Recycle(&s)
	}
}
