package otelcol

import "testing"

func TestSumMetric(t *testing.T) {
	text := `# HELP x_total x
# TYPE x_total counter
x_total{a="1",b="2"} 3
x_total{a="1",b="3"} 4 1700000000000
x_total{a="2"} 5
x_total_other 100
x_totally 100
y 7
`
	for _, tc := range []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{"x_total", nil, 12},
		{"x_total", map[string]string{"a": "1"}, 7},
		{"x_total", map[string]string{"a": "1", "b": "3"}, 4},
		{"x_total", map[string]string{"b": "2", "a": "1"}, 3},
		{"x_total", map[string]string{"c": "1"}, 0},
		{"y", nil, 7},
		{"z", nil, 0},
	} {
		if got := SumMetric(text, tc.name, tc.match); got != tc.want {
			t.Errorf("SumMetric(%s, %v) = %v, want %v", tc.name, tc.match, got, tc.want)
		}
	}
}
