package export

import (
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// splitRequest cuts a decoded request (a spool file's) to what one upload
// may carry: head, in order, holds the first spans whose encoding stays
// within maxBytes (at least one unless none fits alone), rest the others,
// with the same resources and scopes. A span that cannot fit a request by
// itself is left out of both and counted in tooLarge: a receiver would
// refuse it every time, and every span behind it would wait.
//
// Batches are sealed by size before they are spooled (queue.push), but a
// file written by an agent from before that was not, and one over the
// receiver's limit (4 MiB by default) was refused on every retry. A head
// and rest that do not need cutting come back as rss and nil.
func splitRequest(rss []*tracepb.ResourceSpans, maxBytes int) (head, rest []*tracepb.ResourceSpans, tooLarge int) {
	if maxBytes <= 0 || proto.Size(&tracepb.TracesData{ResourceSpans: rss}) <= maxBytes {
		return rss, nil, 0
	}
	var h, r part
	size := 0
	full := false // head took all it may: the rest go to rest
	for _, rs := range rss {
		h.res, r.res = nil, nil
		rsSize := 16 + proto.Size(rs.Resource) + len(rs.SchemaUrl)
		for _, ss := range rs.ScopeSpans {
			h.scope, r.scope = nil, nil
			ssSize := 16 + proto.Size(ss.Scope) + len(ss.SchemaUrl)
			for _, sp := range ss.Spans {
				n := 16 + proto.Size(sp)
				if n+ssSize+rsSize > maxBytes && aloneSize(rs, ss, sp) > maxBytes {
					tooLarge++
					continue
				}
				if !full {
					add := n
					if h.scope == nil {
						add += ssSize
					}
					if h.res == nil {
						add += rsSize
					}
					if size+add <= maxBytes || size == 0 { // alone it fits (above)
						h.add(rs, ss, sp)
						size += add
						continue
					}
					full = true
				}
				r.add(rs, ss, sp)
			}
		}
	}
	return h.rss, r.rss, tooLarge
}

// part is one side of a split request being built: the resource and the
// scope it is filling, opened at their first span.
type part struct {
	rss   []*tracepb.ResourceSpans
	res   *tracepb.ResourceSpans
	scope *tracepb.ScopeSpans
}

// add appends sp, of scope ss of resource rs, to the part.
func (p *part) add(rs *tracepb.ResourceSpans, ss *tracepb.ScopeSpans, sp *tracepb.Span) {
	if p.res == nil {
		p.res = &tracepb.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl}
		p.rss = append(p.rss, p.res)
	}
	if p.scope == nil {
		p.scope = &tracepb.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl}
		p.res.ScopeSpans = append(p.res.ScopeSpans, p.scope)
	}
	p.scope.Spans = append(p.scope.Spans, sp)
}

// aloneSize is the exact size of a request of sp alone.
func aloneSize(rs *tracepb.ResourceSpans, ss *tracepb.ScopeSpans, sp *tracepb.Span) int {
	return proto.Size(&tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl,
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl, Spans: []*tracepb.Span{sp}}}}}})
}
