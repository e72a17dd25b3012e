package httpsem

import (
	"net/netip"
	"testing"
)

func TestHostMemo(t *testing.T) {
	var m HostMemo
	local := netip.MustParseAddrPort("10.0.0.1:80")
	for _, tc := range []struct {
		header, host string
		port         int
	}{
		{"shop:8080", "shop", 8080}, {"shop:8080", "shop", 8080}, {"[::1]:9", "::1", 9},
		{"", "10.0.0.1", 80}, {"cart", "cart", 80},
	} {
		if h, p := m.Resolve(tc.header, local); h != tc.host || p != tc.port {
			t.Errorf("%q: %s:%d, want %s:%d", tc.header, h, p, tc.host, tc.port)
		}
	}
}
