// Package tcpconnect turns connects that failed before a byte was sent
// (refused, timed out, given up) into CLIENT spans. No protocol parser
// sees such a call: without it, a dependency that is down leaves no trace
// of the calls made to it.
package tcpconnect

import (
	"syscall"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sys/unix"

	"github.com/weft-dev/weft/internal/conntrack"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/protocols/httpsem"
	"github.com/weft-dev/weft/internal/spans"
)

// Config is what failed connects need.
type Config struct {
	Sink    spans.Sink
	Metrics *metrics.Registry
}

// Failures makes a span of each failed connect.
type Failures struct {
	sink spans.Sink
	met  *metrics.Registry
}

// New returns Failures that export to cfg.Sink.
func New(cfg Config) *Failures { return &Failures{sink: cfg.Sink, met: cfg.Metrics} }

// ConnectFailed implements conntrack.FailedConnects.
func (f *Failures) ConnectFailed(c conntrack.FailedConnect) {
	if c.Process == nil {
		return // raced with Untrack
	}
	s := Span(c)
	if f.met != nil {
		f.met.Counter("weft_connect_failures_total", "connects of traced processes that failed before a byte was sent, by error.type",
			"error_type", ErrorType(c.Errno)).Add(1)
	}
	if s.Sampled {
		f.sink.Export(s)
	}
}

// ErrorType names a failed connect's error as error.type: the errno's
// name (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH...), or connect_abandoned
// when the socket had none (the process closed it first: its own dial
// timeout, a cancelled context).
func ErrorType(errno int) string {
	if errno == 0 {
		return "connect_abandoned"
	}
	if name := unix.ErrnoName(syscall.Errno(errno)); name != "" {
		return name
	}
	return "errno_unknown"
}

// Span is the CLIENT span of a failed connect: named "connect", with the
// peer's address, error.type and an error status. Pure.
func Span(c conntrack.FailedConnect) spans.Span {
	s := spans.Span{
		TraceID: c.IDs.Trace, SpanID: c.IDs.Span, Sampled: c.IDs.Sampled,
		Name: "connect", Kind: trace.SpanKindClient, Start: c.Start, End: c.End,
		Error: true, Scope: httpsem.Scope,
	}
	if c.Process != nil {
		s.Resource = c.Process.Resource
	}
	if c.IDs.Linked {
		s.Parent = c.IDs.Parent
	}
	if s.End.Before(s.Start) {
		s.End = s.Start
	}
	msg := "connect: the process gave up before the connection was established"
	if c.Errno != 0 {
		msg = "connect: " + syscall.Errno(c.Errno).Error()
	}
	s.StatusMsg = msg
	s.Attrs = []attribute.KeyValue{
		attribute.String("network.transport", "tcp"),
		attribute.String("error.type", ErrorType(c.Errno)),
	}
	if c.Remote.IsValid() {
		addr := c.Remote.Addr().String()
		s.Attrs = append(s.Attrs,
			attribute.String("server.address", addr), attribute.Int("server.port", int(c.Remote.Port())),
			attribute.String("network.peer.address", addr), attribute.Int("network.peer.port", int(c.Remote.Port())))
	}
	return s
}
