// Command hello is the fixture goinspect's tests build in several variants:
// a tiny HTTP server whose main.handler has more than one return path, so
// ReturnOffsets must find several RET sites, and one real module dependency
// (xxhash), so the build info carries a versioned dependency.
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/cespare/xxhash/v2"
)

// handler returns early on a bad method and again at the end; noinline keeps
// it a real symbol with its own RETs.
//
//go:noinline
func handler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/hash" {
		fmt.Fprintf(w, "%x\n", xxhash.Sum64String(r.URL.RawQuery))
		return
	}
	fmt.Fprintln(w, "hello")
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-serve" {
		http.HandleFunc("/", handler)
		_ = http.ListenAndServe("127.0.0.1:0", nil)
	}
}
