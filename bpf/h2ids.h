/* Filing an HTTP/2 stream's span IDs (the Go probes). Include after
 * DECLARE_H2_IDS_MAP and DECLARE_EVENTS_MAP. */
#ifndef WEFT_H2IDS_H
#define WEFT_H2IDS_H

/* The kernel's readers (the injector, the TCP option) find the IDs in
 * h2_ids; sockio's user space gets them through the ring, ahead of the
 * stream's frames it makes the span from, and so needs no system call per
 * stream. Where the ring is full the event is lost and user space falls
 * back to the map. alias_goid: another goroutine whose reads may have
 * brought the stream (see struct h2_ids_event), 0: none. */
static __always_inline void file_h2_ids(const struct h2_key *k, const struct h2_span *ids, __u64 alias_goid)
{
	bpf_map_update_elem(&h2_ids, k, ids, BPF_ANY);
	struct h2_ids_event ev = {.kind = EV_H2_IDS, .tgid = k->tgid, .stream_id = k->stream_id, .goid = k->goid,
				  .alias_goid = alias_goid};
	__builtin_memcpy(&ev.ids, ids, sizeof(ev.ids));
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP :
										     BPF_RB_NO_WAKEUP;
	bpf_ringbuf_output(&events, &ev, sizeof(ev), flags);
}

#ifdef WEFT_H2FIELDS_H
/* Sends a stream's :path (the Go hpack.HeaderField at f, 0: none; h2fields.h's
 * layout) through the ring (EV_H2_NAME), under the stream's key, for user
 * space to name a stream whose path HPACK had indexed before tracing
 * began. No loop: the callers found the field already. */
static __always_inline void file_h2_name(const struct h2_key *k, const struct hf_layout *l, __u64 f, __u8 grpc)
{
	struct {
		__u64 ptr, len;
	} v = {};
	if (!f || bpf_probe_read_user(&v, sizeof(v), (void *)(f + l->value)) || !v.len)
		return;
	struct h2_name_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev)
		return;
	ev->kind = EV_H2_NAME;
	ev->grpc = grpc;
	ev->_pad[0] = ev->_pad[1] = 0;
	ev->tgid = k->tgid;
	ev->stream_id = k->stream_id;
	ev->goid = k->goid;
	ev->len = v.len > 0xffffffff ? 0xffffffff : (__u32)v.len;
	__u32 m = v.len < H2_NAME_MAX ? (__u32)v.len : H2_NAME_MAX;
	if (bpf_probe_read_user(ev->path, m, (void *)v.ptr))
		ev->len = 0; /* unreadable: user space ignores it */
	bpf_ringbuf_submit(ev, 0);
}
#endif

#endif
