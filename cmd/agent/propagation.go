package main

import (
	"fmt"
	"strings"
)

// propagation is how the agent sends trace context to the next hop.
type propagation struct {
	headers bool // a traceparent header in traced Go clients' HTTP requests (sk_msg)
	tcp     bool // a TCP header option on the segment that starts each request (sockops)
}

// parsePropagation reads WEFT_PROPAGATION / -propagation: "none" or a
// comma-separated set of "headers" and "tcp".
func parsePropagation(s string) (propagation, error) {
	var p propagation
	s = strings.TrimSpace(s)
	if s == "none" {
		return p, nil
	}
	if s == "" {
		return p, fmt.Errorf("propagation %q: want headers, tcp, headers,tcp or none", s)
	}
	for _, part := range strings.Split(s, ",") {
		switch strings.TrimSpace(part) {
		case "headers":
			p.headers = true
		case "tcp":
			p.tcp = true
		default:
			return p, fmt.Errorf("propagation %q: unknown channel %q (want headers, tcp, headers,tcp or none)", s, part)
		}
	}
	return p, nil
}
