package procs

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// tcpListen is the TCP_LISTEN state in /proc/net/tcp{,6}.
const tcpListen = 0x0A

// parseTCP adds the listening sockets of a /proc/net/tcp or tcp6 table to
// into (socket inode -> local port). The layout is
//
//	sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
//
// where local_address is hex "ADDR:PORT" with an 8 (v4) or 32 (v6) digit
// address. The header and malformed lines are skipped.
func parseTCP(r io.Reader, into map[uint64]uint16) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		if st, err := strconv.ParseUint(f[3], 16, 8); err != nil || st != tcpListen {
			continue
		}
		addr, port, ok := strings.Cut(f[1], ":")
		if !ok || (len(addr) != 8 && len(addr) != 32) || !isHex(addr) {
			continue
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil || p == 0 {
			continue
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil || ino == 0 {
			continue
		}
		into[ino] = uint16(p)
	}
	return sc.Err()
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// socketInode parses an fd link target "socket:[12345]".
func socketInode(link string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(s, 10, 64)
	return ino, err == nil
}
