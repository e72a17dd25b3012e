package h2wire

import (
	"testing"
)

// FuzzConn feeds two arbitrary byte streams (client-to-server and back) cut
// by an arbitrary plan. Each plan byte is one chunk: bit 0 the side, bit 1
// a gap after the captured bytes, bits 2-7 the length. Nothing may panic,
// open streams stay within MaxStreams, emitted streams within the header
// limits and in time order; as traced from the start and as found mid-life.
func FuzzConn(f *testing.F) {
	for _, c := range []*conv{basicConv(0, false), basicConv(3, true)} {
		cli, srv := c.cli.buf.Bytes(), c.srv.buf.Bytes()
		var plan []byte
		for _, s := range c.wholeChunks() {
			side := byte(0)
			if !s.client {
				side = 1
			}
			for n := s.to - s.from; n > 0; n -= 63 {
				plan = append(plan, byte(min(n, 63))<<2|side)
			}
		}
		f.Add(cli, srv, plan)
	}
	f.Add([]byte(ClientPreface+"\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x05\x01\x05\x00\x00\x00\x01\x82\x84\x86\x41\x80"), []byte("\x00\x00\x00\x04\x00\x00\x00\x00\x00"), []byte{0xff, 0x01, 0xfe, 0x02})
	f.Fuzz(func(t *testing.T, cli, srv, plan []byte) {
		const maxStreams, maxHdr = 8, 512
		for run := range 4 {
			role, mid := []Role{RoleServer, RoleClient}[run&1], run >= 2 // mid: found mid-life (midstream.go)
			c := NewConn(Limits{MaxStreams: maxStreams, MaxHeaderListBytes: maxHdr, MidStream: mid})
			src := [2][]byte{cli, srv}
			var tm uint64
			var last uint64
			checkOut := func(sts []Stream) {
				for _, s := range sts {
					if s.Start > s.End || s.End < last && s.Incomplete == "" {
						t.Fatalf("times %+v (last %d)", s, last)
					}
					if len(s.Method)+len(s.Path)+len(s.Authority)+len(s.Scheme)+len(s.ContentType)+len(s.UserAgent)+len(s.Traceparent)+len(s.Tracestate)+len(s.SourceCluster) > maxHdr {
						t.Fatalf("stream over header limit: %d", len(s.Path))
					}
					if s.ID&1 == 0 {
						t.Fatalf("even stream %d", s.ID)
					}
				}
			}
			for i := 0; ; i++ {
				var b byte = 0xfd
				if i < len(plan) {
					b = plan[i]
				} else if len(src[0]) == 0 && len(src[1]) == 0 {
					break
				}
				side := int(b & 1)
				if len(src[side]) == 0 {
					side ^= 1
				}
				n := min(int(b>>2)+1, len(src[side]))
				gap := 0
				if b&2 != 0 {
					gap = int(b >> 4)
				}
				d := DirRead
				if (side == 0) == (role == RoleClient) {
					d = DirWrite
				}
				tm++
				sts, _ := c.Feed(Chunk{Dir: d, Time: tm, Len: n + gap, Data: src[side][:n], Goid: tm})
				checkOut(sts)
				src[side] = src[side][n:]
				if c.Open() > maxStreams {
					t.Fatalf("%d open streams", c.Open())
				}
				if len(src[0]) == 0 && len(src[1]) == 0 && i >= len(plan) {
					break
				}
			}
			sts, _ := c.Close(tm + 1)
			checkOut(sts)
			if c.Open() != 0 || !c.Done() {
				t.Fatal("open after close")
			}
		}
	})
}
