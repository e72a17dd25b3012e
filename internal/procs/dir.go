package procs

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// dir is an open /proc/PID directory. Everything read through it comes from
// the same process instance: once that process is reaped, lookups fail with
// ENOENT/ESRCH even if its PID has been reused meanwhile.
type dir struct {
	fd   int
	path string
}

func openDir(path string) (dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return dir{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return dir{fd: fd, path: path}, nil
}

func (d dir) close() { unix.Close(d.fd) }

func (d dir) name(rel string) string { return d.path + "/" + rel }

// sub opens a directory below d.
func (d dir) sub(rel string) (dir, error) {
	fd, err := unix.Openat(d.fd, rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return dir{}, &os.PathError{Op: "open", Path: d.name(rel), Err: err}
	}
	return dir{fd: fd, path: d.name(rel)}, nil
}

// names lists the entries of d.
func (d dir) names() ([]string, error) {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	return f.Readdirnames(-1)
}

// open opens a file below d for reading.
func (d dir) open(rel string) (*os.File, error) {
	fd, err := unix.Openat(d.fd, rel, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.name(rel), Err: err}
	}
	return os.NewFile(uintptr(fd), d.name(rel)), nil
}

// read returns the whole content of a file below d.
func (d dir) read(rel string) ([]byte, error) {
	f, err := d.open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// readlink returns the target of a symlink below d; buf is scratch space
// that may be nil.
func (d dir) readlink(rel string, buf []byte) (string, error) {
	if len(buf) < 128 {
		buf = make([]byte, 256)
	}
	for {
		n, err := unix.Readlinkat(d.fd, rel, buf)
		if err != nil {
			return "", &os.PathError{Op: "readlink", Path: d.name(rel), Err: err}
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// stat follows a path below d, symlinks included.
func (d dir) stat(rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, rel, &st, 0); err != nil {
		return st, &os.PathError{Op: "stat", Path: d.name(rel), Err: err}
	}
	return st, nil
}
