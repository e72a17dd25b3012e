package procs

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
)

// ListeningPorts maps each process to the TCP ports (v4 and v6) on which it
// holds a socket in LISTEN state, sorted and without duplicates. Processes
// without such sockets are absent. A socket shared by several processes
// (e.g. inherited by pre-forked workers) counts for each of them.
//
// Listening sockets are read from /proc/PID/net/tcp{,6} of one process per
// network namespace (keyed by the /proc/PID/ns/net link, so each namespace
// is read once) and matched by inode, which is unique host-wide, to the
// "socket:[N]" links in /proc/PID/fd. Processes that vanish or cannot be
// read are skipped. An error is returned only when procRoot cannot be
// listed, or when no namespace's table could be read at all.
func ListeningPorts(procRoot string) (map[int][]uint16, error) {
	pids, err := List(procRoot)
	if err != nil {
		return nil, err
	}
	s := portScan{
		seen:   make(map[string]bool),
		listen: make(map[uint64]uint16),
		socks:  make(map[int][]uint64),
		buf:    make([]byte, 256),
	}
	for _, pid := range pids {
		s.scan(procRoot, pid)
	}
	if len(s.seen) == 0 && s.err != nil {
		return nil, s.err
	}
	out := make(map[int][]uint16)
	for pid, inodes := range s.socks {
		var ports []uint16
		for _, ino := range inodes {
			if p, ok := s.listen[ino]; ok {
				ports = append(ports, p)
			}
		}
		if len(ports) > 0 {
			slices.Sort(ports)
			out[pid] = slices.Compact(ports)
		}
	}
	return out, nil
}

type portScan struct {
	seen   map[string]bool   // network namespaces whose tables were read
	listen map[uint64]uint16 // listening socket inode -> port
	socks  map[int][]uint64  // pid -> inodes of its sockets
	buf    []byte            // readlink scratch space
	err    error             // first error other than a vanished process
}

func (s *portScan) scan(procRoot string, pid int) {
	d, err := openDir(filepath.Join(procRoot, strconv.Itoa(pid)))
	if err != nil {
		return
	}
	defer d.close()
	// An exited leader has no ns/net link; its net/ still works through
	// its threads, so read the tables for it alone.
	ns, err := d.readlink("ns/net", s.buf)
	if err != nil {
		ns = "pid:" + strconv.Itoa(pid)
	}
	if !s.seen[ns] {
		// On failure another process in this namespace may do.
		if err := listeners(d, s.listen); err == nil {
			s.seen[ns] = true
		} else if !isGone(err) && s.err == nil {
			s.err = fmt.Errorf("procs: listening ports: %w", err)
		}
	}
	inodes, ok := s.sockets(d, "fd")
	if !ok {
		// An exited leader has an empty fd table, but its threads normally
		// share one, so the first live thread tells.
		for _, b := range otherTasks(d, pid) {
			if inodes, ok = s.sockets(d, b+"fd"); ok {
				break
			}
		}
	}
	if len(inodes) > 0 {
		s.socks[pid] = inodes
	}
}

// listeners adds the LISTEN sockets of the network namespace of d to into.
func listeners(d dir, into map[uint64]uint16) error {
	for _, name := range []string{"net/tcp", "net/tcp6"} {
		f, err := d.open(name)
		if err != nil {
			// No tcp6 without IPv6; but ENOENT may also mean the process
			// just died, and then the namespace must be read again.
			if name == "net/tcp6" && isGone(err) {
				if _, serr := d.stat("stat"); serr == nil {
					continue
				}
			}
			return err
		}
		err = parseTCP(f, into)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
	}
	return nil
}

// sockets returns the inodes of the sockets in the fd directory rel of d;
// ok is false when that directory is unreadable or empty.
func (s *portScan) sockets(d dir, rel string) (inodes []uint64, ok bool) {
	fds, err := d.sub(rel)
	if err != nil {
		return nil, false
	}
	defer fds.close()
	names, err := fds.names()
	if err != nil || len(names) == 0 {
		return nil, false
	}
	for _, n := range names {
		if link, err := fds.readlink(n, s.buf); err == nil {
			if ino, ok := socketInode(link); ok {
				inodes = append(inodes, ino)
			}
		}
	}
	return inodes, true
}
