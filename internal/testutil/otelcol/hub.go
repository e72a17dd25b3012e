package otelcol

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// buildHub builds the spoke/hub collector (scripts/otelcol.sh hub) at most
// once per test binary.
var buildHub = sync.OnceValues(func() (string, error) { return runBuildScript("hub") })

// HubBinary returns the path of the collector built with the spoke and hub
// components of deploy/collector (tail_sampling, groupbytrace, file_storage
// besides Binary's), building it on first use: several minutes cold.
func HubBinary(t testing.TB) string {
	t.Helper()
	return binary(t, buildHub, "the spoke/hub OpenTelemetry Collector")
}

// Options configure StartWith.
type Options struct {
	// Binary is the collector to run; "" means Binary(t).
	Binary string
	// Config is the path of the config file, used where it is.
	Config string
	// EndpointEnv names the environment variable through which the config
	// reads its OTLP/gRPC listen address ("" means WEFT_OTLP_ENDPOINT).
	// StartWith picks a free loopback port for it.
	EndpointEnv string
	// SpansFileEnv names the environment variable through which the config
	// reads its file exporter's path ("" means WEFT_SPANS_FILE). A config
	// without a file exporter simply ignores it; Spans then finds nothing.
	SpansFileEnv string
	// Env holds more KEY=value entries for the collector's environment.
	Env []string
}

// StartWith runs a collector with the given binary and config on a free
// loopback port and stops it when the test ends. The returned Collector
// works as Start's does (Spans, WaitSpans, Stop, Restart); Restart keeps
// the endpoint and the environment.
func StartWith(t testing.TB, opts Options) *Collector {
	t.Helper()
	bin := opts.Binary
	if bin == "" {
		bin = Binary(t)
	}
	if _, err := os.Stat(opts.Config); err != nil {
		t.Fatalf("collector config: %v", err)
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		c := &Collector{
			SpansFile:    filepath.Join(dir, "spans.json"),
			logFile:      filepath.Join(dir, fmt.Sprintf("collector-%d.log", attempt)),
			bin:          bin,
			configPath:   opts.Config,
			runs:         1,
			endpointEnv:  opts.EndpointEnv,
			spansFileEnv: opts.SpansFileEnv,
			extraEnv:     opts.Env,
		}
		var err error
		if c.Endpoint, err = freeLoopbackAddr(); err != nil {
			t.Fatal(err)
		}
		if lastErr = c.start(t, bin, opts.Config); lastErr == nil {
			return c
		}
		if !strings.Contains(c.log(), "address already in use") {
			break
		}
	}
	t.Fatalf("starting the collector (%s): %v", opts.Config, lastErr)
	return nil
}

// Log returns what the collector has logged in its current run.
func (c *Collector) Log() string { return c.log() }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
