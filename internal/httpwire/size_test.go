package httpwire

import (
	"strings"
	"testing"
)

// TestHeadBufferReleased: a head that spanned reads leaves no large buffer
// behind once its message is done, so an idle connection holds little.
func TestHeadBufferReleased(t *testing.T) {
	c := NewConn(Limits{})
	idle := c.Size()
	big := "GET /x HTTP/1.1\r\nCookie: " + strings.Repeat("c", 6000) + "\r\n\r\n"
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	c.Feed(Chunk{Dir: DirRead, Time: 1, Len: 4096, Data: []byte(big[:4096])})
	if c.Size() < 4096 {
		t.Fatalf("size %d while a 4 KiB partial head is held", c.Size())
	}
	c.Feed(Chunk{Dir: DirRead, Time: 2, Len: len(big) - 4096, Data: []byte(big[4096:])})
	if ex, _ := c.Feed(Chunk{Dir: DirWrite, Time: 3, Len: len(resp), Data: []byte(resp)}); len(ex) != 1 {
		t.Fatal("no exchange")
	}
	if got := c.Size(); got > idle+keptHeadBuf {
		t.Errorf("size %d after the exchange, idle %d", got, idle)
	}
	// An unfinished head is bounded by MaxHeaderBytes.
	c.Feed(Chunk{Dir: DirRead, Time: 4, Len: 4096, Data: []byte(big[:4096])})
	c.Feed(Chunk{Dir: DirRead, Time: 5, Len: 4096, Data: []byte(strings.Repeat("d", 4096))})
	if got := c.Size(); got > idle+2*DefaultMaxHeaderBytes {
		t.Errorf("size %d with an unfinished head", got)
	}
}
