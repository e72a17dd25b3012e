package export

import (
	"math"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/weft-dev/weft/internal/spans"
)

// encodeBatch is toResourceSpans written straight to the wire: each
// ResourceSpans comes back empty but for its encoded fields, held as the
// message's unknown fields, which proto.Marshal (gRPC's codec, the spool)
// writes out verbatim. The bytes are the ones proto.Marshal would produce
// for toResourceSpans' messages, with the same grouping (one ResourceSpans
// per resource, one ScopeSpans per scope, in first-seen order); building
// that message tree and having protobuf walk it cost most of the OTLP
// exporter's CPU. All resources share one buffer: one allocation a batch.
func encodeBatch(batch []spans.Span) []*tracepb.ResourceSpans {
	rss, _ := encodeBatchInto(nil, batch)
	return rss
}

// encodeBatchInto is encodeBatch writing into buf (from its start), which
// it grows if it must; it returns the buffer the messages hold, for the
// caller to reuse once they are sent.
func encodeBatchInto(buf []byte, batch []spans.Span) ([]*tracepb.ResourceSpans, []byte) {
	// Number each (resource, scope) pair in first-seen order, then list the
	// spans by pair (a counting sort, stable): pairs of one resource are
	// contiguous in resource order because scopes are numbered inside it.
	type scopeKey struct{ name, version string }
	type group struct {
		res    *resource.Resource
		scopes []scopeKey
		first  int // number of its first pair
	}
	var groups []group
	gs := make([]int32, len(batch)) // each span's group, then its pair
	for i := range batch {
		s := &batch[i]
		gi := -1
		for j := len(groups) - 1; j >= 0; j-- { // few resources a batch: a scan beats a map
			if groups[j].res == s.Resource {
				gi = j
				break
			}
		}
		if gi < 0 {
			groups = append(groups, group{res: s.Resource})
			gi = len(groups) - 1
		}
		g := &groups[gi]
		k := scopeKey{s.Scope, s.ScopeVersion}
		si := -1
		for j, sk := range g.scopes {
			if sk == k {
				si = j
				break
			}
		}
		if si < 0 {
			g.scopes = append(g.scopes, k)
			si = len(g.scopes) - 1
		}
		gs[i] = int32(gi<<16 | si) // scopes a resource: far fewer than 1<<16
	}
	pairs := 0
	for j := range groups {
		groups[j].first = pairs
		pairs += len(groups[j].scopes)
	}
	next := make([]int, pairs+1) // start of each pair's run in order
	for i, v := range gs {
		gs[i] = int32(groups[v>>16].first + int(v&0xffff))
		next[gs[i]+1]++
	}
	for p := 1; p <= pairs; p++ {
		next[p] += next[p-1]
	}
	ends := make([]int, pairs)
	order := make([]int32, len(batch))
	for i, p := range gs {
		order[next[p]] = int32(i)
		next[p]++
	}
	copy(ends, next[:pairs])

	// 512 bytes a span is more than the usual span takes: one allocation.
	b := buf[:0]
	if need := 512*len(batch) + 256; cap(b) < need {
		b = make([]byte, 0, need)
	}
	out := make([]*tracepb.ResourceSpans, 0, len(groups))
	pos := 0
	for _, g := range groups {
		start := len(b)
		var m int
		b, m = begin(b, 1) // ResourceSpans.resource
		for _, kv := range g.res.Attributes() {
			b = appendKeyValue(b, 1, kv) // Resource.attributes
		}
		b = end(b, m)
		for j, sk := range g.scopes {
			var ss, sc int
			b, ss = begin(b, 2) // ResourceSpans.scope_spans
			b, sc = begin(b, 1) // ScopeSpans.scope
			b = appendStr(b, 1, sk.name)
			b = appendStr(b, 2, sk.version)
			b = end(b, sc)
			for ; pos < ends[g.first+j]; pos++ {
				b = appendSpan(b, &batch[order[pos]])
			}
			b = end(b, ss)
		}
		b = appendStr(b, 3, g.res.SchemaURL())
		rs := &tracepb.ResourceSpans{}
		rs.ProtoReflect().SetUnknown(protoreflect.RawFields(b[start:len(b):len(b)]))
		out = append(out, rs)
	}
	return out, b
}

// The append functions below write protobuf fields; they take and return
// the buffer, append-style, so that it lives in registers rather than
// behind a pointer. A nested message is opened with begin, which leaves
// one byte for its length, and closed with end, which moves the body along
// when the length needs more.

func begin(b []byte, field protowire.Number) ([]byte, int) {
	b = appendTag(b, field, protowire.BytesType)
	b = append(b, 0)
	return b, len(b)
}

// appendTag and appendLen are protowire's, with the one-byte case (every
// tag of fields 1 to 15, most lengths) inlined: protowire.AppendVarint is
// a call per varint, and a span has about a hundred of them.
func appendTag(b []byte, field protowire.Number, t protowire.Type) []byte {
	if v := uint64(field)<<3 | uint64(t&7); v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendTag(b, field, t)
}

func appendLen(b []byte, n int) []byte {
	if n < 0x80 {
		return append(b, byte(n))
	}
	return protowire.AppendVarint(b, uint64(n))
}

func end(b []byte, start int) []byte {
	n := len(b) - start
	if n < 0x80 {
		b[start-1] = byte(n)
		return b
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	b = append(b, make([]byte, extra)...)
	copy(b[start+extra:], b[start:start+n])
	protowire.AppendVarint(b[:start-1], uint64(n))
	return b
}

// appendStr writes a proto3 string field, omitted when empty.
func appendStr(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = appendTag(b, field, protowire.BytesType)
	b = appendLen(b, len(s))
	return append(b, s...)
}

func appendBytes(b []byte, field protowire.Number, v []byte) []byte {
	b = appendTag(b, field, protowire.BytesType)
	b = appendLen(b, len(v))
	return append(b, v...)
}

func appendVarint(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = appendTag(b, field, protowire.VarintType)
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// appendVarintAlways writes a varint field even when it is zero (a oneof
// member).
func appendVarintAlways(b []byte, field protowire.Number, v uint64) []byte {
	b = appendTag(b, field, protowire.VarintType)
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

func appendFixed64(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = appendTag(b, field, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

// appendSpan writes ScopeSpans.spans: the fields spanPB sets.
func appendSpan(b []byte, s *spans.Span) []byte {
	b, m := begin(b, 2)
	b = appendBytes(b, 1, s.TraceID[:])
	b = appendBytes(b, 2, s.SpanID[:])
	b = appendStr(b, 3, s.TraceState)
	if s.Parent.IsValid() {
		b = appendBytes(b, 4, s.Parent[:])
	}
	b = appendStr(b, 5, s.Name)
	b = appendVarint(b, 6, uint64(otlpKind(s.Kind)))
	b = appendFixed64(b, 7, uint64(s.Start.UnixNano()))
	b = appendFixed64(b, 8, uint64(s.End.UnixNano()))
	for _, kv := range s.Attrs {
		b = appendKeyValue(b, 9, kv)
	}
	b, st := begin(b, 15) // present even when unset, as spanPB makes it
	if s.Error {
		b = appendStr(b, 2, s.StatusMsg)
		b = appendVarint(b, 3, uint64(tracepb.Status_STATUS_CODE_ERROR))
	}
	b = end(b, st)
	if f := spanFlags(s); f != 0 {
		b = protowire.AppendTag(b, 16, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, f)
	}
	return end(b, m)
}

func appendKeyValue(b []byte, field protowire.Number, kv attribute.KeyValue) []byte {
	b, m := begin(b, field)
	b = appendStr(b, 1, string(kv.Key))
	b = appendAnyValue(b, 2, kv.Value)
	return end(b, m)
}

// appendAnyValue writes an AnyValue message as anyValue builds it: the
// oneof member is written even when it holds its zero value.
func appendAnyValue(b []byte, field protowire.Number, v attribute.Value) []byte {
	b, m := begin(b, field)
	switch v.Type() {
	case attribute.EMPTY:
	case attribute.BOOL:
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = appendVarintAlways(b, 3, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = protowire.AppendTag(b, 4, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		str := v.AsString()
		b = append(b, byte(1<<3|protowire.BytesType))
		b = appendLen(b, len(str))
		b = append(b, str...)
	case attribute.BYTESLICE:
		b = appendBytes(b, 7, v.AsByteSlice())
	case attribute.BOOLSLICE:
		b = appendArray(b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		b = appendArray(b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		b = appendArray(b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		b = appendArray(b, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		b = appendArray(b, v.AsSlice(), func(x attribute.Value) attribute.Value { return x })
	case attribute.MAP:
		var kl int
		b, kl = begin(b, 6)
		for _, kv := range v.AsMap() {
			b = appendKeyValue(b, 1, kv)
		}
		b = end(b, kl)
	default:
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, v.Emit())
	}
	return end(b, m)
}

func appendArray[T any](b []byte, xs []T, conv func(T) attribute.Value) []byte {
	b, a := begin(b, 5)
	for _, x := range xs {
		b = appendAnyValue(b, 1, conv(x))
	}
	return end(b, a)
}
