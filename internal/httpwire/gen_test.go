package httpwire

import "strings"

// rng is a small deterministic generator fed by fuzz input.
type rng struct {
	b []byte
	x uint64
}

func (r *rng) next() uint64 {
	if len(r.b) > 0 {
		r.x ^= uint64(r.b[0])
		r.b = r.b[1:]
	}
	// splitmix64
	r.x += 0x9e3779b97f4a7c15
	z := r.x
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (r *rng) n(k int) int { return int(r.next() % uint64(k)) }

// wireBytes is one direction's bytes, with where a gap may hide them.
type wireBytes struct {
	b     []byte
	gapOK []bool // byte i lies inside a body whose framing survives a gap
}

func (w *wireBytes) add(s string, gapOK bool) {
	w.b = append(w.b, s...)
	for range s {
		w.gapOK = append(w.gapOK, gapOK)
	}
}

type genExchange struct {
	method, target    string
	sourceCluster     string
	status            int
	reqBody, respBody int64
	reqStart, reqEnd  int // byte range in the request wire
	respStart         int // first byte of the final response
	respEnd           int
}

var bodyText = "GET / HTTP/1.1\r\nHost: x\r\n\r\nHTTP/1.1 200 OK\r\n\r\n0\r\n\r\n"

func (r *rng) body(n int) string {
	var b strings.Builder
	for b.Len() < n {
		s := bodyText[r.n(len(bodyText)):]
		b.WriteString(s[:min(len(s), n-b.Len())])
	}
	return b.String()
}

// genBody appends a body framed as chunked (true) or by length, and returns
// its framing header and wire length.
func (r *rng) genBody(w *wireBytes, size int, chunked bool) (hdr string, wireLen int64) {
	start := len(w.b)
	if !chunked {
		w.add(r.body(size), true)
		return "Content-Length: " + itoa(size) + "\r\n", int64(size)
	}
	for size > 0 {
		n := 1 + r.n(size)
		ext := ""
		if r.n(3) == 0 {
			ext = ";a=b"
		}
		w.add(strings.ToUpper(hex(n))+ext+"\r\n", false)
		w.add(r.body(n), true)
		w.add("\r\n", false)
		size -= n
	}
	w.add("0\r\n", false)
	if r.n(2) == 0 {
		w.add("Trailer-Field: t\r\n", false)
	}
	w.add("\r\n", false)
	return "Transfer-Encoding: chunked\r\n", int64(len(w.b) - start)
}

func hex(n int) string {
	const d = "0123456789abcdef"
	if n < 16 {
		return d[n : n+1]
	}
	return hex(n/16) + d[n%16:n%16+1]
}

// generate builds n valid exchanges in two wires. Only the last response
// may be delimited by the connection's close.
func (r *rng) generate(n int) (req, resp wireBytes, ex []genExchange) {
	methods := []string{"GET", "POST", "HEAD", "PUT", "DELETE"}
	for i := 0; i < n; i++ {
		g := genExchange{method: methods[r.n(len(methods))], target: "/p" + itoa(i) + "?q=" + itoa(r.n(1000))}
		g.reqStart = len(req.b)
		head := g.method + " " + g.target + " HTTP/1.1\r\nHost: h\r\n"
		if i%3 == 1 {
			// Derived from i, not drawn: the traffic of a given seed
			// stays what it was before the field was generated.
			g.sourceCluster = "c-" + itoa(i)
			head += []string{"X-Source-Cluster", "x-source-cluster", "X-SOURCE-CLUSTER"}[i/3%3] + ": " + g.sourceCluster + "\r\n"
		}
		var bodyWire wireBytes
		if g.method == "POST" || g.method == "PUT" {
			var h string
			h, g.reqBody = r.genBody(&bodyWire, r.n(300), r.n(2) == 0)
			head += h
		}
		req.add(head+"\r\n", false)
		req.b = append(req.b, bodyWire.b...)
		req.gapOK = append(req.gapOK, bodyWire.gapOK...)
		g.reqEnd = len(req.b)

		if r.n(4) == 0 {
			resp.add("HTTP/1.1 100 Continue\r\n\r\n", false)
		}
		g.respStart = len(resp.b)
		statuses := []int{200, 200, 201, 204, 304, 404, 500}
		g.status = statuses[r.n(len(statuses))]
		head = "HTTP/1.1 " + itoa(g.status) + " Reason\r\n"
		noBody := g.method == "HEAD" || g.status == 204 || g.status == 304
		bodyWire = wireBytes{}
		switch last := i == n-1; {
		case noBody:
			head += "Content-Length: " + itoa(r.n(50)) + "\r\n"
		case last && r.n(3) == 0:
			bodyWire.add(r.body(r.n(300)), true)
			g.respBody = int64(len(bodyWire.b))
		default:
			var h string
			h, g.respBody = r.genBody(&bodyWire, r.n(300), r.n(2) == 0)
			head += h
		}
		resp.add(head+"\r\n", false)
		resp.b = append(resp.b, bodyWire.b...)
		resp.gapOK = append(resp.gapOK, bodyWire.gapOK...)
		g.respEnd = len(resp.b)
		ex = append(ex, g)
	}
	return req, resp, ex
}

// traffic is generated exchanges cut into the chunks a Conn would see.
type traffic struct {
	gen      []genExchange
	chunks   []Chunk
	reqTime  []uint64 // per request byte: Time of its chunk
	reqFirst []bool   // per request byte: first in its chunk
	respTime []uint64 // per response byte: Time of its chunk
	role     Role
}

// newTraffic generates n exchanges and cuts them into chunks of at most
// maxChunk bytes. hide returns how many bytes of the chunk w.b[from:to]
// are captured (the rest is a gap). A client does not pipeline unless
// pipelined: each request, then its response.
func newTraffic(r *rng, n, maxChunk int, client, pipelined bool, hide func(w *wireBytes, from, to int) int) *traffic {
	reqW, respW, gen := r.generate(n)
	tr := &traffic{
		gen:      gen,
		reqTime:  make([]uint64, len(reqW.b)),
		reqFirst: make([]bool, len(reqW.b)),
		respTime: make([]uint64, len(respW.b)),
		role:     RoleServer,
	}
	reqDir, respDir := DirRead, DirWrite
	if client {
		reqDir, respDir, tr.role = DirWrite, DirRead, RoleClient
	}
	now := uint64(0)
	cut := func(w *wireBytes, dir Dir, from, to int, times []uint64, first []bool) {
		for from < to {
			size := 1 + r.n(min(to-from, 1+r.n(maxChunk)))
			now += 10
			data := w.b[from : from+hide(w, from, from+size)]
			tr.chunks = append(tr.chunks, Chunk{Dir: dir, Time: now, Data: data, Len: size, Goid: now})
			for i := from; i < from+size; i++ {
				times[i] = now
				if first != nil {
					first[i] = i == from
				}
			}
			from += size
		}
	}
	if pipelined {
		cut(&reqW, reqDir, 0, len(reqW.b), tr.reqTime, tr.reqFirst)
		cut(&respW, respDir, 0, len(respW.b), tr.respTime, nil)
		return tr
	}
	respFrom := 0
	for _, g := range gen {
		cut(&reqW, reqDir, g.reqStart, g.reqEnd, tr.reqTime, tr.reqFirst)
		cut(&respW, respDir, respFrom, g.respEnd, tr.respTime, nil)
		respFrom = g.respEnd
	}
	return tr
}

// end is the Time of the chunk after the last one.
func (tr *traffic) end() uint64 { return uint64(len(tr.chunks)+1) * 10 }
