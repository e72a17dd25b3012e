package discovery

import "unsafe"

// Kinds of struct watch_event (bpf/procwatch.bpf.c).
const (
	watchExec = 1
	watchExit = 2
)

func decodeWatch(raw []byte) (procwatchWatchEvent, bool) {
	var ev procwatchWatchEvent
	if len(raw) < int(unsafe.Sizeof(ev)) {
		return ev, false
	}
	return *(*procwatchWatchEvent)(unsafe.Pointer(&raw[0])), true
}
