package main

import (
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/sampling"
	"github.com/weft-dev/weft/internal/spans"
)

// samplingConfig is the head sampler (issue 8): the kernel decides the
// sampled flag where it makes span IDs (so the next hop is told), user
// space drops the spans decided against, by the same rule.
type samplingConfig struct{ sampler sampling.Sampler }

// loadSampling reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG.
func loadSampling(getenv func(string) string) (samplingConfig, error) {
	s, err := sampling.Parse(getenv)
	if err != nil {
		return samplingConfig{}, err
	}
	return samplingConfig{sampler: s}, nil
}

// probes sets what the probe families need to decide in the kernel.
func (s samplingConfig) probes(c *probes.Config) {
	sampler := s.sampler
	c.Sampler = &sampler
}

// wrap drops the spans the sampler decided against, after they were
// counted, on their way to next.
func (s samplingConfig) wrap(next spans.Sink, met *metrics.Registry) spans.Sink {
	return sampling.NewSink(next, s.sampler, met)
}
