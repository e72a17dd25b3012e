// Command fionread is a cgo program for weft's injection tests, standing
// for a Go service that hands its sockets to a C library (librdkafka,
// libcurl, libpq...) which sizes its reads with ioctl(FIONREAD).
//
// It reads commands on stdin:
//
//	dial      connect to the address given as argument; print "COOKIE n"
//	          (the socket's SO_COOKIE, the key weft's maps use)
//	fionread  for each connection, wait (in C, with poll) until it is
//	          readable, then ask ioctl(FIONREAD) from C how many bytes
//	          wait; print "FIONREAD n1 n2 ..."
package main

/*
#include <poll.h>
#include <sys/ioctl.h>

// How many bytes wait on fd once it is readable, as a C library asks:
// -1 if it did not become readable within ms, -2 if the ioctl failed.
static int fionread(int fd, int ms) {
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, ms) != 1 || !(p.revents & POLLIN))
		return -1;
	int n = 0;
	if (ioctl(fd, FIONREAD, &n) < 0)
		return -2;
	return n;
}
*/
import "C"

import (
	"bufio"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"syscall"
	"unsafe"
)

func control(c *net.TCPConn, f func(fd uintptr)) {
	raw, err := c.SyscallConn()
	if err != nil {
		log.Fatal(err)
	}
	if err := raw.Control(f); err != nil {
		log.Fatal(err)
	}
}

func cookie(c *net.TCPConn) uint64 {
	const soCookie = 57
	var v uint64
	l := uint32(8)
	control(c, func(fd uintptr) {
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_SOCKET, soCookie,
			uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 {
			log.Fatal(e)
		}
	})
	return v
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: fionread ADDR")
	}
	var conns []*net.TCPConn
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "dial":
			c, err := net.Dial("tcp", os.Args[1])
			if err != nil {
				log.Fatal(err)
			}
			conns = append(conns, c.(*net.TCPConn))
			fmt.Printf("COOKIE %d\n", cookie(c.(*net.TCPConn)))
		case "fionread":
			var out []string
			for _, c := range conns {
				var n C.int
				control(c, func(fd uintptr) { n = C.fionread(C.int(fd), 5000) })
				out = append(out, fmt.Sprint(n))
			}
			fmt.Printf("FIONREAD %s\n", strings.Join(out, " "))
		default:
			log.Fatalf("unknown command %q", in.Text())
		}
	}
}
