//go:build go1.24

package main

import (
	"flag"
	"net/http"
)

// -h2c (Go 1.24+, http.Protocols): the server also takes HTTP/2 without
// TLS (prior knowledge), and the client speaks it to http:// URLs, with
// net/http's own HTTP/2 client.
func init() {
	h2c := flag.Bool("h2c", false, "serve h2c too, and call http:// URLs over h2c (net/http's HTTP/2 client)")
	setupH2C = func(srv *http.Server, tr *http.Transport) {
		if !*h2c {
			return
		}
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
}
