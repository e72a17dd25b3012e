package status

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weft-dev/weft/internal/metrics"
)

func TestBoard(t *testing.T) {
	met := metrics.New()
	b := New(met)
	b.Set(1, Spans, true, "ignored: not added") // unknown processes are ignored
	b.Add(7, "/srv/api", "go1.24.13", map[string]string{"google.golang.org/grpc": "v1.66.2"})
	b.Set(7, Spans, true, "socket layer")
	b.Set(7, GRPCClientLinks, false, "no DWARF, not in the table")
	b.Set(7, Injection, true, "sk_msg")
	b.Add(9, "/usr/bin/python3", "", nil)
	b.Set(9, Spans, true, "socket layer")
	b.Set(9, Injection, false, "not a Go program")

	p, ok := b.Get(7)
	if !ok {
		t.Fatal("pid 7 missing")
	}
	on, off := p.Summary()
	if on != "injection,spans" || off != "grpc_client_links (no DWARF, not in the table)" {
		t.Errorf("summary: on %q, off %q", on, off)
	}
	var text strings.Builder
	met.WriteText(&text)
	for _, want := range []string{
		`weft_process_capabilities{capability="spans",state="on"} 2`,
		`weft_process_capabilities{capability="injection",state="off"} 1`,
		`weft_process_capabilities{capability="grpc_client_links",state="off"} 1`,
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	var rep Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	procs := rep.Processes
	if len(procs) != 2 || procs[0].PID != 7 || procs[0].Libraries["google.golang.org/grpc"] != "v1.66.2" ||
		procs[0].Capabilities[GRPCClientLinks].Why != "no DWARF, not in the table" {
		t.Errorf("JSON: %+v", procs)
	}
	rec = httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest("GET", "/status?format=text", nil))
	table := rec.Body.String()
	for _, want := range []string{"PID 7", "google.golang.org/grpc@v1.66.2", "grpc_client_links", "off", "not a Go program"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}

	b.Remove(7)
	if _, ok := b.Get(7); ok || len(b.Snapshot()) != 1 {
		t.Error("pid 7 still there after Remove")
	}
	var nilBoard *Board
	nilBoard.Set(1, Spans, true, "") // families may run without a board
}
