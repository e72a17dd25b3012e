package httpwire

import (
	"strings"
	"testing"
)

func TestSimpleServer(t *testing.T) {
	req := "GET /a?b HTTP/1.1\r\nhOST: example.com\r\nuser-agent: test/1\r\nTraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n" +
		"tracestate: a=1\r\nX: y\r\nTRACESTATE: b=2\r\n\r\n"
	r := play(t, Limits{}, R(req).with(7, 42), W(ok5).with(8, 0))
	checkProblems(t, r)
	checkExchanges(t, r.ex, want{method: "GET", target: "/a?b", status: 200, start: 100, end: 200, respBody: 5})
	e := r.ex[0]
	if e.Role != RoleServer || r.conn.Role() != RoleServer {
		t.Errorf("role %v %v", e.Role, r.conn.Role())
	}
	if e.Req.Proto != "HTTP/1.1" || e.Req.Host != "example.com" || e.Req.UserAgent != "test/1" ||
		e.Req.Traceparent != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" ||
		e.Req.Tracestate != "a=1,b=2" || e.Req.DupTraceparent {
		t.Errorf("request fields %+v", e.Req)
	}
	if e.Req.ContentLength != -1 || e.Req.HeaderBytes != len(req) || e.Req.Close {
		t.Errorf("request framing %+v", e.Req)
	}
	if e.ReqGoid != 7 || e.RespGoid != 8 || e.StartTag != 42 || !e.FirstInChunk {
		t.Errorf("ids %+v", e)
	}
	if e.Resp.Proto != "HTTP/1.1" || e.Resp.ContentLength != 5 || e.Resp.HeaderBytes != len(ok5)-5 {
		t.Errorf("response %+v", e.Resp)
	}
}

func TestKeepAlive(t *testing.T) {
	r := play(t, Limits{},
		R(get1), W(ok5),
		R(post5), W(nf),
		R(get2), W(ok0),
	)
	checkProblems(t, r)
	checkExchanges(t, r.ex,
		want{target: "/a?b", status: 200, start: 100, end: 200},
		want{method: "POST", target: "/p", status: 404, start: 300, end: 400, reqBody: 5, respBody: 9},
		want{target: "/two", status: 200, start: 500, end: 600},
	)
}

func TestPipelined(t *testing.T) {
	r := play(t, Limits{},
		R(get1+post5+get2).with(1, 9),
		W(ok5+nf),
		W(ok0),
	)
	checkProblems(t, r)
	checkExchanges(t, r.ex,
		want{target: "/a?b", status: 200, start: 100, end: 200},
		want{target: "/p", status: 404, start: 100, end: 200, reqBody: 5},
		want{target: "/two", status: 200, start: 100, end: 300},
	)
	for i, first := range []bool{true, false, false} {
		if r.ex[i].FirstInChunk != first || r.ex[i].StartTag != 9 {
			t.Errorf("exchange %d first=%v tag=%d", i, r.ex[i].FirstInChunk, r.ex[i].StartTag)
		}
	}
}

// Every split of request and response into two chunks gives the same
// exchange, with Start and End from the right chunks.
func TestSplitEveryOffset(t *testing.T) {
	req := post5
	resp := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n"
	for i := 1; i < len(req); i++ {
		for j := 1; j < len(resp); j++ {
			r := play(t, Limits{}, R(req[:i]), R(req[i:]), W(resp[:j]), W(resp[j:]), R(get2), W(ok0))
			if len(r.probs) > 0 || len(r.ex) != 2 {
				t.Fatalf("split %d/%d: %v\n%s", i, j, r.probs, dump(r.ex))
			}
			checkExchanges(t, r.ex,
				want{method: "POST", status: 200, start: 100, end: 400, reqBody: 5, respBody: int64(len(resp) - 47)},
				want{method: "GET", status: 200, start: 500, end: 600},
			)
		}
	}
}

func TestByteAtATime(t *testing.T) {
	var steps []step
	for _, c := range []byte(post5 + get1) {
		steps = append(steps, R(string(c)))
	}
	n := len(steps)
	for _, c := range []byte(nf + ok5) {
		steps = append(steps, W(string(c)))
	}
	r := play(t, Limits{}, steps...)
	checkProblems(t, r)
	checkExchanges(t, r.ex,
		want{method: "POST", status: 404, start: 100, end: stepTime(n + len(nf) - 1)},
		want{method: "GET", status: 200, start: stepTime(len(post5)), end: stepTime(len(steps) - 1)},
	)
	if !r.ex[1].FirstInChunk {
		t.Error("a request starting a chunk is FirstInChunk")
	}
}

func TestGoServerOneByteRead(t *testing.T) {
	// Go's server reads one byte in the background while a handler runs.
	r := play(t, Limits{}, R(get1), R("G").with(5, 6), R(get2[1:]).with(9, 9), W(ok5), W(ok0))
	checkProblems(t, r)
	checkExchanges(t, r.ex, want{start: 100, end: 400}, want{target: "/two", start: 200, end: 500})
	if r.ex[1].ReqGoid != 5 || r.ex[1].StartTag != 6 {
		t.Errorf("second exchange ids %+v", r.ex[1])
	}
}

func TestLargeHeaderAcrossReads(t *testing.T) {
	req := "GET /big HTTP/1.1\r\nCookie: " + strings.Repeat("c", 7000) + "\r\n\r\n"
	r := play(t, Limits{}, R(req[:4096]), R(req[4096:]), W(ok5))
	checkProblems(t, r)
	checkExchanges(t, r.ex, want{target: "/big", start: 100, end: 300})
	if r.ex[0].Req.HeaderBytes != len(req) {
		t.Errorf("HeaderBytes %d", r.ex[0].Req.HeaderBytes)
	}
}

func TestHeaderTooLarge(t *testing.T) {
	big := "GET /big HTTP/1.1\r\nCookie: " + strings.Repeat("c", 9000) + "\r\n\r\n"
	for _, steps := range [][]step{
		{R(big)},                       // one read
		{R(big[:4096]), R(big[4096:])}, // two reads
		{R(big[:100]), R(big[100:8192]), R(big[8192:])},
	} {
		steps = append(steps,
			W("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 3\r\n\r\nbig"),
			R(get2), W(ok5))
		r := play(t, Limits{}, steps...)
		checkProblems(t, r, HeaderTooLarge)
		checkExchanges(t, r.ex, want{target: "/two", status: 200, start: stepTime(len(steps) - 2)})
	}
	// A larger limit accepts it.
	r := play(t, Limits{MaxHeaderBytes: 16384}, R(big), W(ok5))
	checkProblems(t, r)
	checkExchanges(t, r.ex, want{target: "/big"})
}

func TestContentLengthGaps(t *testing.T) {
	body := strings.Repeat("x", 100000)
	req := "PUT /up HTTP/1.1\r\nContent-Length: 100000\r\n\r\n"
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
	r := play(t, Limits{},
		RG(req+body[:16384-len(req)], 100000-16384+len(req)-50000), // head + part, gap
		RG(body[:16384], 50000-16384),                              // gap ends the body exactly
		R(get2),                                                    // not mistaken for the body
		WG(resp+body[:100], 100000-100),                            // whole body, mostly a gap
		W(ok0),
	)
	checkProblems(t, r)
	checkExchanges(t, r.ex,
		want{target: "/up", start: 100, end: 400, reqBody: 100000, respBody: 100000},
		want{target: "/two", start: 300, end: 500},
	)
}

func TestGapPastEndOfBody(t *testing.T) {
	// The response body ends inside the gap and another response starts
	// there: the first exchange is complete; the second is skipped.
	r := play(t, Limits{},
		R(get1+get2),
		WG("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234", 5+30),
		WG("ody", 0),
		R("GET /3 HTTP/1.1\r\n\r\n"),
		W(nf),
	)
	checkProblems(t, r, LostSync)
	checkExchanges(t, r.ex,
		want{target: "/a?b", status: 200, end: 200, respBody: 10},
		want{target: "/3", status: 404, start: 400, end: 500},
	)
}

func TestChunked(t *testing.T) {
	resp := "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" +
		"a\r\n0123456789\r\n" + "1F ; name=\"va;l\"\r\n" + strings.Repeat("z", 31) + "\r\n" +
		"0\r\nExpires: never\r\nX: y\r\n\r\n"
	req := "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n3\r\nabc\n0\n\n"
	r := play(t, Limits{}, R(req+get2), W(resp), W(ok0))
	checkProblems(t, r)
	checkExchanges(t, r.ex,
		want{target: "/c", reqBody: int64(len("3\r\nabc\n0\n\n")), respBody: int64(len(resp) - strings.Index(resp, "\r\n\r\n") - 4), end: 200},
		want{target: "/two", end: 300},
	)
	if !r.ex[0].Req.Chunked || r.ex[0].Req.ContentLength != -1 || !r.ex[0].Resp.Chunked {
		t.Errorf("chunked flags %+v", r.ex[0])
	}
}

func TestChunkedGapInData(t *testing.T) {
	head := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	r := play(t, Limits{},
		R(get1),
		WG(head+"4000\r\nab", 0x4000-2), // the gap is inside the chunk data
		W("\r\n0\r\n\r\n"),
		R(get2), W(ok0),
	)
	checkProblems(t, r)
	checkExchanges(t, r.ex, want{end: 300}, want{target: "/two"})
}

func TestChunkedGapOverSizeLine(t *testing.T) {
	head := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	r := play(t, Limits{},
		R(get1),
		WG(head+"10\r\n0123456789abcdef\r\n", 20000), // next size line in the gap
		W("more body"),
		W("HTTP/1.1 200 looks like a response in the body\r\n\r\n"), // no request waits: skipped
		W("0\r\n\r\n"),
		R(get2),
		W(nf),
	)
	checkProblems(t, r, LostSync)
	checkExchanges(t, r.ex,
		want{target: "/a?b", status: 200, start: 100, end: 500, incomplete: IncompleteLostSync},
		want{target: "/two", status: 404, start: 600, end: 700},
	)
}

func TestNoBodyResponses(t *testing.T) {
	head := "HEAD /h HTTP/1.1\r\n\r\n"
	r := play(t, Limits{},
		R(head+get1+get2+get2+get2),
		W("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"), // HEAD: no body despite the length
		W("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"),
		W("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
		W("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
		W(nf),
	)
	checkProblems(t, r)
	checkExchanges(t, r.ex,
		want{method: "HEAD", status: 200, end: 200},
		want{status: 204, end: 300},
		want{status: 304, end: 400},
		want{status: 200, end: 500},
		want{status: 404, end: 600},
	)
}

func TestExpectContinue(t *testing.T) {
	req := "PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
	r := play(t, Limits{},
		R(req),
		W("HTTP/1.1 100 Continue\r\n\r\n").with(3, 0),
		R("data"),
		W("HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"+"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n").with(4, 0),
	)
	checkProblems(t, r)
	checkExchanges(t, r.ex, want{status: 201, start: 100, end: 400, reqBody: 4})
	if r.ex[0].RespGoid != 4 {
		t.Errorf("RespGoid %d: want the final response's", r.ex[0].RespGoid)
	}
}

func TestCloseDelimited(t *testing.T) {
	for i, resp := range []string{
		"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
	} {
		r := play(t, Limits{},
			R("GET /old HTTP/1.0\r\n\r\n"),
			W(resp+"part one"),
			WG("part two", 100000),
			closeStep(),
		)
		checkProblems(t, r)
		checkExchanges(t, r.ex, want{target: "/old", status: 200, start: 100, end: 300, respBody: int64(16 + 100000)})
		if r.ex[0].Resp.Close != (i < 2) || !r.ex[0].Req.Close {
			t.Errorf("close flags %+v", r.ex[0])
		}
		if !r.conn.Done() {
			t.Error("not done after close")
		}
	}
}

func TestConnectionClose(t *testing.T) {
	r := play(t, Limits{},
		R("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
		W("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
		closeStep(),
	)
	checkProblems(t, r)
	checkExchanges(t, r.ex, want{status: 200, end: 200})
	if !r.ex[0].Req.Close || !r.ex[0].Resp.Close {
		t.Errorf("close flags %+v", r.ex[0])
	}
	// HTTP/1.0 keep-alive.
	r = play(t, Limits{},
		R("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
		W("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"),
		R("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
		W("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
	)
	checkProblems(t, r)
	checkExchanges(t, r.ex, want{status: 200, end: 200}, want{status: 200, end: 400})
	if r.ex[0].Req.Close || r.ex[0].Resp.Close || !r.ex[1].Resp.Close {
		t.Errorf("keep-alive flags %+v", r.ex)
	}
}

func TestClosedEarly(t *testing.T) {
	r := play(t, Limits{}, R(get1+get2), W("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), closeStep())
	checkProblems(t, r)
	checkExchanges(t, r.ex,
		want{target: "/a?b", status: 200, end: 200, incomplete: IncompleteRespBody},
		want{target: "/two", end: 300, incomplete: IncompleteNoResponse},
	)
	r = play(t, Limits{}, R(get1), W("HTTP/1.1 200 OK\r\n"), closeStep())
	checkExchanges(t, r.ex, want{end: 200, incomplete: IncompleteRespHead})
	r = play(t, Limits{}, R(get1), R("GET /x HTTP/1.1\r\nHo"), W(ok0), closeStep())
	checkProblems(t, r, Truncated)
	checkExchanges(t, r.ex, want{end: 300})
	// Nothing after close.
	if ex, pr := r.conn.Feed(Chunk{Dir: DirRead, Len: len(get1), Data: []byte(get1)}); ex != nil || pr != nil {
		t.Error("fed after close")
	}
}

func TestGarbageThenValid(t *testing.T) {
	r := play(t, Limits{},
		R(get1), W(ok5),
		R("\x00\x01\x02 garbage\r\n\r\n"),
		W("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
		R("more garbage GET / HTTP/1.1\r\n"),
		W("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
		R(get2), W(nf),
		R("BREW /pot HTTP/1.1\r\nbad header line\r\n\r\n"), // valid request line: a phantom
		W("HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad"),
		R(get1), W(ok0),
	)
	checkProblems(t, r, Malformed, Orphan, Orphan, Malformed)
	checkExchanges(t, r.ex,
		want{target: "/a?b", status: 200},
		want{target: "/two", status: 404, start: 700},
		want{target: "/a?b", status: 200, start: 1100},
	)
	// Garbage, then a request with no response in between: the garbage may
	// have hidden pipelined requests whose responses come first.
	r = play(t, Limits{},
		R(get1), W(ok5),
		R("\x00\x01\x02 garbage\r\n\r\n"),
		R(get2), W(nf), R(get1), W(ok0),
	)
	checkProblems(t, r, Malformed, Ambiguous)
	checkExchanges(t, r.ex, want{target: "/a?b", status: 200})
}

func TestBodyLooksLikeRequest(t *testing.T) {
	inner := "GET /inner HTTP/1.1\r\nHost: evil\r\n\r\n"
	req := "POST /outer HTTP/1.1\r\nContent-Length: " + itoa(len(inner)*2) + "\r\n\r\n"
	respBody := "HTTP/1.1 500 Fake\r\nContent-Length: 0\r\n\r\n"
	resp := "HTTP/1.1 200 OK\r\nContent-Length: " + itoa(len(respBody)) + "\r\n\r\n"
	r := play(t, Limits{},
		R(req), R(inner), R(inner),
		W(resp), W(respBody),
		R(get2), W(ok0),
	)
	checkProblems(t, r)
	checkExchanges(t, r.ex,
		want{target: "/outer", status: 200, end: 500, reqBody: int64(2 * len(inner))},
		want{target: "/two", status: 200},
	)
}

func TestClientRole(t *testing.T) {
	r := play(t, Limits{},
		W(post5[:10]).with(1, 2), W(post5[10:]),
		R(nf[:20]), R(nf[20:]).with(3, 0),
		W(get2), R(ok5),
	)
	checkProblems(t, r)
	if r.conn.Role() != RoleClient {
		t.Fatalf("role %v", r.conn.Role())
	}
	checkExchanges(t, r.ex,
		want{method: "POST", status: 404, start: 100, end: 400, reqBody: 5},
		want{target: "/two", status: 200, start: 500, end: 600},
	)
	if r.ex[0].Role != RoleClient || r.ex[0].ReqGoid != 1 || r.ex[0].StartTag != 2 || r.ex[0].RespGoid != 0 {
		t.Errorf("client exchange %+v", r.ex[0])
	}
}

func TestNotHTTP(t *testing.T) {
	for name, first := range map[string]string{
		"tls":    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
		"h2":     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"binary": "\x00\x00\x00\x08\x04\xd2\x16\x2f",
		"redis":  "*1\r\n$4\r\nPING\r\n",
		"smtp":   "EHLO example.com\r\n",
		"http09": "GET /\r\n",
		"http2v": "GET / HTTP/2.0\r\n\r\n",
	} {
		r := play(t, Limits{}, W(first), R(get1), W(ok5))
		checkProblems(t, r, NotHTTP)
		if len(r.ex) != 0 || !r.conn.Done() {
			t.Errorf("%s: %d exchanges, done %v", name, len(r.ex), r.conn.Done())
		}
	}
	// Mid-stream connections: only TLS and HTTP/2 are final.
	r := play(t, Limits{MidStream: true}, W("\x17\x03\x03\x00\x20"), R(get1), W(ok5))
	checkProblems(t, r, NotHTTP)
	r = play(t, Limits{MidStream: true}, R("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	checkProblems(t, r, NotHTTP)
}

func TestMidStream(t *testing.T) {
	r := play(t, Limits{MidStream: true},
		R("{\"json\": \"tail of a request body\"}"),
		RG("", 100),
		R("GET / HTTP/1.1\r\n"[:10]), // a partial request line: not a clear start
		W("tail of a response"),
		R(get1), W(ok5),
	)
	checkProblems(t, r, Unsynced)
	checkExchanges(t, r.ex, want{target: "/a?b", start: 500, end: 600})
	// A request right after skipped request bytes may follow unseen
	// pipelined requests: wait for a clearer start.
	r = play(t, Limits{MidStream: true},
		R("{\"json\": \"tail of a request body\"}"),
		R(get1), W(ok5),
		R(get2), W(nf),
	)
	checkProblems(t, r, Unsynced, Orphan)
	checkExchanges(t, r.ex, want{target: "/two", status: 404, start: 400})
	// The response to a request we never saw comes first.
	r = play(t, Limits{MidStream: true}, W(nf), R(get1), W(ok5))
	checkProblems(t, r, Orphan)
	checkExchanges(t, r.ex, want{target: "/a?b", start: 200, end: 300})
	if r.conn.Role() != RoleServer {
		t.Errorf("role %v", r.conn.Role())
	}
	// An orphan response whose body length depends on the method.
	r = play(t, Limits{MidStream: true}, W(nf[:30]), W(nf[30:]), R(get1), W(ok5))
	checkProblems(t, r, Orphan)
	checkExchanges(t, r.ex, want{target: "/a?b", start: 300, end: 400})
}

func TestSplitRequestLineAtStart(t *testing.T) {
	// A client writing its request line in pieces, on a new connection.
	r := play(t, Limits{}, W("GE"), W("T /x HT"), W("TP/1.1\r\n\r\n"), R(ok0))
	checkProblems(t, r)
	checkExchanges(t, r.ex, want{target: "/x", start: 100, end: 400})
}

func TestUpgrade(t *testing.T) {
	r := play(t, Limits{},
		R("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
		W("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"),
		R("\x81\x85binaryframe"),
	)
	checkProblems(t, r)
	checkExchanges(t, r.ex, want{status: 101, end: 200})
	if !r.conn.Done() {
		t.Error("not done after upgrade")
	}
	r = play(t, Limits{},
		W("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
		R("HTTP/1.1 200 Connection established\r\n\r\n"),
		W("\x16\x03\x01\x00\x10"),
	)
	checkProblems(t, r)
	checkExchanges(t, r.ex, want{method: "CONNECT", status: 200, end: 200})
	if !r.conn.Done() {
		t.Error("not done after CONNECT")
	}
}

func TestHeaders(t *testing.T) {
	req := "GET /h HTTP/1.1\n" +
		"Host:   spaced.example  \n" +
		"traceparent: first\n" +
		"X-Folded: a\n b\n" +
		"User-Agent: ua\n" +
		" folded-ua\n" +
		"TraceParent: second\n" +
		"Content-Length: 0, 0\n" +
		"\n"
	r := play(t, Limits{}, R("\r\n\r\n"+req), W("HTTP/1.1 200\nContent-Length: 1\n\nx"))
	checkProblems(t, r)
	checkExchanges(t, r.ex, want{target: "/h", status: 200})
	e := r.ex[0].Req
	if e.Host != "spaced.example" || e.Traceparent != "first" || !e.DupTraceparent ||
		e.UserAgent != "ua folded-ua" || e.ContentLength != 0 || e.HeaderBytes != len(req) {
		t.Errorf("headers %+v", e)
	}
	if r.ex[0].FirstInChunk {
		t.Error("FirstInChunk after blank lines")
	}
}

func TestMalformedHeads(t *testing.T) {
	for _, bad := range []string{
		"GET / HTTP/1.1\r\nNo-Colon\r\n\r\n",
		"GET / HTTP/1.1\r\nSpace Name: x\r\n\r\n",
		"GET / HTTP/1.1\r\nName : x\r\n\r\n",
		"GET / HTTP/1.1\r\n: x\r\n\r\n",
		"GET / HTTP/1.1\r\n folded-first: x\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1\r\n more\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: \r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
	} {
		r := play(t, Limits{}, R(get1), W(ok0), R(bad), W(nf), R(get2), W(ok5))
		checkProblems(t, r, Malformed)
		checkExchanges(t, r.ex, want{target: "/a?b"}, want{target: "/two", status: 200, start: 500})
	}
	for _, bad := range []string{
		"GET  / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1 \r\n\r\n",
		"GET / http/1.1\r\n\r\n",
		"GET /\x01 HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\n",
		strings.Repeat("G", 40) + " / HTTP/1.1\r\n\r\n",
	} {
		r := play(t, Limits{}, R(get1), W(ok0), R(bad), W(nf), R(get2), W(ok5))
		checkProblems(t, r, Malformed, Orphan)
		checkExchanges(t, r.ex, want{target: "/a?b"}, want{target: "/two", status: 200, start: 500})
	}
	for _, bad := range []string{
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 20x OK\r\n\r\n",
		"HTTP/1.1 200 O\x01K\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
	} {
		r := play(t, Limits{}, R(get1), W(bad), R(get2), W(ok5))
		checkProblems(t, r, Malformed)
		checkExchanges(t, r.ex, want{target: "/two", status: 200, start: 300})
	}
	// A valid head, then an invalid chunked body: the status is known.
	r := play(t, Limits{}, R(get1), W("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n"), R(get2), W(ok5))
	checkProblems(t, r, BadChunk)
	checkExchanges(t, r.ex,
		want{target: "/a?b", status: 200, end: 200, incomplete: IncompleteLostSync},
		want{target: "/two", status: 200, start: 300})
}

func TestRequestBodyLost(t *testing.T) {
	// A chunked upload loses its framing; the response still matches it.
	req := "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	r := play(t, Limits{},
		RG(req+"8000\r\nab", 0x8000+20),
		R("rest of body"),
		W(ok5),
		R(get2), W(nf),
	)
	checkProblems(t, r, LostSync)
	checkExchanges(t, r.ex,
		want{target: "/up", status: 200, end: 300},
		want{target: "/two", status: 404, start: 400, end: 500},
	)
}

func TestAmbiguousAfterLoss(t *testing.T) {
	req := "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	r := play(t, Limits{},
		RG(req+"8000\r\nab", 0x8000+20),
		R(get2), // unanswered /up: body data or a pipelined request?
		W(ok5),  // still /up's response
		R(get1), W(ok0),
	)
	checkProblems(t, r, LostSync, Ambiguous)
	checkExchanges(t, r.ex, want{target: "/up", status: 200, end: 300})
	if !r.conn.Done() {
		t.Error("not given up")
	}
}

func TestIdle(t *testing.T) {
	head := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	r := play(t, Limits{},
		R(get1),
		WG(head+"10\r\n0123456789abcdef\r\n", 20000),
		idleStep(1000), // too early
		W("x"),
		idleStep(100),
		R(get2), W(ok0),
	)
	checkProblems(t, r, LostSync)
	checkExchanges(t, r.ex,
		want{target: "/a?b", status: 200, end: 400, incomplete: IncompleteLostSync},
		want{target: "/two", start: 600, end: 700},
	)
}

func TestTooManyPending(t *testing.T) {
	r := play(t, Limits{MaxPending: 2}, R(get1+get1+get2), W(ok0+ok0+ok0))
	checkProblems(t, r, TooManyPending, Ambiguous)
	checkExchanges(t, r.ex, want{}, want{})
	if !r.conn.Done() {
		t.Error("not given up")
	}
}

func TestDataLongerThanLen(t *testing.T) {
	c := NewConn(Limits{})
	c.Feed(Chunk{Dir: DirRead, Time: 1, Len: len(get1), Data: []byte(get1 + "GET /junk HTTP/1.1\r\n\r\n")})
	ex, pr := c.Feed(Chunk{Dir: DirWrite, Time: 2, Len: len(ok0), Data: []byte(ok0)})
	if len(ex) != 1 || len(pr) != 0 || len(c.q) != 0 {
		t.Errorf("%v %v %d", ex, pr, len(c.q))
	}
	// Ignored: bad direction, empty chunk.
	if ex, pr := c.Feed(Chunk{Dir: 7, Len: 3, Data: []byte("GET")}); ex != nil || pr != nil {
		t.Error("bad direction used")
	}
	if ex, pr := c.Feed(Chunk{Dir: DirRead, Len: 0}); ex != nil || pr != nil {
		t.Error("empty chunk used")
	}
}

func TestProblemString(t *testing.T) {
	for p := Malformed; p < numProblems; p++ {
		if s := p.String(); s == "" || s == "invalid" || s == "none" {
			t.Errorf("%d: %q", p, s)
		}
	}
	if Problem(200).String() != "invalid" || RoleServer.String() != "server" || DirWrite.String() != "write" {
		t.Error("String")
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
