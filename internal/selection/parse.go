package selection

import (
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Environment variables read by ParseStandalone; each holds a
// comma-separated list.
const (
	EnvPIDs  = "WEFT_PIDS"
	EnvExes  = "WEFT_EXES"
	EnvPorts = "WEFT_PORTS"
)

// ParseStandalone builds a Standalone from repeatable flag values and the
// environment variables WEFT_PIDS, WEFT_EXES and WEFT_PORTS, read through
// env (nil means none). Flag values come first, then the environment; every
// value may be a comma-separated list, blanks around items and empty items
// are ignored, and duplicates are dropped. A comma inside a glob character
// class or escaped by a backslash does not split: "/opt/a[,]b" and
// "/opt/a\,b" both match the path "/opt/a,b".
//
// Every bad value is reported, joined into one error: a pid that is not a
// positive integer, a port outside 1..65535, a malformed glob (wrapping
// path.ErrBadPattern), or a glob containing '/' that is not absolute.
func ParseStandalone(pids, exes, ports []string, env func(string) string) (Standalone, error) {
	var s Standalone
	var errs []error
	each(pids, EnvPIDs, env, func(v, src string) {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n <= 0 || n > math.MaxInt32:
			errs = append(errs, fmt.Errorf("selection: invalid pid %q%s: must be a positive integer", v, src))
		default:
			s.PIDs = appendNew(s.PIDs, n)
		}
	})
	each(exes, EnvExes, env, func(v, src string) {
		if _, err := path.Match(v, ""); err != nil {
			errs = append(errs, fmt.Errorf("selection: invalid exe glob %q%s: %w", v, src, err))
		} else if strings.Contains(v, "/") && !strings.HasPrefix(v, "/") {
			errs = append(errs, fmt.Errorf("selection: invalid exe glob %q%s: use an absolute path (/usr/bin/app*) or a base name without '/' (app*)", v, src))
		} else {
			s.ExeGlobs = appendNew(s.ExeGlobs, v)
		}
	})
	each(ports, EnvPorts, env, func(v, src string) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			errs = append(errs, fmt.Errorf("selection: invalid port %q%s: must be a number from 1 to 65535", v, src))
		} else {
			s.Ports = appendNew(s.Ports, uint16(n))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return Standalone{}, err
	}
	return s, nil
}

// each calls fn for every comma-separated item of the flag values and then
// of the environment variable key; src names the variable for errors.
func each(flags []string, key string, env func(string) string, fn func(v, src string)) {
	split := func(list, src string) {
		for _, item := range splitList(list) {
			if item = strings.TrimSpace(item); item != "" {
				fn(item, src)
			}
		}
	}
	for _, f := range flags {
		split(f, "")
	}
	if env != nil {
		split(env(key), " in "+key)
	}
}

// splitList splits at commas, except inside a glob character class
// ("[,]") or after a backslash ("\,"), so globs can hold a literal comma.
func splitList(s string) []string {
	var out []string
	start, class := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '[':
			class = true
		case c == ']':
			class = false
		case c == ',' && !class:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func appendNew[T comparable](list []T, v T) []T {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}
