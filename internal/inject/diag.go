package inject

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// The kernel's sock_diag interface (linux/inet_diag.h): a dump of the TCP
// sockets of one network namespace, filtered by state in the kernel.
// /proc/PID/net/tcp prints every socket of the namespace, listeners
// included, and re-walks the hash tables on every read: with a thousand
// servers on a node that is milliseconds per traced process, and the
// scan reads it for each of them.

const (
	diagReqLen   = 56 // struct inet_diag_req_v2
	diagReqV1Len = 60 // struct inet_diag_req
	diagMsgLen   = 72 // struct inet_diag_msg
	tcpDiagGet   = 18 // TCPDIAG_GETSOCK
)

// diagReqV1 asks for the TCP sockets in states of both families.
func diagReqV1(states uint32) []byte {
	req := make([]byte, unix.NLMSG_HDRLEN+diagReqV1Len)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], tcpDiagGet)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	// idiag_family 0 (AF_UNSPEC), then id (48 bytes), idiag_states, idiag_dbs.
	binary.NativeEndian.PutUint32(req[unix.NLMSG_HDRLEN+52:], states)
	return req
}

// diagReqV2 asks for the TCP sockets in states of one family.
func diagReqV2(family uint8, states uint32) []byte {
	req := make([]byte, unix.NLMSG_HDRLEN+diagReqLen)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	r := req[unix.NLMSG_HDRLEN:]
	r[0], r[1] = family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(r[4:], states)
	return req
}

// diagSock is what a dump says of one socket.
type diagSock struct {
	port  uint16 // local
	state uint8
	inode uint64
}

// diagDump lists the TCP sockets in the given states (a bit mask of
// 1<<TCP_*) of the calling thread's network namespace, IPv4 and IPv6.
func diagDump(states uint32) ([]diagSock, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_INET_DIAG)
	if err != nil {
		return nil, fmt.Errorf("opening sock_diag: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("binding sock_diag: %w", err)
	}
	var out []diagSock
	buf := make([]byte, 64<<10)
	// Each dump walks the whole established hash table (262,144 buckets
	// on a 24 GiB node: ~1 ms), which IPv4 and IPv6 share. The first
	// request is the old TCPDIAG_GETSOCK one, whose family is AF_UNSPEC:
	// both in one walk; a kernel that refuses it is asked per family.
	reqs := [][]byte{diagReqV1(states)}
	for i := 0; i < len(reqs); i++ {
		req := reqs[i]
		binary.NativeEndian.PutUint32(req[8:], uint32(i+1))
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return nil, fmt.Errorf("asking sock_diag: %w", err)
		}
	recv:
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				return nil, fmt.Errorf("reading sock_diag: %w", err)
			}
			msgs, err := syscall.ParseNetlinkMessage(buf[:n])
			if err != nil {
				return nil, fmt.Errorf("parsing sock_diag: %w", err)
			}
			for _, m := range msgs {
				switch m.Header.Type {
				case unix.NLMSG_DONE:
					break recv
				case unix.NLMSG_ERROR:
					if len(m.Data) >= 4 {
						if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
							if i == 0 && len(out) == 0 {
								reqs = append(reqs, diagReqV2(unix.AF_INET, states), diagReqV2(unix.AF_INET6, states))
								break recv
							}
							return nil, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
						}
					}
					break recv
				case unix.SOCK_DIAG_BY_FAMILY, tcpDiagGet: // the reply has the request's type
					if len(m.Data) < diagMsgLen {
						continue
					}
					out = append(out, diagSock{
						port:  binary.BigEndian.Uint16(m.Data[4:]), // id.idiag_sport
						state: m.Data[1],
						inode: uint64(binary.NativeEndian.Uint32(m.Data[68:])),
					})
				}
			}
		}
	}
	return out, nil
}

// diagConnections is Connections from sock_diag, given pid's socket
// inodes, in one walk of the namespace's established and listening
// sockets; it also returns the listeners' inodes.
func diagConnections(pid int, mine map[uint64]bool) (outgoing, accepted []uint64, listeners map[uint64]bool, err error) {
	var est, lis []diagSock
	err = InNetns(pid, func() error {
		all, err := diagDump(1<<tcpEstablished | 1<<tcpListen)
		for _, s := range all {
			if s.state == tcpListen {
				lis = append(lis, s)
			} else {
				est = append(est, s)
			}
		}
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	listening := map[uint16]bool{}
	listeners = make(map[uint64]bool, len(lis))
	for _, s := range lis {
		listening[s.port] = true
		listeners[s.inode] = true
	}
	outgoing = []uint64{}
	for _, s := range est {
		if !mine[s.inode] {
			continue
		}
		if listening[s.port] {
			accepted = append(accepted, s.inode)
		} else {
			outgoing = append(outgoing, s.inode)
		}
	}
	return outgoing, accepted, listeners, nil
}
