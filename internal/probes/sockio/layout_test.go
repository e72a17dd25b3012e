package sockio

import (
	"testing"

	"github.com/weft-dev/weft/internal/btfcheck"
)

// TestLayout: the Go mirrors bpf2go generated still match the C structs in
// the committed object.
func TestLayout(t *testing.T) {
	spec, err := loadSockio()
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{"event": sockioEvent{}, "proc_cfg": sockioProcCfg{}, "conn": sockioConn{}, "endpoints": sockioEndpoints{},
		"h2_key": sockioH2Key{}, "h2_span": sockioH2Span{}} {
		if err := btfcheck.Layout(spec, name, v); err != nil {
			t.Error(err)
		}
	}
}
