package spandedupprocessor

import (
	"errors"
	"fmt"
)

// Config of the span_dedup processor.
type Config struct {
	// MaxSpans bounds what the processor remembers: a copy of a span is
	// dropped if the first copy is among the last MaxSpans distinct spans
	// that went through. Each costs about 120 bytes (1,000,000: ~115 MB).
	MaxSpans int `mapstructure:"max_spans"`
}

const defaultMaxSpans = 1_000_000

var errMaxSpans = errors.New("max_spans must be positive")

// Validate is called by the collector before the processor is created.
func (c *Config) Validate() error {
	if c.MaxSpans <= 0 {
		return fmt.Errorf("span_dedup: %w (got %d)", errMaxSpans, c.MaxSpans)
	}
	return nil
}
