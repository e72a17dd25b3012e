package inject

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

var errNotStarted = errors.New("inject: not started")

// Track makes pid's requests carry headers: connections it makes from now
// on enter the sockhash at connect, and its established TCP connections
// with the given socket inodes do so through the iterator (in pid's
// network namespace). With nil inodes Track takes SocketInodes(pid) (its
// outgoing connections), read after pid is in the filter so that no
// connection falls between the two. Without the iterator, pid is tracked
// for new connections and the error wraps ErrUnsupported. On any error
// pid stays in the filter: Untrack it.
func (i *Injector) Track(pid int, socketInodes []uint64) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.loaded {
		return errNotStarted
	}
	if err := i.objs.InjectProcs.Put(uint32(pid), uint8(1)); err != nil {
		return fmt.Errorf("adding pid %d to the inject filter: %w", pid, err)
	}
	if socketInodes == nil {
		var err error
		if socketInodes, _, err = i.sockets.Connections(pid); err != nil {
			return err
		}
	}
	if len(socketInodes) == 0 {
		return nil
	}
	if i.iter == nil {
		return fmt.Errorf("pid %d: %d existing connections stay without headers: %w", pid, len(socketInodes), ErrUnsupported)
	}
	return i.addExisting(pid, socketInodes)
}

// addExisting runs the iterator over the TCP sockets of pid's network
// namespace with pid's socket inodes in the inject_inodes map.
func (i *Injector) addExisting(pid int, inodes []uint64) error {
	m := i.objs.InjectInodes
	defer func() {
		for _, ino := range inodes {
			_ = m.Delete(ino)
		}
	}()
	for _, ino := range inodes {
		if err := m.Put(ino, uint32(pid)); err != nil {
			return fmt.Errorf("listing socket inode %d: %w", ino, err)
		}
	}
	run := func() error {
		rd, err := i.iter.Open()
		if err != nil {
			return fmt.Errorf("opening the tcp iterator: %w", err)
		}
		defer rd.Close()
		_, err = io.Copy(io.Discard, rd)
		return err
	}
	return InNetns(pid, run)
}

// InNetns runs fn in pid's network namespace (a tcp iterator walks the
// namespace of the thread that opens it). In its own, fn runs directly;
// otherwise on a locked thread that is discarded if it cannot go back.
func InNetns(pid int, fn func() error) error {
	same, err := sameNetns(pid)
	if err != nil {
		return err
	}
	if same {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread unless the thread is back in our namespace:
		// the runtime then ends the thread with this goroutine.
		errc <- func() error {
			own, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				return err
			}
			defer own.Close()
			target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
			if err != nil {
				return err
			}
			defer target.Close()
			if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("entering the netns of pid %d: %w", pid, err)
			}
			ferr := fn()
			if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
				return errors.Join(ferr, fmt.Errorf("leaving the netns of pid %d: %w", pid, err))
			}
			runtime.UnlockOSThread()
			return ferr
		}()
	}()
	return <-errc
}

func sameNetns(pid int) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &a); err != nil {
		return false, err
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &b); err != nil {
		return false, err
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}

// Untrack stops injection for pid: it leaves the filter, and its sockets
// leave the sockhash (and so get their FIONREAD back). The sockhash is
// keyed by socket and owner, so its keys say which sockets are pid's;
// pid leaves the filter first, so that none of its sockets enters after
// the walk.
func (i *Injector) Untrack(pid int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.loaded {
		return
	}
	if err := i.objs.InjectProcs.Delete(uint32(pid)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		i.log.Warn("removing pid from the inject filter", "pid", pid, "err", err)
	}
	keys, err := i.sockhashKeys()
	if err != nil {
		// What was read is still removed; the rest leave when they close.
		i.log.Warn("walking the sockhash", "pid", pid, "err", err)
	}
	for _, k := range keys {
		if k.Tgid != uint32(pid) {
			continue
		}
		// Cookies are never reused: a socket that closed meanwhile is
		// simply gone.
		if err := i.objs.InjectSocks.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			i.log.Warn("removing a socket from the sockhash", "pid", pid, "cookie", k.Cookie, "err", err)
		}
	}
}

// sockhashKeys lists the sockhash's keys: each socket in it with its
// owner. Closed sockets have left it. Call with i.mu held.
func (i *Injector) sockhashKeys() ([]injectSockKey, error) {
	m := i.objs.InjectSocks
	var keys []injectSockKey
	seen := map[injectSockKey]bool{}
	var prev, next injectSockKey
	var cur any // nil: start from the first key
	// A key deleted under the walk sends it back to the first key (hence
	// seen); bound the walk so that heavy churn cannot keep it going.
	for n := 0; n < 4*int(m.MaxEntries()); n++ {
		err := m.NextKey(cur, &next)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return keys, nil
		}
		if err != nil {
			return keys, fmt.Errorf("next sockhash key: %w", err)
		}
		if !seen[next] {
			seen[next] = true
			keys = append(keys, next)
		}
		prev = next
		cur = &prev
	}
	return keys, fmt.Errorf("sockhash walk stopped after %d keys (sockets closing under it)", len(keys))
}
