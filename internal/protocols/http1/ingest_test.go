package http1

import (
	"net/netip"
	"testing"

	"github.com/weft-dev/weft/internal/conntrack"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/redact"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/wire"
)

// recycler stands for the exporter: it gives each span's attributes back
// to the pool, as the OTLP queue does once a batch is sent.
type recycler struct {
	pool *spans.AttrPool
	n    int
}

func (r *recycler) Export(s spans.Span) {
	r.n++
	r.pool.Recycle(&s)
}

// BenchmarkIngest is the agent's user-space path per HTTP/1 exchange, from
// decoded ring events to a finished span: the connection table, the
// HTTP/1 parser and the span converter, on keep-alive connections of a
// traced server (the make bench hello server's traffic). The exporter is
// left out (internal/export's benchmarks).
func BenchmarkIngest(b *testing.B) {
	pool := &spans.AttrPool{}
	sink := &recycler{pool: pool}
	met := metrics.New()
	tab := conntrack.New(conntrack.Config{Metrics: met, Protocols: conntrack.Protocols{
		Fallback: New(Config{Sink: sink, Metrics: met, MaxHeaderBytes: 8192, Redact: redact.Default(), Attrs: pool}),
	}})
	tab.Track(&probes.Process{PID: 42})
	req := []byte("GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nDate: Sun, 06 Dec 2026 12:00:00 GMT\r\nContent-Length: 13\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello, world\n")
	local := netip.MustParseAddrPort("127.0.0.1:8080")
	const conns = 16
	var ev conntrack.Event
	t := uint64(1e9)
	i := 0
	for b.Loop() {
		conn := uint64(i%conns + 1)
		i++
		t += 1000
		ev = conntrack.Event{Kind: conntrack.KindData, PID: 42, Conn: conn, Local: local,
			Remote: netip.AddrPortFrom(local.Addr(), uint16(40000+conn)),
			Chunk:  wire.Chunk{Dir: wire.DirRead, Time: t, Len: len(req), Data: req, Goid: 7},
			IDs:    conntrack.IDs{Trace: [16]byte{1, byte(i)}, Span: [8]byte{2, byte(i)}, Made: true}}
		tab.Handle(&ev)
		t += 1000
		ev = conntrack.Event{Kind: conntrack.KindData, PID: 42, Conn: conn, Local: local,
			Remote: netip.AddrPortFrom(local.Addr(), uint16(40000+conn)),
			Chunk:  wire.Chunk{Dir: wire.DirWrite, Time: t, Len: len(resp), Data: resp, Goid: 7}}
		tab.Handle(&ev)
	}
	b.StopTimer()
	if sink.n < b.N-conns {
		b.Fatalf("%d spans from %d exchanges", sink.n, b.N)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/span")
}
