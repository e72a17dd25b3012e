package main

import "testing"

func TestParsePropagation(t *testing.T) {
	tests := []struct {
		in      string
		want    propagation
		wantErr bool
	}{
		{"headers,tcp", propagation{headers: true, tcp: true}, false},
		{"tcp,headers", propagation{headers: true, tcp: true}, false},
		{" headers , tcp ", propagation{headers: true, tcp: true}, false},
		{"headers", propagation{headers: true}, false},
		{"tcp", propagation{tcp: true}, false},
		{"none", propagation{}, false},
		{"", propagation{}, true},
		{"headers,none", propagation{}, true},
		{"tcp,b3", propagation{}, true},
		{"headers,", propagation{}, true},
	}
	for _, tc := range tests {
		got, err := parsePropagation(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("parsePropagation(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}
