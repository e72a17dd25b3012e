package export

import (
	"strings"
	"testing"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// splitInput builds a request of len(sizes) resources; resource r has one
// scope per entry of sizes[r], each with spans whose padding attribute
// holds the given number of bytes. Span names number them in order.
func splitInput(sizes [][][]int) []*tracepb.ResourceSpans {
	var rss []*tracepb.ResourceSpans
	n := 0
	for r, scopes := range sizes {
		rs := &tracepb.ResourceSpans{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: strings.Repeat("s", r+1)}}}}},
			SchemaUrl: "https://opentelemetry.io/schemas/1.26.0"}
		for sc, pads := range scopes {
			ss := &tracepb.ScopeSpans{Scope: &commonpb.InstrumentationScope{Name: strings.Repeat("k", sc+1)}}
			for _, pad := range pads {
				ss.Spans = append(ss.Spans, &tracepb.Span{Name: spanName(n), TraceId: make([]byte, 16), SpanId: make([]byte, 8),
					Attributes: []*commonpb.KeyValue{{Key: "pad", Value: &commonpb.AnyValue{
						Value: &commonpb.AnyValue_StringValue{StringValue: strings.Repeat("x", pad)}}}}})
				n++
			}
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		rss = append(rss, rs)
	}
	return rss
}

func spanName(i int) string { return "span-" + strings.Repeat("0", 4-len(itoa(i))) + itoa(i) }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}

type flatSpan struct{ resource, scope, name string }

// flatten lists the spans of rss in order with the resource and scope
// each is under.
func flatten(rss []*tracepb.ResourceSpans) []flatSpan {
	var out []flatSpan
	for _, rs := range rss {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				out = append(out, flatSpan{rs.Resource.Attributes[0].Value.GetStringValue(), ss.Scope.Name, sp.Name})
			}
		}
	}
	return out
}

// checkSplit: head fits, head then rest are the input's spans in order
// under their own resources and scopes, less exactly the spans too large
// alone; no empty resource or scope is made.
func checkSplit(t *testing.T, rss []*tracepb.ResourceSpans, max int) (head, rest []*tracepb.ResourceSpans, tooLarge int) {
	t.Helper()
	head, rest, tooLarge = splitRequest(rss, max)
	if rest != nil || tooLarge > 0 {
		if got := proto.Size(&tracepb.TracesData{ResourceSpans: head}); got > max {
			t.Fatalf("head encodes to %d bytes, over %d", got, max)
		}
	}
	var want []flatSpan
	dropped := 0
	for _, rs := range rss {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				alone := &tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl,
					ScopeSpans: []*tracepb.ScopeSpans{{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl, Spans: []*tracepb.Span{sp}}}}}}
				if max > 0 && proto.Size(alone) > max {
					dropped++
					continue
				}
				want = append(want, flatSpan{rs.Resource.Attributes[0].Value.GetStringValue(), ss.Scope.Name, sp.Name})
			}
		}
	}
	if tooLarge != dropped {
		t.Fatalf("%d spans too large alone, %d counted", dropped, tooLarge)
	}
	got := append(flatten(head), flatten(rest)...)
	if len(got)+tooLarge != len(flatten(rss)) {
		t.Fatalf("%d in head and rest + %d too large, of %d", len(got), tooLarge, len(flatten(rss)))
	}
	if len(got) == len(want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("span %d: %v, want %v", i, got[i], want[i])
			}
		}
	}
	for _, part := range [][]*tracepb.ResourceSpans{head, rest} {
		if rest == nil && tooLarge == 0 {
			break // rss as given
		}
		for _, rs := range part {
			if len(rs.ScopeSpans) == 0 {
				t.Fatal("an empty resource")
			}
			for _, ss := range rs.ScopeSpans {
				if len(ss.Spans) == 0 {
					t.Fatal("an empty scope")
				}
			}
		}
	}
	if len(head) == 0 && len(got) > 0 {
		t.Fatal("spans left but none in head")
	}
	return head, rest, tooLarge
}

func TestSplitRequest(t *testing.T) {
	for _, tc := range []struct {
		name              string
		sizes             [][][]int
		max               int
		head, rest, large int
	}{
		{"fits", [][][]int{{{100, 100}}}, 1 << 20, 2, 0, 0},
		{"no limit", [][][]int{{{5000, 5000}}}, 0, 2, 0, 0},
		{"two of three", [][][]int{{{1000, 1000, 1000}}}, 2300, 2, 1, 0},
		{"one each", [][][]int{{{1000, 1000, 1000}}}, 1200, 1, 2, 0},
		{"across scopes", [][][]int{{{600}, {600}, {600}}}, 1600, 2, 1, 0},
		{"across resources", [][][]int{{{600}}, {{600, 600}}, {{600}}}, 1700, 2, 2, 0},
		{"too large first", [][][]int{{{5000, 100, 100}}}, 1000, 2, 0, 1},
		{"too large between", [][][]int{{{400, 5000, 400, 400}}}, 1200, 2, 1, 1},
		{"all too large", [][][]int{{{5000}}, {{6000}}}, 1000, 0, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head, rest, large := checkSplit(t, splitInput(tc.sizes), tc.max)
			if h, r := len(flatten(head)), len(flatten(rest)); h != tc.head || r != tc.rest || large != tc.large {
				t.Errorf("head %d rest %d too large %d, want %d %d %d", h, r, large, tc.head, tc.rest, tc.large)
			}
		})
	}
}

// FuzzSplitRequest: any shape and limit gives a head that fits and
// loses or reorders no span (checkSplit).
func FuzzSplitRequest(f *testing.F) {
	f.Add([]byte{3, 200, 200, 1, 9, 9}, uint16(700))
	f.Add([]byte{1, 255, 0, 2, 30}, uint16(100))
	f.Fuzz(func(t *testing.T, shape []byte, max uint16) {
		// shape: per span a byte; 0 starts a new resource, 1 a new scope,
		// others are a span padded by 8 times the byte.
		sizes := [][][]int{{{}}}
		for _, b := range shape {
			r := len(sizes) - 1
			switch b {
			case 0:
				sizes = append(sizes, [][]int{{}})
			case 1:
				sizes[r] = append(sizes[r], []int{})
			default:
				sc := len(sizes[r]) - 1
				sizes[r][sc] = append(sizes[r][sc], int(b)*8)
			}
		}
		in := splitInput(sizes)
		for range 64 { // every part of a file, as the sender sends them
			head, rest, _ := checkSplit(t, in, int(max))
			if rest == nil {
				return
			}
			in = rest
			if len(head) == 0 {
				t.Fatal("a rest with an empty head: the sender would loop")
			}
		}
	})
}
