package inject

// For the tests of package inject_test, which drive the probe family
// (internal/probes/inject) against a real cgo program.
var (
	StartFionread = startFionread
	StartSender   = startSender
	EachHook      = eachHook
)

const FionreadSent = fionreadSent
