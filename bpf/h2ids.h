/* Filing an HTTP/2 stream's span IDs (the Go probes). Include after
 * DECLARE_H2_IDS_MAP and DECLARE_EVENTS_MAP. */
#ifndef WEFT_H2IDS_H
#define WEFT_H2IDS_H

/* The kernel's readers (the injector, the TCP option) find the IDs in
 * h2_ids; sockio's user space gets them through the ring, ahead of the
 * stream's frames it makes the span from, and so needs no system call per
 * stream. Where the ring is full the event is lost and user space falls
 * back to the map. */
static __always_inline void file_h2_ids(const struct h2_key *k, const struct h2_span *ids)
{
	bpf_map_update_elem(&h2_ids, k, ids, BPF_ANY);
	struct h2_ids_event ev = {.kind = EV_H2_IDS, .tgid = k->tgid, .stream_id = k->stream_id, .goid = k->goid};
	__builtin_memcpy(&ev.ids, ids, sizeof(ev.ids));
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP :
										     BPF_RB_NO_WAKEUP;
	bpf_ringbuf_output(&events, &ev, sizeof(ev), flags);
}

#endif
