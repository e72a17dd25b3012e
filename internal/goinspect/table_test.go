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

func TestCompareVersions(t *testing.T) {
	// Each is ordered strictly after the one before it.
	ordered := []string{
		"v0.0.0-20190311183353-d8887717615a",
		"v0.0.0-20201021035429-f5854403a974", // pseudo-versions before any tag: by commit time
		"v0.0.0-20220722155237-a158d28d115b",
		"v0.1.0",
		"v0.1.1-0.20221104162952-702349b0e862", // a commit after v0.1.0
		"v0.1.1-alpha",
		"v0.1.1-rc.2",
		"v0.1.1-rc.10", // numerically, not as strings
		"v0.1.1-rc.10.1",
		"v0.1.1",
		"v0.2.0-pre.0.20230101000000-abcdefabcdef", // a commit after v0.2.0-pre
		"v0.2.0",
		"v0.10.0",
		"v1.0.0+incompatible",
	}
	for i, a := range ordered {
		for j, b := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if c, ok := compareVersions("golang.org/x/net", a, b); !ok || c != want {
				t.Errorf("compareVersions(%s, %s) = %d, %v; want %d", a, b, c, ok, want)
			}
		}
	}
	for _, bad := range []string{"0.1.0", "v0.1", "vX.1.0", "(devel)", ""} {
		if _, ok := compareVersions("golang.org/x/net", bad, "v0.1.0"); ok {
			t.Errorf("compareVersions accepted %q", bad)
		}
	}
}

// pseudo is a table for a module whose early versions are pseudo-versions,
// as x/net's were when grpc-go v1.50 required it.
var pseudo = &Table{Modules: map[string]*ModuleTable{
	"golang.org/x/net": {
		Versions: []string{"v0.0.0-20201021035429-f5854403a974", "v0.0.0-20220722155237-a158d28d115b", "v0.4.0", "v0.26.0"},
		Fields: map[string]map[string]uint64{
			"golang.org/x/net/http2.T.f": {"v0.0.0-20201021035429-f5854403a974": 8, "v0.0.0-20220722155237-a158d28d115b": 8, "v0.4.0": 8, "v0.26.0": 16},
		},
	},
}}

func TestLookupPseudoVersions(t *testing.T) {
	const key = "golang.org/x/net/http2.T.f"
	for _, tc := range []struct {
		version string
		want    uint64
		src     Source // 0: expect ErrUnknownLayout
	}{
		{"v0.0.0-20201021035429-f5854403a974", 8, FromTable},
		{"v0.0.0-20210226172049-e18ecbb05110", 8, FromNearest},   // between the two pseudo-versions
		{"v0.0.0-20221012135044-0b7e1fb9d458", 8, FromNearest},   // after the second, before v0.4.0
		{"v0.3.1-0.20221206200815-1e63c2f08a10", 8, FromNearest}, // a commit after v0.3.0
		{"v0.4.1-0.20230101000000-abcdefabcdef", 0, 0},           // between v0.4.0 and v0.26.0, which disagree
		{"v0.0.0-20190311183353-d8887717615a", 0, 0},             // older than the table
		{"v0.27.0", 0, 0}, // newer than the table
	} {
		got, src, err := pseudo.Lookup("golang.org/x/net", tc.version, key)
		if tc.src == 0 {
			if !errors.Is(err, ErrUnknownLayout) {
				t.Errorf("Lookup(%s) = %d, %v, %v; want ErrUnknownLayout", tc.version, got, src, err)
			}
			continue
		}
		if err != nil || got != tc.want || src != tc.src {
			t.Errorf("Lookup(%s) = %d, %v, %v; want %d, %v", tc.version, got, src, err, tc.want, tc.src)
		}
	}
}

// TestEmbeddedModules spot-checks the grpc-go and x/net entries
// internal/probes/gogrpc reads in stripped binaries.
func TestEmbeddedModules(t *testing.T) {
	const (
		grpc      = "google.golang.org/grpc"
		xnet      = "golang.org/x/net"
		transport = "google.golang.org/grpc/internal/transport."
	)
	for _, m := range []string{grpc, xnet} {
		if mt := EmbeddedTable().Modules[m]; mt == nil || len(mt.Versions) < 2 {
			t.Fatalf("offsets.json has too few versions of %s", m)
		}
	}
	for _, tc := range []struct {
		module, version, key string
		want                 uint64
		src                  Source // 0: expect ErrUnknownLayout
	}{
		{grpc, "v1.50.1", transport + "Stream.id", 0, FromTable},
		{grpc, "v1.66.1", transport + "Stream.id", 0, FromNearest}, // v1.66.0 and v1.66.2 agree
		{grpc, "v1.83.2", transport + "Stream.id", 108, FromTable}, // Stream embedded by value from v1.77
		{grpc, "v1.49.0", transport + "Stream.id", 0, 0},           // older than the table
		{grpc, "v1.66.2", transport + "ServerStream.Stream", 0, 0}, // no ServerStream yet
		{grpc, "v1.69.2", transport + "ServerStream.Stream", 0, FromNearest},
		{grpc, "v1.70.0", transport + "ServerStream.Stream", 0, FromTable},
		{grpc, "v1.50.1", transport + "headerFrame.streamID", 0, FromTable},
		{grpc, "v1.66.2", transport + "headerFrame.hf", 8, FromTable},
		{grpc, "v1.83.2", transport + "headerFrame.hf", 0, 0}, // replaced by clientHeaders
		{grpc, "v1.82.0", transport + "clientHeaders.hf", 0, 0},
		{grpc, "v1.83.2", transport + "clientHeaders.streamID", 0, FromTable},
		{grpc, "v1.83.2", transport + "clientHeaders.hf", 8, FromTable},
		{xnet, "v0.0.0-20201021035429-f5854403a974", "golang.org/x/net/http2.MetaHeadersFrame.Fields", 8, FromTable}, // grpc v1.50's
		{xnet, "v0.0.0-20210226172049-e18ecbb05110", "golang.org/x/net/http2.FrameHeader.StreamID", 8, FromNearest},  // a pseudo-version between two measured
		{xnet, "v0.26.0", "golang.org/x/net/http2.HeadersFrame.FrameHeader", 0, FromTable},
		{xnet, "v0.27.0", "golang.org/x/net/http2.MetaHeadersFrame.HeadersFrame", 0, FromNearest},
		{xnet, "v0.58.0", "golang.org/x/net/http2/hpack.HeaderField.Name", 0, FromTable},
		{xnet, "v0.61.0", "golang.org/x/net/http2/hpack.HeaderField.Value", 16, FromNearest},
		{xnet, "v0.62.0", "golang.org/x/net/http2/hpack.HeaderField." + SizeField, 40, FromTable},
	} {
		got, src, err := EmbeddedTable().Lookup(tc.module, tc.version, tc.key)
		if tc.src == 0 {
			if !errors.Is(err, ErrUnknownLayout) {
				t.Errorf("Lookup(%s %s %s) = %d, %v, %v; want ErrUnknownLayout", tc.module, tc.version, tc.key, got, src, err)
			}
			continue
		}
		if err != nil || got != tc.want || src != tc.src {
			t.Errorf("Lookup(%s %s %s) = %d, %v, %v; want %d, %v", tc.module, tc.version, tc.key, got, src, err, tc.want, tc.src)
		}
	}
}

// TestTableFallback: without DWARF, FieldOffset and StructSize answer from
// the table for the version of the module defining the struct.
func TestTableFallback(t *testing.T) {
	b := &Binary{Path: "stripped", GoVersion: "go1.26.8", Modules: map[string]string{
		"google.golang.org/grpc": "v1.83.2",
		"golang.org/x/net":       "v0.0.0-20201021035429-f5854403a974",
	}, dwarf: func() (*dwarfIndex, error) { return nil, nil }}
	const hf = "golang.org/x/net/http2/hpack.HeaderField"
	if size, err := b.StructSize(hf); err != nil || size != 40 {
		t.Errorf("StructSize(%s) = %d, %v; want 40", hf, size, err)
	}
	if off, src, err := b.FieldOffset(hf, "Value"); err != nil || off != 16 || src != FromTable {
		t.Errorf("FieldOffset(%s, Value) = %d, %v, %v; want 16 from the table", hf, off, src, err)
	}
	if off, src, err := b.FieldOffset("google.golang.org/grpc/internal/transport.Stream", "id"); err != nil || off != 108 || src != FromTable {
		t.Errorf("FieldOffset(transport.Stream, id) = %d, %v, %v; want 108 from the table", off, src, err)
	}
	if _, err := b.StructSize("google.golang.org/grpc/internal/transport.Stream"); !errors.Is(err, ErrUnknownLayout) {
		t.Errorf("StructSize of a struct whose size is not in the table: %v, want ErrUnknownLayout", err)
	}
	b.Modules["golang.org/x/net"] = "v0.99.0" // newer than the table
	if _, err := b.StructSize(hf); !errors.Is(err, ErrUnknownLayout) {
		t.Errorf("StructSize at an unmeasured x/net: %v, want ErrUnknownLayout", err)
	}
}
