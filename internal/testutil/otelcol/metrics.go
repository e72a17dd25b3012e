package otelcol

import (
	"strconv"
	"strings"
)

// SumMetric adds the values of every sample of metric name in a Prometheus
// text exposition (a collector's own /metrics) whose labels include all of
// match; 0 if there are none.
func SumMetric(text, name string, match map[string]string) float64 {
	total := 0.0
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		labels := ""
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		}
		if !hasLabels(labels, match) {
			continue
		}
		fields := strings.Fields(rest) // value, then an optional timestamp
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			total += v
		}
	}
	return total
}

// hasLabels reports whether a label set's text (k="v",...) has every
// pair of match.
func hasLabels(labels string, match map[string]string) bool {
	for k, v := range match {
		if !strings.Contains(","+labels+",", ","+k+"="+strconv.Quote(v)+",") {
			return false
		}
	}
	return true
}
