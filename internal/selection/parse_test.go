package selection

import (
	"errors"
	"path"
	"reflect"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseStandalone(t *testing.T) {
	tests := []struct {
		name              string
		pids, exes, ports []string
		env               map[string]string
		want              Standalone
		errs              []string // substrings expected in the error
		badPattern        bool
	}{
		{name: "empty"},
		{
			name: "flags only",
			pids: []string{"1", "42"}, exes: []string{"/usr/bin/f*"}, ports: []string{"8080"},
			want: Standalone{PIDs: []int{1, 42}, ExeGlobs: []string{"/usr/bin/f*"}, Ports: []uint16{8080}},
		},
		{
			name: "env only with blanks and empty items",
			env:  map[string]string{EnvPIDs: " 7, ,8,", EnvExes: "java, python3*", EnvPorts: "80,443"},
			want: Standalone{PIDs: []int{7, 8}, ExeGlobs: []string{"java", "python3*"}, Ports: []uint16{80, 443}},
		},
		{
			name: "flags then env, commas in flags, duplicates dropped",
			pids: []string{"3,4"}, ports: []string{"9000", "65535"},
			env:  map[string]string{EnvPIDs: "4,5", EnvPorts: "9000,1"},
			want: Standalone{PIDs: []int{3, 4, 5}, Ports: []uint16{9000, 65535, 1}},
		},
		{
			name: "glob with escaped comma",
			exes: []string{"/opt/a[,]b/*"},
			want: Standalone{ExeGlobs: []string{"/opt/a[,]b/*"}},
		},
		{
			name: "glob with backslash-escaped comma",
			env:  map[string]string{EnvExes: `/opt/a\,b,c[,,]`},
			want: Standalone{ExeGlobs: []string{`/opt/a\,b`, "c[,,]"}},
		},
		{name: "pid zero", pids: []string{"0"}, errs: []string{`invalid pid "0"`}},
		{name: "pid negative", pids: []string{"-3"}, errs: []string{`invalid pid "-3"`}},
		{name: "pid not a number", env: map[string]string{EnvPIDs: "abc"}, errs: []string{`invalid pid "abc" in WEFT_PIDS`}},
		{name: "pid too big", pids: []string{"99999999999"}, errs: []string{`invalid pid "99999999999"`}},
		{name: "port zero", ports: []string{"0"}, errs: []string{`invalid port "0"`}},
		{name: "port too big", env: map[string]string{EnvPorts: "65536"}, errs: []string{`invalid port "65536" in WEFT_PORTS`}},
		{name: "port not a number", ports: []string{"http"}, errs: []string{`invalid port "http"`}},
		{name: "bad glob", exes: []string{"/usr/bin/[a"}, errs: []string{`invalid exe glob "/usr/bin/[a"`}, badPattern: true},
		{name: "bad glob in env", env: map[string]string{EnvExes: `foo\`}, errs: []string{"in WEFT_EXES"}, badPattern: true},
		{name: "relative glob with slash", exes: []string{"bin/foo"}, errs: []string{"absolute path"}},
		{
			name: "all errors reported",
			pids: []string{"x"}, exes: []string{"["}, ports: []string{"70000"},
			errs: []string{`pid "x"`, `glob "["`, `port "70000"`}, badPattern: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStandalone(tc.pids, tc.exes, tc.ports, envOf(tc.env))
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("want error, got %+v", got)
			}
			for _, s := range tc.errs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if errors.Is(err, path.ErrBadPattern) != tc.badPattern {
				t.Errorf("errors.Is(err, path.ErrBadPattern) = %v, want %v", !tc.badPattern, tc.badPattern)
			}
		})
	}
}

func TestParseStandaloneNilEnv(t *testing.T) {
	s, err := ParseStandalone(nil, nil, []string{"80"}, nil)
	if err != nil || !reflect.DeepEqual(s, Standalone{Ports: []uint16{80}}) {
		t.Fatalf("got %+v, %v", s, err)
	}
}
