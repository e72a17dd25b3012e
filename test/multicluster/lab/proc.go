package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process whose output goes to a log file and is also
// watched for lines the lab waits for.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string

	mu    sync.Mutex
	lines []string
	done  chan struct{}
	err   error
}

func startProc(name, logPath string, env []string, argv ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating %s's log: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(f, sc.Text())
			p.mu.Lock()
			if len(p.lines) < 10000 {
				p.lines = append(p.lines, sc.Text())
			}
			p.mu.Unlock()
		}
		f.Close()
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	return p, nil
}

// waitLine waits until an output line contains s and returns it.
func (p *proc) waitLine(ctx context.Context, s string, timeout time.Duration) (string, error) {
	return p.waitLines(ctx, s, 1, timeout)
}

// waitLines waits until n output lines contain s and returns the last.
func (p *proc) waitLines(ctx context.Context, s string, n int, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		found, last := 0, ""
		for _, l := range p.lines {
			if strings.Contains(l, s) {
				found++
				last = l
			}
		}
		p.mu.Unlock()
		if found >= n {
			return last, nil
		}
		select {
		case <-p.done:
			return "", fmt.Errorf("%s exited (%v) before printing %q; log %s:\n%s", p.name, p.err, s, p.log, p.tail(20))
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s did not print %q within %v; log %s:\n%s", p.name, s, timeout, p.log, p.tail(20))
		}
	}
}

func (p *proc) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.lines
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		return p.err
	}
	return nil
}

// freePort asks the kernel for an unused port on 127.0.0.1.
func freePort() (int, error) { return freePortOn("127.0.0.1") }

// freePortOn asks the kernel for an unused port on a loopback address.
func freePortOn(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// errExited: the process waited for exited first.
var errExited = errors.New("exited before listening")

// waitListening waits until addr accepts TCP connections, or p exits
// (errExited, with its log's tail).
func waitListening(ctx context.Context, p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s on %s: %w (%v); log %s:\n%s", p.name, addr, errExited, p.err, p.log, p.tail(20))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v (%s still runs); log %s:\n%s: %w", addr, timeout, p.name, p.log, p.tail(20), err)
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitPort waits until addr accepts TCP connections.
func waitPort(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v: %w", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
