package main

import (
	"log/slog"
	"runtime"
)

// agentProcs is how many Ps (threads running Go code at once) the agent
// keeps unless GOMAXPROCS says otherwise. Its work is one event loop per
// ring buffer feeding one exporter: a second P buys no throughput (one
// core carries saturation, see make bench) but costs wakeups, since the
// runtime hands each readied goroutine to an idle P's thread. Measured on
// a 2-vCPU VM at 2,000 req/s: 93 against 47 CPU ticks for the same
// 40,000 spans, nearly all of the difference in context switches.
const agentProcs = 1

// setProcs lowers GOMAXPROCS to agentProcs unless the environment set it.
func setProcs(log *slog.Logger, getenv func(string) string) {
	if getenv("GOMAXPROCS") != "" {
		return
	}
	if was := runtime.GOMAXPROCS(0); was > agentProcs {
		runtime.GOMAXPROCS(agentProcs)
		log.Debug("GOMAXPROCS lowered", "was", was, "now", agentProcs)
	}
}
