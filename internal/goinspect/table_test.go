package goinspect

import (
	"errors"
	"strings"
	"testing"
)

// literal is a small table whose goid moves once, between go1.22 and go1.23,
// and whose library field is keyed by module version.
var literal = &Table{Modules: map[string]*ModuleTable{
	StdModule: {
		Versions: []string{"go1.21.13", "go1.22.12", "go1.23.12", "go1.24.13"},
		Fields: map[string]map[string]uint64{
			"runtime.g.goid": {"go1.21.13": 152, "go1.22.12": 152, "go1.23.12": 160, "go1.24.13": 160},
			"runtime.g.new":  {"go1.23.12": 8, "go1.24.13": 8}, // added in go1.23
		},
	},
	"example.com/lib": {
		Versions: []string{"v1.2.0", "v1.3.0-rc.1", "v1.3.0", "v1.10.0"},
		Fields: map[string]map[string]uint64{
			"example.com/lib/x.T.f": {"v1.2.0": 16, "v1.3.0-rc.1": 16, "v1.3.0": 16, "v1.10.0": 24},
		},
	},
}}

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		module, version, key string
		want                 uint64
		src                  Source // 0: expect ErrUnknownLayout
	}{
		{StdModule, "go1.22.12", "runtime.g.goid", 152, FromTable},
		{StdModule, "go1.22.3", "runtime.g.goid", 152, FromNearest},  // go1.21.13 and go1.22.12 agree
		{StdModule, "go1.24.2", "runtime.g.goid", 160, FromNearest},  // go1.23.12 and go1.24.13 agree
		{StdModule, "go1.24rc1", "runtime.g.goid", 160, FromNearest}, // pre-releases sort before go1.24.0
		{StdModule, "go1.23.1", "runtime.g.goid", 0, 0},              // neighbours disagree
		{StdModule, "go1.24.14", "runtime.g.goid", 0, 0},             // newer than the table: unproven
		{StdModule, "go1.20.1", "runtime.g.goid", 0, 0},              // older than the table
		{StdModule, "go1.22.12", "runtime.g.new", 0, 0},              // measured there, absent
		{StdModule, "go1.23.5", "runtime.g.new", 0, 0},               // one neighbour lacks it
		{StdModule, "go1.24.1", "runtime.g.new", 8, FromNearest},     //
		{StdModule, "devel", "runtime.g.goid", 0, 0},                 // not a version
		{StdModule, "go1.22.12", "runtime.g.nope", 0, 0},             // field never measured
		{"example.com/other", "v1.0.0", "example.com/other.T.f", 0, 0},
		{"example.com/lib", "v1.2.5", "example.com/lib/x.T.f", 16, FromNearest},
		{"example.com/lib", "v1.3.0-beta.1", "example.com/lib/x.T.f", 16, FromNearest},
		{"example.com/lib", "v1.9.0", "example.com/lib/x.T.f", 0, 0}, // v1.3.0 and v1.10.0 disagree
	} {
		got, src, err := literal.Lookup(tc.module, tc.version, tc.key)
		if tc.src == 0 {
			if !errors.Is(err, ErrUnknownLayout) || !strings.Contains(err.Error(), tc.version) {
				t.Errorf("Lookup(%s %s %s) = %d, %v, %v; want ErrUnknownLayout naming the version", tc.module, tc.version, tc.key, got, src, err)
			}
			continue
		}
		if err != nil || got != tc.want || src != tc.src {
			t.Errorf("Lookup(%s %s %s) = %d, %v, %v; want %d, %v", tc.module, tc.version, tc.key, got, src, err, tc.want, tc.src)
		}
	}
}

func TestTableRoundTrip(t *testing.T) {
	data, err := literal.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseTable(data)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := back.Marshal()
	if string(again) != string(data) {
		t.Errorf("not stable:\n%s\n%s", data, again)
	}
	if _, err := ParseTable([]byte(`{"modules":{"std":{"versions":["go1.21.13"],"fields":{"a.b.c":{"go1.22.0":1}}}}}`)); err == nil {
		t.Error("accepted a field version missing from versions")
	}
}

func TestEmbeddedTable(t *testing.T) {
	std := EmbeddedTable().Modules[StdModule]
	if std == nil || len(std.Versions) == 0 {
		t.Fatal("no std versions in offsets.json")
	}
	goid := std.Fields["runtime.g.goid"]
	for _, v := range std.Versions {
		if _, ok := goid[v]; !ok {
			t.Errorf("runtime.g.goid missing for %s", v)
		}
	}
}

func TestModuleOf(t *testing.T) {
	b := &Binary{GoVersion: "go1.24.13", Modules: map[string]string{
		"google.golang.org/grpc":       "v1.70.0",
		"google.golang.org/grpc/stats": "v1.0.0", // nested module wins for its packages
	}}
	for name, want := range map[string]string{
		"runtime.g": StdModule + " go1.24.13",
		"vendor/golang.org/x/net/http2/hpack.Decoder":          StdModule + " go1.24.13",
		"sync/atomic.Pointer[google.golang.org/grpc.Server]":   StdModule + " go1.24.13",
		"google.golang.org/grpc/internal/transport.Stream":     "google.golang.org/grpc v1.70.0",
		"google.golang.org/grpc.Server":                        "google.golang.org/grpc v1.70.0",
		"google.golang.org/grpc/stats.Begin":                   "google.golang.org/grpc/stats v1.0.0",
		"google.golang.org/grpcx.T":                            "",
		"google.golang.org/grpc/x.List[google.golang.org/a.T]": "google.golang.org/grpc v1.70.0",
	} {
		m, v, err := b.moduleOf(name)
		got := m + " " + v
		if err != nil {
			got = ""
		}
		if got != want {
			t.Errorf("moduleOf(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
}
