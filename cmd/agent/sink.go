package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/weft-dev/weft/internal/export"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/statusserver"
)

// newSink builds the exporter named by -exporter; the second result is
// non-nil when it needs a Shutdown.
func newSink(ctx context.Context, name string, attrs *spans.AttrPool, met *metrics.Registry, live *statusserver.Liveness, log *slog.Logger) (spans.Sink, component, error) {
	switch name {
	case "console":
		return export.NewConsole(os.Stdout), nil, nil
	case "jsonl":
		j := export.NewJSONL(os.Stdout)
		j.Attrs = attrs
		return j, j, nil
	case "otlp":
		cfg, explicitSpool, err := otlpConfig(os.LookupEnv)
		if err != nil {
			return nil, nil, err
		}
		cfg.Attrs = attrs
		elog := log.With("component", "export")
		// An upload may take two export timeouts (the client's own retry)
		// and a backoff: silence past that means a wedged sender.
		cfg.Heartbeat = live.Register("exporter", 2*max(cfg.ExportTimeout, 10*time.Second)+max(cfg.RetryMax, 5*time.Second)+30*time.Second)
		o, err := export.NewOTLP(cfg, met, elog)
		if err != nil && !explicitSpool && cfg.SpoolDir != "" {
			// The default spool directory is a convenience (say, not root
			// in development): without it, run from memory only.
			log.Warn("export spool unavailable; spans are kept in memory only", "dir", cfg.SpoolDir, "err", err)
			cfg.SpoolDir = ""
			o, err = export.NewOTLP(cfg, met, elog)
		}
		if err != nil {
			return nil, nil, err
		}
		o.Start()
		log.Info("OTLP export", "endpoints", cfg.Endpoints, "spool", cfg.SpoolDir, "queue", cfg.QueueSize)
		return o, o, nil
	default:
		return nil, nil, fmt.Errorf("unknown exporter %q: want otlp, console or jsonl", name)
	}
}

// otlpConfig reads the exporter's settings from the environment:
//
//	WEFT_OTLP_ENDPOINTS     comma-separated, in order of preference
//	                        (default: OTEL_EXPORTER_OTLP_ENDPOINT, else the SDK default)
//	WEFT_OTLP_COMPRESSION   gzip (default, fastest level) or none
//	WEFT_QUEUE_SIZE         spans held in memory (default 8192)
//	WEFT_SPOOL_DIR          disk spool directory (default none: memory only)
//	WEFT_SPOOL_MAX_BYTES    spool bound, bytes or with K/M/G suffix (default 256M)
//	WEFT_SPOOL_MAX_AGE      spool age bound, a Go duration (default 24h)
//
// explicitSpool is true when WEFT_SPOOL_DIR was set.
func otlpConfig(lookup func(string) (string, bool)) (cfg export.Config, explicitSpool bool, err error) {
	get := func(k string) string { v, _ := lookup(k); return strings.TrimSpace(v) }
	eps := get("WEFT_OTLP_ENDPOINTS")
	if eps == "" {
		eps = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	}
	if eps == "" {
		eps = get("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	for _, e := range strings.Split(eps, ",") {
		if e = strings.TrimSpace(e); e != "" {
			cfg.Endpoints = append(cfg.Endpoints, e)
		}
	}
	cfg.Compression = get("WEFT_OTLP_COMPRESSION")
	if v := get("WEFT_QUEUE_SIZE"); v != "" {
		if cfg.QueueSize, err = strconv.Atoi(v); err != nil || cfg.QueueSize <= 0 {
			return cfg, false, fmt.Errorf("WEFT_QUEUE_SIZE=%q: want a positive number of spans", v)
		}
	}
	// No default directory: two agents on one spool would send each other's
	// spans. The DaemonSet sets one per node.
	cfg.SpoolDir, explicitSpool = lookup("WEFT_SPOOL_DIR")
	if v := get("WEFT_SPOOL_MAX_BYTES"); v != "" {
		if cfg.SpoolMaxBytes, err = parseBytes(v); err != nil {
			return cfg, false, fmt.Errorf("WEFT_SPOOL_MAX_BYTES: %w", err)
		}
	}
	if v := get("WEFT_SPOOL_MAX_AGE"); v != "" {
		if cfg.SpoolMaxAge, err = time.ParseDuration(v); err != nil || cfg.SpoolMaxAge <= 0 {
			return cfg, false, fmt.Errorf("WEFT_SPOOL_MAX_AGE=%q: want a positive duration such as 6h", v)
		}
	}
	return cfg, explicitSpool, nil
}

// parseBytes reads 1048576, 512K, 256M or 2G (powers of 1024).
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: want a positive size such as 256M", s)
	}
	return n * mult, nil
}
