// Package protocols holds one folder per application protocol weft reads
// from captured bytes. Each implements conntrack.Protocol: a sniffer, a
// per-connection parser over its wire-format package, and a converter of
// finished exchanges into spans. The list the agent uses is made in
// cmd/agent; adding a protocol touches its folder and that list.
package protocols
