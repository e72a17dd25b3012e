// Command offsetprobe is built by cmd/offsetgen with each Go toolchain in
// the offsets table; its DWARF gives the struct layouts recorded there. It
// must link the types measured: any Go program links runtime.g and
// runtime.m; the HTTP client links net/http.persistConn and the net types.
package main

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
)

func main() {
	fmt.Println(runtime.NumGoroutine())
	if len(os.Args) > 1 { // never in offsetgen; keeps the client linked
		if resp, err := http.Get(os.Args[1]); err == nil {
			resp.Body.Close()
		}
	}
}
