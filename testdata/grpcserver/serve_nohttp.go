//go:build nohttp

package main

import (
	"errors"
	"net"
)

// serveHops: built with -tags nohttp, the program links in no HTTP server
// (no net/http.(*conn).serve), as a gRPC-only service does.
func serveHops(net.Listener, string, string) error {
	return errors.New("built with -tags nohttp: no HTTP server")
}
