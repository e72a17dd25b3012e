// Command pause is the sandbox image of weft's test cluster
// (scripts/cluster.sh): the first process of every pod, which holds its
// namespaces and does nothing until it is stopped. Built static, so the
// image is this one file; no image has to be pulled.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	// As PID 1 of a shared PID namespace it would reap orphans; SIGCHLD
	// ignored makes the kernel do that.
	signal.Ignore(syscall.SIGCHLD)
	<-sig
}
