package main

import (
	"encoding/json"
	"io"
	"net/http"
)

// headers serves ANY /headers: it answers the trace-context headers the
// request carried, each line's value, as JSON lists
// ({"traceparent": [...], "tracestate": [...]}): what a next hop was sent,
// after any proxy in between.
func headers(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Goid", goid())
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string][]string{
		"traceparent": r.Header.Values("Traceparent"),
		"tracestate":  r.Header.Values("Tracestate"),
	})
}
