/* SPDX-License-Identifier: GPL-2.0 */
/* Incoming trace context in a decoded Go []hpack.HeaderField (grpc-go's
 * and net/http's HTTP/2 servers, by uprobe): the traceparent field, else B3
 * (single or multi), by the rules of HTTP/1's kernel search. Needs
 * tracectx.h and sockio.h (struct span_ctx, CTX_*). */
#ifndef WEFT_H2FIELDS_H
#define WEFT_H2FIELDS_H

/* Where a hpack.HeaderField {Name, Value string; Sensitive bool} keeps its
 * name and value, and its size: the loader's (offsets are data). */
struct hf_layout {
	__u64 name, value, size;
};

/* Header fields searched for a traceparent (and B3): grpc puts metadata
 * after its seven-odd reserved fields; pseudo-headers come first. */
#define MAX_FIELDS 32

/* Eight bytes of a header name as the little-endian word a read of them
 * gives (bytes past the name's end are zero). */
#define W8(a, b, c, d, e, f, g, h)                                                                         \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | (__u64)(e) << 32 |          \
	 (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)

/* The header names weft reads (HTTP/2 names are lowercase). */
enum {
	FN_NONE,
	FN_TRACEPARENT,
	FN_TRACESTATE,
	FN_B3,        /* b3 */
	FN_B3_TRACE,  /* x-b3-traceid */
	FN_B3_SPAN,   /* x-b3-spanid */
	FN_B3_SAMPLED, /* x-b3-sampled */
	FN_B3_FLAGS,  /* x-b3-flags */
	FN_PATH,      /* :path */
};

/* Which of those names the hpack.HeaderField at f has (FN_*). */
static __always_inline int field_name(const struct hf_layout *l, __u64 f)
{
	struct {
		__u64 ptr, len;
	} name = {};
	if (bpf_probe_read_user(&name, sizeof(name), (void *)(f + l->name)))
		return FN_NONE;
	__u32 len = name.len;
	if (name.len != 2 && name.len != 5 && (name.len < 10 || name.len > 12))
		return FN_NONE;
	__u64 s[2] = {};
	if (bpf_probe_read_user(s, len & 15, (void *)name.ptr))
		return FN_NONE;
	switch (len) {
	case 2:
		return s[0] == W8('b', '3', 0, 0, 0, 0, 0, 0) ? FN_B3 : FN_NONE;
	case 5:
		return s[0] == W8(':', 'p', 'a', 't', 'h', 0, 0, 0) ? FN_PATH : FN_NONE;
	case 10:
		if (s[0] == W8('t', 'r', 'a', 'c', 'e', 's', 't', 'a') && s[1] == W8('t', 'e', 0, 0, 0, 0, 0, 0))
			return FN_TRACESTATE;
		if (s[0] == W8('x', '-', 'b', '3', '-', 'f', 'l', 'a') && s[1] == W8('g', 's', 0, 0, 0, 0, 0, 0))
			return FN_B3_FLAGS;
		return FN_NONE;
	case 11:
		if (s[0] == W8('t', 'r', 'a', 'c', 'e', 'p', 'a', 'r') && s[1] == W8('e', 'n', 't', 0, 0, 0, 0, 0))
			return FN_TRACEPARENT;
		if (s[0] == W8('x', '-', 'b', '3', '-', 's', 'p', 'a') && s[1] == W8('n', 'i', 'd', 0, 0, 0, 0, 0))
			return FN_B3_SPAN;
		return FN_NONE;
	case 12:
		if (s[0] == W8('x', '-', 'b', '3', '-', 't', 'r', 'a') && s[1] == W8('c', 'e', 'i', 'd', 0, 0, 0, 0))
			return FN_B3_TRACE;
		if (s[0] == W8('x', '-', 'b', '3', '-', 's', 'a', 'm') && s[1] == W8('p', 'l', 'e', 'd', 0, 0, 0, 0))
			return FN_B3_SAMPLED;
	}
	return FN_NONE;
}

/* What operate_headers reads incoming context from, in a map rather than
 * on the stack: the verifier does not track map memory, so the field scan
 * is walked as one state, not one per set of names seen so far; and a B3
 * value's end is marked at a variable offset, which a stack write may not
 * be before Linux 5.12. */
struct in_fields {
	/* addresses of the first field of each name (0: none) */
	__u64 tp;                                      /* traceparent */
	__u64 b3;                                      /* b3 (single) */
	__u64 b3_trace, b3_span, b3_sampled, b3_flags; /* x-b3-* */
	__u64 path;                                    /* :path */
	/* A B3 value, as tracectx.h's parsers take it: its bytes, then a CR
	 * where it ends (an HTTP/1 line's end; an HTTP/2 value has a length
	 * instead), then whatever an earlier value left, which no parser
	 * accepts past the CR. */
	__u8 v[B3_SINGLE_MAX + 12];
};

#define DECLARE_H2_IN_FIELDS_MAP(name)                     \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);   \
		__uint(max_entries, 1);                    \
		__type(key, __u32);                        \
		__type(value, struct in_fields);           \
	} name SEC(".maps")

/* One pass over a Go []hpack.HeaderField, noting the context fields; it
 * stops at a traceparent, which wins over B3 (not read then). */
static __always_inline void scan_fields(const struct hf_layout *l, __u64 fields, __u64 n, struct in_fields *in)
{
	if (n > MAX_FIELDS)
		n = MAX_FIELDS;
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < MAX_FIELDS; i++) {
		if (i >= n)
			break;
		__u64 f = fields + (__u64)i * l->size;
		int k = field_name(l, f);
		if (k == FN_TRACEPARENT) {
			in->tp = f;
			break;
		}
		if (k == FN_B3 && !in->b3)
			in->b3 = f;
		else if (k == FN_B3_TRACE && !in->b3_trace)
			in->b3_trace = f;
		else if (k == FN_B3_SPAN && !in->b3_span)
			in->b3_span = f;
		else if (k == FN_B3_SAMPLED && !in->b3_sampled)
			in->b3_sampled = f;
		else if (k == FN_B3_FLAGS && !in->b3_flags)
			in->b3_flags = f;
		else if (k == FN_PATH && !in->path)
			in->path = f;
	}
}

/* The traceparent field at f: 1 and out filled if it holds a valid value,
 * -1 if not. */
static __always_inline int read_traceparent(const struct hf_layout *l, __u64 f, struct span_ctx *out)
{
	struct {
		__u64 ptr, len;
	} value = {};
	if (bpf_probe_read_user(&value, sizeof(value), (void *)(f + l->value)) || value.len != TP_VALUE_LEN)
		return -1;
	__u8 v[TP_VALUE_LEN];
	if (bpf_probe_read_user(v, sizeof(v), (void *)value.ptr))
		return -1;
	return parse_traceparent(v, out) ? 1 : -1;
}

/* Reads the value of the field at f (0: none) into b->v; false when
 * there is none, it cannot be read, or it is longer than any valid B3
 * value. *avail gets its length with the CR. */
static __always_inline bool b3_value(const struct hf_layout *l, __u64 f, struct in_fields *b, __u32 *avail)
{
	if (!f)
		return false;
	struct {
		__u64 ptr, len;
	} value = {};
	if (bpf_probe_read_user(&value, sizeof(value), (void *)(f + l->value)) || value.len == 0 ||
	    value.len > B3_SINGLE_MAX)
		return false;
	__u32 len = value.len;
	barrier_var(len); /* bound the register that sizes and indexes */
	if (len == 0 || len > B3_SINGLE_MAX)
		return false;
	if (bpf_probe_read_user(b->v, len, (void *)value.ptr))
		return false;
	b->v[len] = '\r';
	*avail = len + 1;
	return true;
}

/* The span context a server stream's B3 metadata carries, by the rules
 * HTTP/1's kernel search applies (sockio's find_b3): the single header's
 * when valid, else the multi headers'. False when there is none. */
static __always_inline bool read_b3(const struct hf_layout *l, struct in_fields *in, struct span_ctx *out)
{
	__u32 avail = 0;
	struct in_fields *b = in;
	if (b3_value(l, in->b3, b, &avail) && parse_b3_single(b->v, avail, out))
		return true;
	if (!b3_value(l, in->b3_trace, b, &avail) || !b3_multi_trace(b->v, avail, out))
		return false;
	if (!b3_value(l, in->b3_span, b, &avail) || !b3_multi_span(b->v, avail, out))
		return false;
	out->flags = CTX_SAMPLED; /* deferred, unless X-B3-Sampled says */
	if (in->b3_sampled) {
		int f = b3_value(l, in->b3_sampled, b, &avail) ? b3_multi_sampled(b->v, avail) : -1;
		if (f < 0)
			return false;
		out->flags = f;
	}
	if (b3_value(l, in->b3_flags, b, &avail) && b3_multi_debug(b->v, avail))
		out->flags = CTX_SAMPLED;
	return true;
}

#endif
