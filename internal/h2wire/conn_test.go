package h2wire

import (
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/net/http2"
)

// basicConv: a unary gRPC call with trailers, a trailers-only error, a
// reset stream and a streaming call, interleaved.
func basicConv(maxFrag int, pad bool) *conv {
	c := newConv()
	c.maxFrag, c.pad = maxFrag, pad
	c.start()
	c.req(1, "/pkg.Svc/Unary", false, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate", "a=1", "tracestate", "b=2")
	c.req(3, "/pkg.Svc/Missing", true)
	c.data(true, 1, 20, true)
	c.req(5, "/pkg.Svc/Cancelled", false, "b3", " 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1 ", "x-b3-traceid", "a3ce929d0e0e4736",
		"x-b3-spanid", "e457b5a2e4d86bd1", "x-b3-sampled", "0", "x-b3-flags", "1", "b3", "second")
	c.resp(3, 200, true, "grpc-status", "5", "grpc-message", "not%20found")
	c.req(7, "/pkg.Svc/Stream", false, "x-source-cluster", "aws-us-west-2-prod-01", "x-source-cluster", "second")
	c.resp(1, 200, false)
	c.data(true, 7, 10, false)
	c.data(false, 1, 30, false)
	c.rst(true, 5, uint32(http2.ErrCodeCancel))
	c.resp(7, 200, false)
	c.data(false, 7, 5, false)
	c.data(true, 7, 11, true)
	c.data(false, 1, 0, false)
	c.trailers(1, 0, "")
	c.data(false, 7, 6, false)
	c.trailers(7, 13, "boom")
	return c
}

func TestSplitEverywhere(t *testing.T) {
	for _, v := range []struct {
		maxFrag int
		pad     bool
	}{{0, false}, {5, true}, {1, false}} {
		c := basicConv(v.maxFrag, v.pad)
		for _, role := range []Role{RoleServer, RoleClient} {
			base := c.wholeChunks()
			for i := range base {
				for k := base[i].from + 1; k < base[i].to; k++ {
					chunks := append([]chunk(nil), base[:i]...)
					chunks = append(chunks, chunk{base[i].client, base[i].from, k, k}, chunk{base[i].client, k, base[i].to, base[i].to})
					chunks = append(chunks, base[i+1:]...)
					r := c.run(t, role, Limits{}, chunks, true)
					if len(r.probs) > 0 {
						t.Fatalf("frag %d role %v split %d@%d: problems %v", v.maxFrag, role, i, k, r.probs)
					}
					check(t, r.streams, c.expect(role, chunks))
					if r.conn.Role() != role {
						t.Fatalf("role %v, want %v", r.conn.Role(), role)
					}
				}
			}
		}
	}
}

func TestRandomChunksAndDataGaps(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 1))
		c := basicConv(r.IntN(8), r.IntN(2) == 0)
		chunks := c.randomChunks(r)
		if seed%2 == 1 {
			chunks = c.withGaps(r, chunks)
		}
		role := RoleServer
		if seed%3 == 0 {
			role = RoleClient
		}
		res := c.run(t, role, Limits{}, chunks, true)
		if len(res.probs) > 0 {
			t.Fatalf("seed %d: problems %v", seed, res.probs)
		}
		check(t, res.streams, c.expect(role, chunks))
	}
}

// Fifty concurrent streams, requests and responses interleaved at random,
// responses out of order.
func TestInterleavedStreams(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 2))
		c := newConv()
		c.start()
		const n = 50
		type st struct {
			id    uint32
			step  int
			reqN  int
			respN int
		}
		var live []*st
		for i := range n {
			id := uint32(2*i + 1)
			c.req(id, "/svc/M"+strings.Repeat("x", i), false, "traceparent", "tp-"+string(rune('a'+i%26)))
			live = append(live, &st{id: id, reqN: 1 + r.IntN(3), respN: r.IntN(4)})
			// advance some random live streams
			for range r.IntN(4) {
				if len(live) == 0 {
					break
				}
				k := r.IntN(len(live))
				if advance(c, live[k].id, &live[k].step, &live[k].reqN, &live[k].respN, r) {
					live = append(live[:k], live[k+1:]...)
				}
			}
		}
		for len(live) > 0 {
			k := r.IntN(len(live))
			if advance(c, live[k].id, &live[k].step, &live[k].reqN, &live[k].respN, r) {
				live = append(live[:k], live[k+1:]...)
			}
		}
		chunks := c.randomChunks(r)
		res := c.run(t, RoleServer, Limits{}, chunks, false)
		if len(res.probs) > 0 {
			t.Fatalf("seed %d: problems %v", seed, res.probs)
		}
		check(t, res.streams, c.expect(RoleServer, chunks))
	}
}

// advance moves one stream a step: request DATA, then response headers,
// response DATA and trailers. It reports whether the stream ended.
func advance(c *conv, id uint32, step, reqN, respN *int, r *rand.Rand) bool {
	switch {
	case *reqN > 0:
		*reqN--
		c.data(true, id, r.IntN(100), *reqN == 0)
	case *step == 0:
		*step = 1
		c.resp(id, 200, false)
	case *respN > 0:
		*respN--
		c.data(false, id, r.IntN(300), false)
	default:
		c.trailers(id, int(id%17), "m"+string(rune('a'+id%26)))
		return true
	}
	return false
}

// A gap inside a header block gives up the connection: streams already
// open come out incomplete with the fields known so far, never wrong ones.
func TestGapInHeaderBlock(t *testing.T) {
	c := newConv()
	c.start()
	c.req(1, "/a", true)
	c.resp(1, 200, false)
	c.req(3, "/b", true)
	c.req(5, "/c", true) // its HEADERS chunk is cut
	c.resp(3, 200, true, "grpc-status", "0")
	c.trailers(1, 0, "")
	for _, role := range []Role{RoleServer, RoleClient} {
		chunks := c.wholeChunks()
		// Segment 6 is stream 5's HEADERS.
		s := c.segs[6]
		if !s.client || c.wants[5].hdrOff != s.from {
			t.Fatal("script changed")
		}
		chunks[6].capTo = s.from + 11
		res := c.run(t, role, Limits{}, chunks, true)
		if res.count(HPACKError) != 1 || len(res.probs) != 1 {
			t.Fatalf("problems %v", res.probs)
		}
		if len(res.streams) != 2 {
			t.Fatalf("streams %+v", res.streams)
		}
		for _, g := range res.streams {
			if g.Incomplete != IncompleteLostSync || (g.ID != 1 && g.ID != 3) || g.GRPCStatus != -1 {
				t.Fatalf("stream %+v", g)
			}
		}
		if !res.conn.Done() {
			t.Fatal("not done")
		}
	}
}

// A gap over a frame header loses the framing.
func TestGapOverFrameHeader(t *testing.T) {
	c := newConv()
	c.start()
	c.req(1, "/a", false)
	c.data(true, 1, 50, false)
	c.data(true, 1, 50, true)
	c.resp(1, 200, true)
	chunks := c.wholeChunks()
	// merge the two DATA segments into one chunk, capturing only the first 20 bytes
	d1, d2 := c.segs[4], c.segs[5]
	chunks = append(chunks[:4], append([]chunk{{true, d1.from, d1.from + 20, d2.to}}, chunks[6:]...)...)
	res := c.run(t, RoleServer, Limits{}, chunks, true)
	if res.count(LostSync) != 1 || len(res.streams) != 1 || res.streams[0].Incomplete != IncompleteLostSync {
		t.Fatalf("%v %+v", res.probs, res.streams)
	}
}

func TestNotHTTP2(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dir   Dir
		first string
	}{
		{"http1 request", DirRead, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"http1 post", DirWrite, "POST / HTTP/1.1\r\n"},
		{"http1 response", DirWrite, "HTTP/1.1 200 OK\r\n"},
		{"tls", DirRead, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"},
		{"mid-stream data frame", DirRead, "\x00\x00\x03\x00\x00\x00\x00\x00\x01abc"},
		{"mid-stream settings ack", DirWrite, "\x00\x00\x00\x04\x01\x00\x00\x00\x00"},
	} {
		c := NewConn(Limits{})
		_, pr := c.Feed(Chunk{Dir: tc.dir, Time: 1, Len: len(tc.first), Data: []byte(tc.first)})
		if len(pr) != 1 || pr[0] != NotHTTP2 || !c.Done() {
			t.Fatalf("%s: %v", tc.name, pr)
		}
		if st, pr := c.Feed(Chunk{Dir: tc.dir ^ 1, Time: 2, Len: 24, Data: []byte(ClientPreface)}); st != nil || pr != nil {
			t.Fatalf("%s: fed after NotHTTP2: %v %v", tc.name, st, pr)
		}
	}
	// Both directions starting with SETTINGS: no preface.
	c := NewConn(Limits{})
	settings := "\x00\x00\x00\x04\x00\x00\x00\x00\x00"
	if _, pr := c.Feed(Chunk{Dir: DirWrite, Time: 1, Len: 9, Data: []byte(settings)}); pr != nil {
		t.Fatal(pr)
	}
	if _, pr := c.Feed(Chunk{Dir: DirRead, Time: 2, Len: 9, Data: []byte(settings)}); len(pr) != 1 || pr[0] != NotHTTP2 {
		t.Fatal(pr)
	}
	// A preface whose end is not captured.
	c = NewConn(Limits{})
	if _, pr := c.Feed(Chunk{Dir: DirRead, Time: 1, Len: 24, Data: []byte(ClientPreface[:10])}); len(pr) != 1 || pr[0] != NotHTTP2 {
		t.Fatal(pr)
	}
}

// The server's SETTINGS may be written before the client preface is read.
func TestServerPrefaceFirst(t *testing.T) {
	c := basicConv(0, false)
	chunks := c.wholeChunks()
	chunks[0], chunks[1] = chunks[1], chunks[0]
	for _, role := range []Role{RoleServer, RoleClient} {
		res := c.run(t, role, Limits{}, chunks, true)
		if len(res.probs) > 0 {
			t.Fatal(res.probs)
		}
		check(t, res.streams, c.expect(role, chunks))
	}
}

func TestGoAwayAndClose(t *testing.T) {
	c := newConv()
	c.start()
	c.req(1, "/a", true)
	c.req(3, "/b", true)
	c.req(5, "/c", true)
	c.resp(1, 200, false)
	c.write(false, func(s *side) { s.fr.WriteGoAway(3, http2.ErrCodeNo, []byte("bye")) })
	goawayChunk := len(c.segs) - 1
	c.data(false, 1, 10, false)
	res := c.run(t, RoleServer, Limits{}, c.wholeChunks(), false)
	if len(res.probs) != 0 || len(res.streams) != 1 {
		t.Fatalf("%v %+v", res.probs, res.streams)
	}
	if g := res.streams[0]; g.ID != 5 || g.Incomplete != IncompleteGoAway || g.End != chunkTime(goawayChunk) {
		t.Fatalf("%+v", g)
	}
	st, pr := res.conn.Close(12345)
	if pr != nil || len(st) != 2 || st[0].ID != 1 || st[1].ID != 3 {
		t.Fatalf("%v %+v", pr, st)
	}
	for _, g := range st {
		if g.Incomplete != IncompleteClosed || g.End != 12345 || g.EndGoid != 0 {
			t.Fatalf("%+v", g)
		}
	}
	if st[0].Status != 200 || st[0].RespBytes != 10 || st[1].Status != 0 {
		t.Fatalf("%+v", st)
	}
	if st, pr := res.conn.Close(99999); st != nil || pr != nil {
		t.Fatal("second close")
	}
}

func TestLimits(t *testing.T) {
	c := newConv()
	c.start()
	for i := range 5 {
		c.req(uint32(2*i+1), "/s", true)
	}
	c.req(11, "/big", true, "x-big", strings.Repeat("b", 600), "x-big2", strings.Repeat("b", 600))
	c.resp(1, 200, true)
	c.resp(7, 200, true)
	res := c.run(t, RoleServer, Limits{MaxStreams: 3, MaxHeaderListBytes: 1024}, c.wholeChunks(), false)
	if res.count(TooManyStreams) != 2 || res.count(HeaderTooLarge) != 1 || res.count(Orphan) != 1 || len(res.probs) != 4 {
		t.Fatalf("%v", res.probs)
	}
	if len(res.streams) != 1 || res.streams[0].ID != 1 || res.conn.Open() != 2 {
		t.Fatalf("%+v", res.streams)
	}
}

// Dynamic table size updates announced by SETTINGS_HEADER_TABLE_SIZE, and
// a PUSH_PROMISE whose block must be decoded to keep the response table.
func TestTableSizeAndPush(t *testing.T) {
	c := newConv()
	c.write(true, func(s *side) {
		s.buf.WriteString(ClientPreface)
		s.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 16384}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
	})
	c.write(false, func(s *side) {
		s.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 256})
	})
	c.cli.enc.SetMaxDynamicTableSizeLimit(256)
	c.srv.enc.SetMaxDynamicTableSizeLimit(16384)
	c.srv.enc.SetMaxDynamicTableSize(16384)
	c.req(1, "/a", true, "x-long", strings.Repeat("l", 200))
	c.write(false, func(s *side) {
		s.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: s.encode(":method", "GET", ":path", "/pushed", "x-pushed", strings.Repeat("p", 5000)), EndHeaders: true, PadLength: 2})
	})
	c.resp(1, 200, false, "x-pushed", strings.Repeat("p", 5000))
	c.headers(false, 2, true, ":status", "200")
	c.data(false, 1, 40000, true) // a frame over the default 16 KiB limit, allowed by SETTINGS
	c.req(3, "/b", true, "x-long", strings.Repeat("l", 200))
	c.resp(3, 204, true)
	res := c.run(t, RoleServer, Limits{}, c.wholeChunks(), false)
	if len(res.probs) != 0 {
		t.Fatal(res.probs)
	}
	check(t, res.streams, c.expect(RoleServer, c.wholeChunks()))
}

func TestFrameTooLarge(t *testing.T) {
	c := newConv()
	c.start()
	c.req(1, "/a", false)
	c.data(true, 1, 20000, true)
	res := c.run(t, RoleServer, Limits{}, c.wholeChunks(), false)
	if res.count(FrameTooLarge) != 1 || len(res.streams) != 1 || res.streams[0].Incomplete != IncompleteLostSync {
		t.Fatalf("%v %+v", res.probs, res.streams)
	}
}

func TestContinuationInterrupted(t *testing.T) {
	c := newConv()
	c.start()
	c.write(true, func(s *side) {
		s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: s.encode(":method", "GET", ":path", "/x"), EndHeaders: false})
		s.fr.WriteData(1, true, []byte("x"))
	})
	res := c.run(t, RoleServer, Limits{}, c.wholeChunks(), false)
	if res.count(ProtocolError) != 1 || len(res.streams) != 0 {
		t.Fatalf("%v %+v", res.probs, res.streams)
	}
}

func TestPercentDecode(t *testing.T) {
	for in, want := range map[string]string{"": "", "a%20b": "a b", "%": "%", "%2": "%2", "%zz%41": "%zzA", "100%25": "100%"} {
		if got := percentDecode(in); got != want {
			t.Errorf("%q: %q", in, got)
		}
	}
	for _, p := range []Problem{0, NotHTTP2, TooManyStreams, numProblems} {
		if p.String() == "" {
			t.Error(p)
		}
	}
}

// One HPACK string over MaxHeaderListBytes cannot be skipped without
// losing the table: the connection is given up.
func TestHugeHeaderString(t *testing.T) {
	c := newConv()
	c.start()
	c.req(1, "/a", true)
	c.req(3, "/big", true, "x-big", strings.Repeat("b", 2000))
	res := c.run(t, RoleServer, Limits{MaxHeaderListBytes: 1024}, c.wholeChunks(), false)
	if res.count(HeaderTooLarge) != 1 || len(res.probs) != 1 || len(res.streams) != 1 || res.streams[0].Incomplete != IncompleteLostSync {
		t.Fatalf("%v %+v", res.probs, res.streams)
	}
}
