package goinspect

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	goversion "go/version"
	"slices"
	"strings"
	"sync"

	"golang.org/x/mod/semver"
)

// StdModule is the table's name for the standard library, versioned by Go
// toolchain ("go1.24.13"); other modules are keyed by module path and
// versioned by their module version ("v1.70.0").
const StdModule = "std"

// Table holds struct field offsets measured from DWARF by cmd/offsetgen, for
// binaries built without DWARF. Its JSON form is offsets.json.
type Table struct {
	Comment string                  `json:"comment,omitempty"`
	Modules map[string]*ModuleTable `json:"modules"`
}

// ModuleTable is one module's part of the Table.
type ModuleTable struct {
	// Versions lists every version measured, oldest first. A field missing
	// at a listed version did not exist there; it is what lets Lookup tell
	// "measured and absent" from "never measured".
	Versions []string `json:"versions"`
	// Fields maps "<struct type>.<field>" to version to byte offset.
	Fields map[string]map[string]uint64 `json:"fields"`
}

//go:embed offsets.json
var offsetsJSON []byte

var embeddedTable = sync.OnceValue(func() *Table {
	t, err := ParseTable(offsetsJSON)
	if err != nil {
		panic("goinspect: embedded offsets.json: " + err.Error()) // caught by tests
	}
	return t
})

// EmbeddedTable returns the table compiled into weft.
func EmbeddedTable() *Table { return embeddedTable() }

// ParseTable decodes and validates a table.
func ParseTable(data []byte) (*Table, error) {
	var t Table
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, err
	}
	for name, m := range t.Modules {
		for _, v := range m.Versions {
			if _, ok := compareVersions(name, v, v); !ok {
				return nil, fmt.Errorf("module %s: bad version %q", name, v)
			}
		}
		for key, offs := range m.Fields {
			for v := range offs {
				if !slices.Contains(m.Versions, v) {
					return nil, fmt.Errorf("module %s: %s: version %s not in versions", name, key, v)
				}
			}
		}
	}
	return &t, nil
}

// Marshal encodes t deterministically (encoding/json sorts map keys).
func (t *Table) Marshal() ([]byte, error) {
	for name, m := range t.Modules {
		slices.SortFunc(m.Versions, func(a, b string) int { c, _ := compareVersions(name, a, b); return c })
		m.Versions = slices.Compact(m.Versions)
	}
	out, err := json.MarshalIndent(t, "", "  ")
	return append(out, '\n'), err
}

// Lookup returns the offset of key ("runtime.g.goid") in module at
// version. A version the table did not measure is answered only when the
// measured versions just below and just above it both have the same offset:
// layouts only change at releases, so it is then the same in between. Past
// either end of the table nothing is proven, and it fails.
func (t *Table) Lookup(module, version, key string) (uint64, Source, error) {
	fail := func(why string, args ...any) (uint64, Source, error) {
		return 0, 0, fmt.Errorf("%w: %s for %s %s: %s", ErrUnknownLayout, key, module, version, fmt.Sprintf(why, args...))
	}
	m := t.Modules[module]
	if m == nil {
		return fail("module not in the offsets table")
	}
	offs := m.Fields[key]
	if offs == nil {
		return fail("field not in the offsets table")
	}
	if off, ok := offs[version]; ok {
		return off, FromTable, nil
	}
	if slices.Contains(m.Versions, version) {
		return fail("field absent at that version")
	}
	if len(m.Versions) == 0 {
		return fail("no measured versions")
	}
	var lo, hi string
	for _, v := range m.Versions {
		c, ok := compareVersions(module, v, version)
		if !ok {
			return fail("version not comparable")
		}
		if c < 0 {
			lo = v
		} else if c > 0 && hi == "" {
			hi = v
		}
	}
	if lo == "" || hi == "" {
		return fail("outside the measured versions %s..%s", m.Versions[0], m.Versions[len(m.Versions)-1])
	}
	loOff, okLo := offs[lo]
	hiOff, okHi := offs[hi]
	if !okLo || !okHi || loOff != hiOff {
		return fail("not measured, and neighbours %s and %s disagree", lo, hi)
	}
	return loOff, FromNearest, nil
}

// compareVersions orders versions of module: Go toolchain versions for std
// ("go1.24.13", "go1.24rc1", ordered by go/version, so a release candidate
// comes before the release), module versions otherwise, by semantic
// versioning's precedence (golang.org/x/mod/semver). ok is false if either
// is not a valid version of its kind.
//
// Pseudo-versions are semver pre-releases: "v0.0.0-20201021035429-
// f5854403a974" (no tag before it) has one pre-release identifier led by a
// fixed-width UTC timestamp, so such versions order by commit time;
// "v0.7.1-0.20230214...-hash" (commits after v0.7.0) sorts after v0.7.0 and
// before v0.7.1. Their neighbours in a table are thus the versions released
// just before and after that commit. Build metadata ("+incompatible") does
// not take part in the order.
func compareVersions(module, a, b string) (c int, ok bool) {
	if module == StdModule {
		if !goversion.IsValid(a) || !goversion.IsValid(b) {
			return 0, false
		}
		return goversion.Compare(a, b), true
	}
	if !isFullSemver(a) || !isFullSemver(b) {
		return 0, false
	}
	return semver.Compare(a, b), true
}

// isFullSemver reports whether v is a semantic version with all three of
// major, minor and patch, as module versions always are. semver.IsValid
// also accepts the shorthands "v1" and "v1.2", which are not module
// versions.
func isFullSemver(v string) bool {
	return semver.IsValid(v) && semver.Canonical(v) == strings.TrimSuffix(v, semver.Build(v))
}
