package gogrpc

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/weft-dev/weft/internal/goinspect"
)

// layoutVariants are builds of testdata/grpcserver, one per grpc-go
// layout era: before ServerStream (v1.50: writeHeader on the client), with
// *Stream embedded and headerFrame (v1.66), with Stream embedded and
// clientHeaders (v1.83). v1.50 is built with an older toolchain than the
// one offsetgen measures with, as the e2e tests build it.
var layoutVariants = []struct {
	grpc, modfile, toolchain string
}{
	{"v1.50.1", "go.v1.50.mod", "go1.22.12"},
	{"v1.66.2", "go.v1.66.mod", "go1.26.8"},
	{"v1.83.2", "go.mod", "go1.26.8"},
}

// TestPlanStripped: for each grpc version, a binary built with DWARF and
// its -s -w twin give the same plan, both halves present; the stripped one
// takes every offset and the header field size from weft's offsets table.
func TestPlanStripped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds testdata/grpcserver for three grpc versions")
	}
	src, err := filepath.Abs("../../../testdata/grpcserver")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range layoutVariants {
		t.Run(v.grpc, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// One after the other: the twin reuses the compiled packages
			// and only links again.
			full := buildGRPCServer(t, src, v.modfile, v.toolchain, filepath.Join(dir, "full"))
			stripped := buildGRPCServer(t, src, v.modfile, v.toolchain, filepath.Join(dir, "stripped"), "-ldflags=-s -w")

			pf := planOf(t, full, true, v.grpc)
			ps := planOf(t, stripped, false, v.grpc)
			if pf.cfg != ps.cfg {
				t.Errorf("cfg differs:\nDWARF:    %+v\nstripped: %+v", pf.cfg, ps.cfg)
			}
			if pf.cfg.FieldSize == 0 || pf.cfg.FieldValue == 0 {
				t.Errorf("hpack.HeaderField layout not found: %+v", pf.cfg)
			}
			// -s -w leaves text as it is: the same functions at the same
			// offsets, found by pclntab instead of the symbol table.
			if !reflect.DeepEqual(pf.server, ps.server) || !reflect.DeepEqual(pf.client, ps.client) {
				t.Errorf("hooks differ:\nDWARF:    %+v %+v\nstripped: %+v %+v", pf.server, pf.client, ps.server, ps.client)
			}
			// From v1.77 a handler's calls follow their context to the
			// stream: one server hook (one uprobe hit a call), not two.
			var progs []string
			for _, h := range pf.server {
				progs = append(progs, h.prog)
			}
			walk := v.grpc >= "v1.77"
			want := []string{"operate_headers", "handle_stream"}
			if walk {
				want = want[:1]
			}
			if !reflect.DeepEqual(progs, want) || (pf.cfg.CtxWalk == 1) != walk {
				t.Errorf("server hooks %v, ctx_walk %d; want %v, ctx_walk %v", progs, pf.cfg.CtxWalk, want, walk)
			}
			if walk && (pf.cfg.SsSt == 0 || pf.cfg.HdrWq == 0 || pf.cfg.StreamCtx == pf.cfg.StreamWq) {
				t.Errorf("context layout incomplete: %+v", pf.cfg)
			}

			// A copy on another inode takes the plan read for the first;
			// another build is read again.
			data, err := os.ReadFile(full)
			if err != nil {
				t.Fatal(err)
			}
			cp := filepath.Join(dir, "copy")
			if err := os.WriteFile(cp, data, 0o755); err != nil {
				t.Fatal(err)
			}
			pr := &Probe{plans: map[string]*plan{}}
			plan := func(path string) *plan {
				b, err := goinspect.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				pl, err := pr.planOf(b)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				return pl
			}
			first, again, other := plan(full), plan(cp), plan(stripped)
			if first != again || first == other || !reflect.DeepEqual(*first, *pf) || len(pr.plans) != 2 {
				t.Errorf("plans by content: copy shares %v, other build shares %v, %d kept; want true, false, 2",
					first == again, first == other, len(pr.plans))
			}

		})
	}
}

func buildGRPCServer(t *testing.T, src, modfile, toolchain, out string, flags ...string) string {
	t.Helper()
	args := []string{"build", "-o", out}
	if modfile != "go.mod" {
		args = append(args, "-modfile="+modfile)
	}
	cmd := exec.Command("go", append(append(args, flags...), ".")...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOWORK=off", "GOTOOLCHAIN="+toolchain)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %v in %s: %v\n%s", cmd.Args[1:], src, err, msg)
	}
	return out
}

func planOf(t *testing.T, path string, dwarf bool, grpc string) *plan {
	t.Helper()
	b, err := goinspect.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if b.HasDWARF != dwarf {
		t.Fatalf("%s: HasDWARF = %v, want %v", path, b.HasDWARF, dwarf)
	}
	p, err := planFor(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if p.version != grpc {
		t.Errorf("%s: grpc %s, want %s", path, p.version, grpc)
	}
	if p.noServer != nil || p.noClient != nil {
		t.Fatalf("%s (DWARF %v): server: %v; client: %v", path, dwarf, p.noServer, p.noClient)
	}
	return p
}
