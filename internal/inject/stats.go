package inject

import "slices"

// counterNames names the kernel-side counters (enum inject_stat).
var counterNames = map[injectInjectStat]string{
	injectInjectStatINJ_INJECTED:          "injected",
	injectInjectStatINJ_NO_CTX:            "no_ctx",
	injectInjectStatINJ_REPEAT:            "repeat",
	injectInjectStatINJ_NOT_HTTP:          "not_http",
	injectInjectStatINJ_APP_HEADER:        "app_header",
	injectInjectStatINJ_SPLIT:             "split",
	injectInjectStatINJ_TOO_LONG:          "too_long",
	injectInjectStatINJ_WRITE_FAIL:        "write_fail",
	injectInjectStatINJ_NO_STATE:          "no_state",
	injectInjectStatINJ_SOCKHASH_ADD:      "sockhash_add",
	injectInjectStatINJ_SOCKHASH_FAIL:     "sockhash_fail",
	injectInjectStatINJ_ITER_ADD:          "iter_add",
	injectInjectStatINJ_H2INJECTED:        "h2_injected",
	injectInjectStatINJ_H2NO_CTX:          "h2_no_ctx",
	injectInjectStatINJ_H2APP_HEADER:      "h2_app_header",
	injectInjectStatINJ_H2SPLIT:           "h2_split",
	injectInjectStatINJ_H2TOO_LONG:        "h2_too_long",
	injectInjectStatINJ_H2LOST:            "h2_lost",
	injectInjectStatINJ_H2REPEAT:          "h2_repeat",
	injectInjectStatINJ_DROP:              "drop",
	injectInjectStatINJ_STATE_MERGED:      "state_merged",
	injectInjectStatINJ_STATE_KEPT:        "state_kept",
	injectInjectStatINJ_FORWARD_REWRITTEN: "forward_rewritten",
	injectInjectStatINJ_H2UNCHECKED:       "h2_unchecked",
	injectInjectStatINJ_H2SYNCED:          "h2_synced",
}

// CounterNames lists the names Counters reports, sorted.
func CounterNames() []string {
	names := make([]string, 0, len(counterNames))
	for _, name := range counterNames {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Counters returns the kernel-side counters by name, summed over CPUs:
//
//	injected       traceparent headers inserted
//	no_ctx         messages on sockhash sockets without an inject_ctx entry
//	repeat         messages after the one that used the current entry
//	not_http       entry present, but no HTTP/1.x request line at the start
//	app_header     the request carries a traceparent of its own already (an
//	               SDK's span, or one not checked: in several lines, or in a
//	               head that does not end in the message): left alone
//	forward_rewritten  the request carries the traceparent of the request
//	               its sender is serving (a proxy forwarding it): its
//	               parent-id became the client span's, in place
//	split          the header block does not end in this message: skipped
//	too_long       no end of the header block in the first 4 KiB: skipped
//	write_fail     a push/pull helper failed: message sent unchanged
//	no_state       a sockhash socket without per-socket state (a bug)
//	sockhash_add   sockets added at connect
//	sockhash_fail  sockets that could not be added
//	iter_add       established sockets added by Track's iterator
//	h2_injected    traceparent fields added to HTTP/2 request header blocks
//	h2_no_ctx      HTTP/2 request headers of a stream the gRPC probe did not see
//	h2_app_header  the call's metadata has a traceparent already (for
//	               net/http's HTTP/2 client: the connection's header blocks
//	               carried one): left alone
//	h2_unchecked   a net/http HTTP/2 request on a connection one of whose
//	               header blocks went unread: left alone
//	h2_split       header block continues in a later message or CONTINUATION
//	h2_too_long    the frame would pass 16 KiB (or is padded): skipped
//	h2_lost        HTTP/2 sockets whose frame boundaries were lost
//	h2_synced      sockets whose frame boundaries were unknown (older than
//	               the tracing, or lost) found again at a message of whole
//	               client frames: from then on gRPC calls get a header
//	h2_repeat      a stream's IDs met a second request header block
//	state_merged   HTTP/1 requests with their own tracestate that got this
//	               agent's member first in it (not a second tracestate line)
//	state_kept     HTTP/1 requests whose own tracestate has this agent's key
//	               already, or comes in several lines: left as it is (the
//	               traceparent line is still added)
//	drop           messages dropped (the sender gets an error) because a
//	               change could not be undone, and every later message on
//	               that socket: the wire never carries altered bytes
func (i *Injector) Counters() map[string]uint64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make(map[string]uint64, len(counterNames))
	for idx, name := range counterNames {
		out[name] = 0
		if !i.loaded {
			continue
		}
		var per []uint64
		if err := i.objs.InjectStats.Lookup(uint32(idx), &per); err != nil {
			continue
		}
		for _, v := range per {
			out[name] += v
		}
	}
	return out
}

// SockhashHas reports whether the socket with this cookie is in the
// sockhash, i.e. whether its sends go through the sk_msg program.
func (i *Injector) SockhashHas(cookie uint64) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.loaded {
		return false
	}
	keys, _ := i.sockhashKeys()
	for _, k := range keys {
		if k.Cookie == cookie {
			return true
		}
	}
	return false
}

// SockhashLen counts the sockhash's entries: its sockets, one per owner
// (a socket two tracked processes share counts twice).
func (i *Injector) SockhashLen() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.loaded {
		return 0
	}
	keys, _ := i.sockhashKeys()
	return len(keys)
}

// SockhashOwned counts the sockhash entries pid owns: its open sockets
// there (closed ones leave by themselves).
func (i *Injector) SockhashOwned(pid int) int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.loaded {
		return 0
	}
	keys, _ := i.sockhashKeys()
	n := 0
	for _, k := range keys {
		if k.Tgid == uint32(pid) {
			n++
		}
	}
	return n
}
