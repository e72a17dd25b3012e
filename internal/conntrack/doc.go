// Package conntrack is the source-agnostic middle of the capture pipeline:
// it keeps one state per traced connection, whichever capture source fed
// its bytes (socket tracepoints, syscall tracepoints, TLS library hooks),
// picks the connection's protocol by sniffing its first chunks, and hands
// every chunk to that protocol's parser, which turns finished exchanges
// into spans.
//
//	source (BPF → Event) → Table (per connection: IDs, sniffing) → Parser (one per protocol) → spans.Sink
//
// A new capture source fills Events; a new protocol implements Protocol
// and is added to the list given to New. Neither touches this package.
package conntrack
