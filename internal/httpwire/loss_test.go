package httpwire

import (
	"strings"
	"testing"
)

const chunkedHead = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

func TestPipelinedLostResponse(t *testing.T) {
	// Responses to pipelined requests may follow each other inside the
	// lost bytes: the next status line cannot be matched safely.
	r := play(t, Limits{},
		R(get1+get2),
		WG(chunkedHead+"10\r\n0123456789abcdef\r\n", 20000),
		W(ok5),
		R(get1), W(ok0),
	)
	checkProblems(t, r, LostSync, Ambiguous)
	checkExchanges(t, r.ex)
	if !r.conn.Done() {
		t.Error("not given up")
	}
}

func TestBlindChunk(t *testing.T) {
	// While the response stream is lost, a chunk with nothing captured may
	// hold the start of the latest request's response: that request is
	// skipped rather than matched with a later status line.
	r := play(t, Limits{},
		R(get1),
		WG(chunkedHead+"10\r\n0123456789abcdef\r\n", 20000),
		R(get2),
		WG("", 500), // /two's response, not captured
		W(nf),       // could be /two's body
		R("GET /3 HTTP/1.1\r\n\r\n"),
		W(ok5),
	)
	checkProblems(t, r, LostSync)
	checkExchanges(t, r.ex,
		want{target: "/a?b", status: 200, end: 200, incomplete: IncompleteLostSync},
		want{target: "/3", status: 200, start: 600, end: 700},
	)
}

func TestLostResponseEnd(t *testing.T) {
	// A lost response ends with the last response chunk before the next
	// request was read, not with the chunk before the next status line.
	r := play(t, Limits{},
		R(get1),
		WG(chunkedHead+"10\r\n0123456789abcdef\r\n", 20000),
		W("end of /a?b"),
		R(get2),
		W(nf),
	)
	checkProblems(t, r, LostSync)
	checkExchanges(t, r.ex,
		want{target: "/a?b", status: 200, end: 300, incomplete: IncompleteLostSync},
		want{target: "/two", status: 404, start: 400, end: 500},
	)
	// Request bytes skipped after the request: unseen requests may have
	// been answered inside the lost response bytes, so its End is unknown.
	r = play(t, Limits{},
		R(post5[:len(post5)-5]),
		RG("ab", 20000), // body ends in the gap, and more follows
		WG(chunkedHead+"10\r\n0123456789abcdef\r\n", 20000),
		R(get2),
		W(nf),
	)
	checkProblems(t, r, LostSync, LostSync)
	checkExchanges(t, r.ex, want{target: "/two", status: 404, start: 400})
}

func TestStatusLineInPieces(t *testing.T) {
	r := play(t, Limits{},
		R(get1),
		WG(chunkedHead+"10\r\n0123456789abcdef\r\n", 20000),
		R(get2),
		W("HTTP/1"), W(".1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
	)
	checkProblems(t, r, LostSync)
	checkExchanges(t, r.ex,
		want{target: "/a?b", incomplete: IncompleteLostSync, end: 200},
		want{target: "/two", status: 404, start: 300, end: 500},
	)
}

func TestHeadInGap(t *testing.T) {
	// A request head cut by a gap after a valid request line: its response
	// is consumed by a phantom, not matched to the next request.
	r := play(t, Limits{},
		RG("GET /cut HTTP/1.1\r\nHost: x\r\nCookie: abc", 20000),
		W(nf),
		R(get2), W(ok5),
	)
	checkProblems(t, r, LostSync)
	checkExchanges(t, r.ex, want{target: "/two", status: 200, start: 300})
	// A response head cut by a gap: the exchange is skipped.
	r = play(t, Limits{},
		R(get1), WG("HTTP/1.1 200 OK\r\nX: ", 20000),
		R(get2), W(ok5),
	)
	checkProblems(t, r, LostSync)
	checkExchanges(t, r.ex, want{target: "/two", status: 200, start: 300})
}

func TestAllocations(t *testing.T) {
	req := []byte("GET /api/items?id=42 HTTP/1.1\r\nHost: svc\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	c := NewConn(Limits{})
	now := uint64(0)
	exchange := func() {
		now++
		c.Feed(Chunk{Dir: DirRead, Time: now, Len: len(req), Data: req})
		now++
		if ex, _ := c.Feed(Chunk{Dir: DirWrite, Time: now, Len: len(resp), Data: resp}); len(ex) != 1 {
			t.Fatal("no exchange")
		}
	}
	exchange()
	// Target, Host and User-Agent strings; nothing per chunk.
	if n := testing.AllocsPerRun(100, exchange); n > 3 {
		t.Errorf("%v allocations per exchange", n)
	}
	// A head split across reads is buffered without per-chunk allocations
	// once the buffer has grown.
	big := []byte("GET /x HTTP/1.1\r\nCookie: " + strings.Repeat("c", 6000) + "\r\n\r\n")
	split := func() {
		now++
		c.Feed(Chunk{Dir: DirRead, Time: now, Len: 4096, Data: big[:4096]})
		now++
		c.Feed(Chunk{Dir: DirRead, Time: now, Len: len(big) - 4096, Data: big[4096:]})
		now++
		c.Feed(Chunk{Dir: DirWrite, Time: now, Len: len(resp), Data: resp})
	}
	split()
	if n := testing.AllocsPerRun(100, split); n > 1 {
		t.Errorf("%v allocations per split exchange", n)
	}
	if cap(c.st[DirRead].buf) > 2*DefaultMaxHeaderBytes {
		t.Errorf("head buffer capacity %d", cap(c.st[DirRead].buf))
	}
}

func BenchmarkKeepAlive(b *testing.B) {
	req := []byte("GET /api/items?id=42 HTTP/1.1\r\nHost: svc\r\nUser-Agent: bench\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
	c := NewConn(Limits{})
	b.SetBytes(int64(len(req) + len(resp)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		t := uint64(i) * 2
		c.Feed(Chunk{Dir: DirRead, Time: t + 1, Len: len(req), Data: req})
		c.Feed(Chunk{Dir: DirWrite, Time: t + 2, Len: len(resp), Data: resp})
	}
}

func BenchmarkNotHTTP(b *testing.B) {
	data := []byte("\x17\x03\x03\x40\x00" + strings.Repeat("x", 1000))
	c := NewConn(Limits{})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c.Feed(Chunk{Dir: Dir(i & 1), Time: uint64(i), Len: len(data), Data: data})
	}
}

func TestPipelinedAfterOrphan(t *testing.T) {
	// The response stream is lost in an orphan response when two pipelined
	// requests arrive; skipped response bytes may hold the first one's
	// response.
	r := play(t, Limits{MidStream: true},
		W(nf[:30]), W(nf[30:]), // orphan; its length depends on the method
		R(get1+get2),
		W("tail of something"),
		W(ok5), W(ok0),
	)
	checkProblems(t, r, Orphan, Ambiguous)
	checkExchanges(t, r.ex)
	// Without skipped bytes since the requests, the next status line is the
	// first one's.
	r = play(t, Limits{MidStream: true},
		W(nf[:30]), W(nf[30:]),
		R(get1+get2),
		W(ok5), W(ok0),
	)
	checkProblems(t, r, Orphan)
	checkExchanges(t, r.ex, want{target: "/a?b", status: 200, end: 400}, want{target: "/two", end: 500})
}

// Regressions for wrong spans FuzzLossy found.
func TestMidStreamRegressions(t *testing.T) {
	// The first chunk seen may be request body data that looks like a
	// request: trust a request only after a response-direction chunk.
	r := play(t, Limits{MidStream: true}, R(get1), W(ok5), R(get2), W(nf))
	checkProblems(t, r, Unsynced, Orphan)
	checkExchanges(t, r.ex, want{target: "/two", status: 404, start: 300})
	// Blank lines before a request may be the tail of an unseen head.
	r = play(t, Limits{MidStream: true}, W("tail"), R("\r\n"+get1), W(ok5), R(get2), W(nf))
	checkProblems(t, r, Unsynced, Orphan)
	checkExchanges(t, r.ex, want{target: "/two", status: 404, start: 400})
	// A chunk may begin inside a method: "T /x" from "GET /x".
	r = play(t, Limits{MidStream: true}, W("tail"), R("T /x HTTP/1.1\r\n\r\n"), W(ok5), R(get2), W(nf))
	checkProblems(t, r, Unsynced, Orphan)
	checkExchanges(t, r.ex, want{target: "/two", status: 404, start: 400})
	// Likewise after a loss on a known connection.
	r = play(t, Limits{},
		R(get1), W(ok0),
		RG("GET /cut HTTP/1.1\r\nHost: x\r\nCookie: abc", 20000), W(nf),
		R("T /x HTTP/1.1\r\n\r\n"), W(ok5),
		R(get2), W(ok0),
	)
	checkProblems(t, r, LostSync, Orphan)
	checkExchanges(t, r.ex, want{target: "/a?b"}, want{target: "/two", start: 700})
}

func TestLostEndAtClose(t *testing.T) {
	// Request bytes were skipped after the request whose response was lost:
	// responses to unseen requests may be among the later response bytes,
	// so its End is unknown and it is dropped at close.
	r := play(t, Limits{},
		R(post5[:len(post5)-5]),
		WG(chunkedHead+"10\r\n0123456789abcdef\r\n", 20000),
		RG("ab", 20000),
		W("more"),
		closeStep(),
	)
	checkProblems(t, r, LostSync, LostSync)
	checkExchanges(t, r.ex)
	// Without skipped request bytes, its End is the last response chunk.
	r = play(t, Limits{},
		R(get1),
		WG(chunkedHead+"10\r\n0123456789abcdef\r\n", 20000),
		W("more"),
		closeStep(),
	)
	checkProblems(t, r, LostSync)
	checkExchanges(t, r.ex, want{target: "/a?b", status: 200, end: 300, incomplete: IncompleteLostSync})
}
