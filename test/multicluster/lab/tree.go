package lab

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/weft-dev/weft/internal/otlpjson"
)

// ByTrace groups spans by trace ID.
func ByTrace(spans []otlpjson.Span) map[string][]otlpjson.Span {
	m := map[string][]otlpjson.Span{}
	for _, s := range spans {
		m[s.TraceID] = append(m[s.TraceID], s)
	}
	return m
}

var kinds = map[int]string{1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}

// Tree renders one trace as an indented tree with a waterfall: each span's
// service, cluster, kind, name, duration and where it crossed a cluster
// boundary. Spans whose parent is not in the trace are roots.
func Tree(spans []otlpjson.Span) string {
	if len(spans) == 0 {
		return "(no spans)\n"
	}
	byID := map[string]bool{}
	var start, end uint64
	clusters := map[string]bool{}
	for i, s := range spans {
		byID[s.SpanID] = true
		if i == 0 || s.StartUnixNano < start {
			start = s.StartUnixNano
		}
		if s.EndUnixNano > end {
			end = s.EndUnixNano
		}
		clusters[str(s.Resource["k8s.cluster.name"])] = true
	}
	children := map[string][]otlpjson.Span{}
	var roots []otlpjson.Span
	for _, s := range spans {
		if s.ParentSpanID == "" || !byID[s.ParentSpanID] {
			roots = append(roots, s)
		} else {
			children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
		}
	}
	order := func(ss []otlpjson.Span) {
		sort.Slice(ss, func(i, j int) bool { return ss[i].StartUnixNano < ss[j].StartUnixNano })
	}
	order(roots)
	total := end - start
	var b strings.Builder
	fmt.Fprintf(&b, "trace %s: %d spans in %d clusters, %.1f ms\n", spans[0].TraceID, len(spans), len(clusters), float64(total)/1e6)
	const barWidth = 24
	type row struct {
		label, cluster, bar, name, note string
		ms                              float64
	}
	var rows []row
	var walk func(s otlpjson.Span, prefix string, last bool, depth int)
	walk = func(s otlpjson.Span, prefix string, last bool, depth int) {
		branch, next := "├─ ", "│  "
		if last {
			branch, next = "└─ ", "   "
		}
		if depth == 0 {
			branch, next = "", ""
		}
		from, to := 0, 0
		if total > 0 {
			from = int(float64(s.StartUnixNano-start) / float64(total) * barWidth)
			to = int(float64(s.EndUnixNano-start)/float64(total)*barWidth + 0.999)
		}
		r := row{
			label:   fmt.Sprintf("%s%s%s %s", prefix, branch, str(s.Resource["service.name"]), kinds[s.Kind]),
			cluster: str(s.Resource["k8s.cluster.name"]),
			bar:     strings.Repeat(" ", from) + strings.Repeat("█", max(to-from, 1)),
			name:    s.Name,
			ms:      float64(s.EndUnixNano-s.StartUnixNano) / 1e6,
		}
		if src, dst := str(s.Attrs["cross_cluster.source"]), str(s.Attrs["cross_cluster.target"]); src != "" || dst != "" {
			r.note = fmt.Sprintf("  ⇢ crosses %s → %s", src, dst)
		}
		if s.StatusCode == 2 {
			r.note += "  ERROR"
		}
		rows = append(rows, r)
		kids := children[s.SpanID]
		order(kids)
		for i, k := range kids {
			walk(k, prefix+next, i == len(kids)-1, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, "", true, 0)
	}
	lw, cw := 0, 0
	for _, r := range rows {
		lw = max(lw, utf8.RuneCountInString(r.label))
		cw = max(cw, len(r.cluster))
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "%-*s  %-*s  %-*s %8.2f ms  %s%s\n", lw, r.label, cw, r.cluster, barWidth, r.bar, r.ms, r.name, r.note)
	}
	return b.String()
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}
