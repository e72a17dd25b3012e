package main

import (
	"net"
	"net/http"
)

// serveHops serves /hop over HTTP (HTTPS with a certificate).
func serveHops(ln net.Listener, cert, key string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/hop", hopHandler)
	if cert != "" {
		return http.ServeTLS(ln, mux, cert, key)
	}
	return http.Serve(ln, mux)
}
