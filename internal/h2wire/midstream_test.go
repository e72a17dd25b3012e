package h2wire

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/net/http2"
)

func TestFramesAt(t *testing.T) {
	hdr := func(length int, typ, flags uint8, sid uint32) string {
		return string([]byte{byte(length >> 16), byte(length >> 8), byte(length), typ, flags,
			byte(sid >> 24), byte(sid >> 16), byte(sid >> 8), byte(sid)})
	}
	pay := func(n int) string { return strings.Repeat("x", n) }
	for _, tc := range []struct {
		name string
		data string
		n    int // 0: len(data)
		want bool
	}{
		{"empty", "", 0, false},
		{"one whole DATA frame", hdr(5, frameData, flagEndStream, 1) + pay(5), 0, true},
		{"HEADERS then CONTINUATION", hdr(2, frameHeaders, 0, 3) + pay(2) + hdr(1, frameContinuation, flagEndHeaders, 3) + pay(1), 0, true},
		{"WINDOW_UPDATE and PING", hdr(4, frameWindowUpdate, 0, 0) + pay(4) + hdr(8, framePing, flagAck, 0) + pay(8), 0, true},
		{"a frame's payload past the captured bytes (a gap)", hdr(100, frameData, 0, 1) + pay(10), 109, true},
		{"one frame running into the next chunk", hdr(100, frameData, 0, 1) + pay(10), 0, false},
		{"a frame header alone (Go's server reads so)", hdr(54, frameHeaders, flagEndHeaders|flagEndStream, 5), 0, true},
		{"a frame header alone, invalid", hdr(4, frameRSTStream, 0, 0), 0, false},
		{"two frames, the second running on", hdr(1, frameData, 0, 1) + pay(1) + hdr(100, frameData, 0, 1) + pay(3), 0, true},
		{"ends inside a frame header", hdr(1, frameData, 0, 1) + pay(1) + hdr(1, frameData, 0, 1)[:4], 0, false},
		{"starts with a CONTINUATION", hdr(1, frameContinuation, flagEndHeaders, 1) + pay(1), 0, false},
		{"CONTINUATION after a closed block", hdr(1, frameHeaders, flagEndHeaders, 1) + pay(1) + hdr(1, frameContinuation, flagEndHeaders, 1) + pay(1), 0, false},
		{"DATA on stream 0", hdr(1, frameData, 0, 0) + pay(1), 0, false},
		{"SETTINGS on a stream", hdr(6, frameSettings, 0, 1) + pay(6), 0, false},
		{"undefined flag", hdr(1, frameData, 0x40, 1) + pay(1), 0, false},
		{"unknown type", hdr(1, 0x0a, 0, 1) + pay(1), 0, false},
		{"reserved bit", hdr(1, frameData, 0, 0x80000001) + pay(1), 0, false},
		{"PING of 7 bytes", hdr(7, framePing, 0, 0) + pay(7), 0, false},
		{"HTTP/1 request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, false},
		{"HTTP/1 response", "HTTP/1.1 200 OK\r\n\r\n", 0, false},
		{"TLS record", "\x17\x03\x03\x00\x20" + pay(32), 0, false},
	} {
		n := tc.n
		if n == 0 {
			n = len(tc.data)
		}
		if got := FramesAt([]byte(tc.data), n); got != tc.want {
			t.Errorf("%s: FramesAt = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// midConv is a conversation with a phase before tracing and one after:
// calls reusing the earlier paths, and calls whose changing header
// (grpc-timeout, as a deadline makes) churns the HPACK tables.
type midConv struct {
	*conv
	cut   [2]int            // each side's offset where tracing starts (0: server, 1: client)
	paths map[uint32]string // every request's path
	after map[uint32]bool   // requests sent after the cut
}

func newMidConv(r *rand.Rand, before, after int, churn bool) *midConv {
	m := &midConv{conv: newConv(), paths: map[uint32]string{}, after: map[uint32]bool{}}
	m.start()
	id := uint32(1)
	call := func(path string) {
		extra := []string{}
		if churn {
			extra = append(extra, "grpc-timeout", fmt.Sprintf("%dm", r.IntN(1e6)))
		}
		m.req(id, path, false, extra...)
		m.paths[id] = path
		m.data(true, id, 5, true)
		m.resp(id, 200, false)
		m.data(false, id, 7, false)
		m.trailers(id, r.IntN(3), "")
		id += 2
	}
	for i := range before {
		call(fmt.Sprintf("/pkg.Svc/Old%d", i%3))
	}
	// A window update and a ping between calls, as a quiet connection has.
	m.write(true, func(s *side) { s.fr.WriteWindowUpdate(0, 100) })
	m.write(false, func(s *side) { s.fr.WritePing(false, [8]byte{1}) })
	m.cut = [2]int{m.srv.buf.Len(), m.cli.buf.Len()}
	for i := range after {
		path := fmt.Sprintf("/pkg.Svc/Old%d", i%3)
		if i%2 == 1 {
			path = fmt.Sprintf("/pkg.Svc/New%d", i%4)
		}
		m.after[id] = true
		call(path)
	}
	return m
}

// chunksAfterCut are the whole writes made after the cut.
func (m *midConv) chunksAfterCut() []chunk {
	var out []chunk
	for _, ch := range m.wholeChunks() {
		side := 0
		if ch.client {
			side = 1
		}
		if ch.from >= m.cut[side] {
			out = append(out, ch)
		}
	}
	return out
}

// TestMidStream picks up a connection after calls were made on it: every
// call made after gives a stream whose known fields are right; a field
// indexed from before tracing is unknown, never wrong; churning tables
// become exact; nothing fails.
func TestMidStream(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, churn := range []bool{false, true} {
		for _, role := range []Role{RoleServer, RoleClient} {
			m := newMidConv(r, 6, 200, churn)
			res := m.run(t, role, Limits{MidStream: true}, m.chunksAfterCut(), true)
			for _, p := range res.probs {
				if p != Unsynced {
					t.Fatalf("churn %v role %v: problem %v", churn, role, p)
				}
			}
			if res.conn.Role() != role {
				t.Fatalf("role %v, want %v", res.conn.Role(), role)
			}
			if len(res.streams) != len(m.after) {
				t.Fatalf("churn %v role %v: %d streams, want %d", churn, role, len(res.streams), len(m.after))
			}
			unknown, newUnknown, lastUnknown := 0, 0, -1
			for i, st := range res.streams {
				if !m.after[st.ID] || st.Incomplete != "" || st.Role != role || st.Method != "POST" || st.Status != 200 {
					t.Fatalf("stream %+v", st)
				}
				if st.Path != "" && st.Path != m.paths[st.ID] {
					t.Fatalf("stream %d: path %q, sent %q", st.ID, st.Path, m.paths[st.ID])
				}
				if st.ReqBytes != 5 || st.RespBytes != 7 {
					t.Fatalf("stream %d bytes %d/%d", st.ID, st.ReqBytes, st.RespBytes)
				}
				if st.Path == "" {
					if !st.Unknown {
						t.Fatalf("stream %d: no path and not Unknown", st.ID)
					}
					unknown++
					lastUnknown = i
					if strings.Contains(m.paths[st.ID], "New") {
						newUnknown++
					}
				}
			}
			switch {
			case unknown == 0:
				t.Fatalf("churn %v role %v: every path known: the test shows nothing", churn, role)
			case newUnknown > 0:
				t.Fatalf("churn %v role %v: %d paths first sent after the sync are unknown", churn, role, newUnknown)
			case churn && lastUnknown > len(res.streams)/2:
				t.Fatalf("churn %v: the table never became exact (stream %d has no path)", churn, lastUnknown)
			case !churn && unknown != len(res.streams)/2:
				t.Fatalf("no churn: %d of %d paths unknown, want the old ones (half)", unknown, len(res.streams))
			}
			t.Logf("churn %v role %v: %d of %d paths were unknown, the last at %d", churn, role, unknown, len(res.streams), lastUnknown)
		}
	}
}

// TestMidStreamSync: a connection found while a large DATA frame is being
// written syncs at the next write that starts at a frame boundary, on each
// side independently.
func TestMidStreamSync(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	m := newMidConv(r, 2, 4, false)
	chunks := m.chunksAfterCut()
	// A first chunk in the middle of a frame, on each side.
	mid := []chunk{{client: true, from: m.cut[1] - 3, capTo: m.cut[1], to: m.cut[1]}, {client: false, from: m.cut[0] - 3, capTo: m.cut[0], to: m.cut[0]}}
	res := m.run(t, RoleServer, Limits{MidStream: true}, append(mid, chunks...), true)
	if res.count(Unsynced) != 2 || len(res.probs) != 2 {
		t.Fatalf("problems %v, want one unsynced a side", res.probs)
	}
	if len(res.streams) != 4 {
		t.Fatalf("%d streams, want 4", len(res.streams))
	}
	_ = http2.ErrCodeNo
}

// TestMidStreamRandomCuts: however the writes after the cut are split
// into syscalls, a stream that is emitted has its fields right (or
// unknown), and nearly all calls are found.
func TestMidStreamRandomCuts(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	found, calls := 0, 0
	for i := range 400 {
		m := newMidConv(r, 4, 60, i%2 == 0)
		all := m.randomChunks(r)
		var chunks []chunk
		for _, ch := range all {
			side := 0
			if ch.client {
				side = 1
			}
			if ch.from >= m.cut[side] {
				chunks = append(chunks, ch)
			}
		}
		role := []Role{RoleServer, RoleClient}[i%2]
		res := m.run(t, role, Limits{MidStream: true}, chunks, true)
		complete := 0
		for _, st := range res.streams {
			if !m.after[st.ID] || st.Role != role || st.Method != "POST" {
				t.Fatalf("run %d: stream %+v", i, st)
			}
			if st.Path != "" && st.Path != m.paths[st.ID] {
				t.Fatalf("run %d: stream %d: path %q, sent %q", i, st.ID, st.Path, m.paths[st.ID])
			}
			// A response head in the bytes skipped before its side's sync
			// leaves the status unknown (0), never wrong.
			if (st.Status != 200 && st.Status != 0) || st.ReqBytes > 5 || st.RespBytes > 7 {
				t.Fatalf("run %d: stream %+v", i, st)
			}
			if st.Incomplete == "" {
				complete++
			}
		}
		found += complete
		calls += len(m.after)
	}
	// A false sync point (bytes inside a frame that look like a frame
	// header) may swallow what follows, up to a frame's length, until the
	// parse fails and seeks again: rare, never wrong.
	if found < calls*9/10 {
		t.Fatalf("%d of %d calls found", found, calls)
	}
	t.Logf("%d of %d calls found", found, calls)
}

// TestMidStreamFromStart: a connection taken for one found mid-life that
// turns out to start with the client preface is parsed as one traced from
// its start: the same streams, exactly.
func TestMidStreamFromStart(t *testing.T) {
	c := basicConv(0, false)
	for _, role := range []Role{RoleServer, RoleClient} {
		chunks := c.wholeChunks()
		r := c.run(t, role, Limits{MidStream: true}, chunks, true)
		if len(r.probs) > 0 {
			t.Fatalf("role %v: problems %v", role, r.probs)
		}
		check(t, r.streams, c.expect(role, chunks))
	}
}
