package gogrpc

import (
	"testing"

	"github.com/weft-dev/weft/internal/btfcheck"
)

// TestCLayout: the Go mirrors bpf2go generated still match the C structs
// in the committed object.
func TestCLayout(t *testing.T) {
	spec, err := loadGogrpc()
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{"grpc_cfg": gogrpcGrpcCfg{}, "h2_key": gogrpcH2Key{}, "h2_span": gogrpcH2Span{}} {
		if err := btfcheck.Layout(spec, name, v); err != nil {
			t.Error(err)
		}
	}
}
