package otelcol

import "github.com/weft-dev/weft/internal/otlpjson"

// Span is one span from the file exporter, flattened with its resource.
type Span = otlpjson.Span

func parseLines(data []byte) ([]Span, error) { return otlpjson.ParseLines(data) }
