package inject

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// SocketInodes lists the inodes of pid's outgoing TCP connections: its
// sockets ("socket:[N]" in /proc/PID/fd) that /proc/PID/net/tcp{,6} shows
// established on a local port nothing listens on. Accepted connections are
// left out, as sockops leaves them out: they carry no requests, and in the
// sockhash their FIONREAD would read 0.
func SocketInodes(pid int) ([]uint64, error) {
	out, _, err := Connections(pid)
	return out, err
}

// Connections lists the inodes of pid's established TCP connections: those
// it made (outgoing: their local port is not one a socket listens on in
// its network namespace) and those it accepted.
func Connections(pid int) (outgoing, accepted []uint64, err error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("listing sockets of pid %d: %w", pid, err)
	}
	mine := map[uint64]bool{}
	for _, e := range ents {
		target, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		if s, ok := strings.CutPrefix(target, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				mine[ino] = true
			}
		}
	}
	if len(mine) == 0 {
		return []uint64{}, nil, nil
	}
	if outgoing, accepted, err = diagConnections(pid, mine); err == nil {
		return outgoing, accepted, nil
	}
	// No sock_diag here (or not allowed): the namespace's whole table.
	var socks []tcpSock
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("reading TCP sockets of pid %d: %w", pid, err)
		}
		socks = append(socks, parseProcTCP(string(b))...)
	}
	listening := map[uint16]bool{}
	for _, s := range socks {
		if s.state == tcpListen {
			listening[s.port] = true
		}
	}
	outgoing = []uint64{}
	for _, s := range socks {
		if s.state != tcpEstablished || !mine[s.inode] {
			continue
		}
		if listening[s.port] {
			accepted = append(accepted, s.inode)
		} else {
			outgoing = append(outgoing, s.inode)
		}
	}
	return outgoing, accepted, nil
}

const (
	tcpEstablished = 0x01
	tcpListen      = 0x0a
)

type tcpSock struct {
	port  uint16 // local
	state uint8
	inode uint64
}

// parseProcTCP reads /proc/net/tcp{,6}: "sl local rem st queues tr
// retrnsmt uid timeout inode ...", addresses as HEX:PORT.
func parseProcTCP(text string) []tcpSock {
	var out []tcpSock
	for _, line := range strings.Split(text, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		_, portHex, ok := strings.Cut(f[1], ":")
		port, err1 := strconv.ParseUint(portHex, 16, 16)
		state, err2 := strconv.ParseUint(f[3], 16, 8)
		inode, err3 := strconv.ParseUint(f[9], 10, 64)
		if !ok || err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, tcpSock{port: uint16(port), state: uint8(state), inode: inode})
	}
	return out
}
