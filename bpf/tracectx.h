/* W3C trace-context helpers shared by the probes that make or read span
 * IDs in the kernel. Needs sockio.h (struct span_ctx, CTX_SAMPLED). */
#ifndef WEFT_TRACECTX_H
#define WEFT_TRACECTX_H

#define TP_VALUE_LEN 55 /* "00-<32 hex>-<16 hex>-<2 hex>" */

/* The head sampler, set by each loader from OTEL_TRACES_SAMPLER before
 * load (internal/sampling says what they mean). A trace is sampled where
 * it starts when its ID's last 8 bytes, big-endian, shifted right once, are
 * below sample_bound: OpenTelemetry's TraceIDRatioBased rule, so every
 * agent and SDK with the same ratio decides the same for a trace.
 * 1 << 63 keeps every trace, 0 none. With sample_parent set, a span with a
 * parent takes the parent's flag instead. The defaults are user space's
 * default (parentbased_always_on). */
volatile const __u64 sample_bound = 1ULL << 63;
volatile const __u8 sample_parent = 1;

/* The CTX_SAMPLED flag for a new span of trace_id: has_parent says whether
 * it has a parent, whose flags (CTX_SAMPLED) are parent_flags. */
static __always_inline __u8 sample_flags(const __u8 *trace_id, bool has_parent, __u8 parent_flags)
{
	if (has_parent && sample_parent)
		return parent_flags & CTX_SAMPLED;
	__u64 low = 0;
	for (int i = 8; i < 16; i++)
		low = low << 8 | trace_id[i];
	return (low >> 1) < sample_bound ? CTX_SAMPLED : 0;
}

/* Fills words 32-bit words at p with random bits (IDs: 4 for a trace, 2
 * for a span). */
static __always_inline void random_bytes(__u8 *p, int words)
{
	__u32 *w = (__u32 *)p;
	for (int i = 0; i < 4; i++)
		if (i < words)
			w[i] = bpf_get_prandom_u32();
}

/* A new HTTP/2 stream's span IDs, into ids (its flags ORed): the child of
 * parent (its trace, CTX_LINKED, its sampling) when there is one, else the
 * root of a new trace. */
static __always_inline void h2_span_ids(struct h2_span *ids, const struct span_ctx *parent)
{
	if (parent) {
		__builtin_memcpy(ids->trace_id, parent->trace_id, sizeof(ids->trace_id));
		__builtin_memcpy(ids->parent_id, parent->span_id, sizeof(ids->parent_id));
		__builtin_memcpy(ids->fwd_id, parent->parent_id, sizeof(ids->fwd_id));
		ids->flags |= CTX_LINKED | sample_flags(ids->trace_id, true, parent->flags);
	} else {
		random_bytes(ids->trace_id, 4);
		ids->flags |= sample_flags(ids->trace_id, false, 0);
	}
	random_bytes(ids->span_id, 2);
}

static __always_inline int unhex(__u8 c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes n bytes of lowercase hex at p into out; false on a bad digit or
 * an all-zero result (invalid for both trace and span IDs). */
static __always_inline bool decode_hex(const __u8 *p, __u8 *out, int n)
{
	bool nonzero = false;
	for (int i = 0; i < 16; i++) {
		if (i >= n)
			break;
		int hi = unhex(p[2 * i]), lo = unhex(p[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = hi << 4 | lo;
		nonzero |= out[i] != 0;
	}
	return nonzero;
}

/* Parses the 55 characters of a version-00 traceparent value at v by the
 * W3C rules (user space checks it again and counts what it rejects). */
static __always_inline bool parse_traceparent(const __u8 *v, struct span_ctx *out)
{
	if (v[0] != '0' || v[1] != '0' || v[2] != '-' || v[35] != '-' || v[52] != '-')
		return false;
	if (!decode_hex(v + 3, out->trace_id, 16) || !decode_hex(v + 36, out->span_id, 8))
		return false;
	int f = unhex(v[54]);
	if (unhex(v[53]) < 0 || f < 0)
		return false;
	out->flags = (f & 1) ? CTX_SAMPLED : 0;
	return true;
}

/* ---- B3 (Zipkin; set by Istio/Envoy and Linkerd) ----
 * Single header: b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]
 * with a trace ID of 32 or 16 hex digits (a 16-digit one is the low half of
 * a 128-bit ID: left-padded with zeros) and a span ID of 16; "b3: 0", "1" or
 * "d" alone says only whether to sample and carries no context. Multi
 * headers: X-B3-TraceId, X-B3-SpanId, X-B3-Sampled ("1", "0", "true",
 * "false") and X-B3-Flags ("1": debug, so sampled). Absent sampling state
 * (the decision deferred) is taken as sampled. A traceparent wins over B3;
 * user space (internal/tracecontext) applies the same rules and counts
 * what it rejects. */
#define B3_TRACE_LONG 32  /* hex digits of a 128-bit trace ID */
#define B3_TRACE_SHORT 16 /* of a 64-bit one */
#define B3_SPAN_LEN 16
/* Longest single value: 128-bit trace, span, state, parent, 3 dashes. */
#define B3_SINGLE_MAX (B3_TRACE_LONG + 1 + B3_SPAN_LEN + 1 + 1 + 1 + B3_SPAN_LEN)

/* Whether a header value whose avail bytes were read ends at v[k]: the
 * line's CR or whitespace before it. */
static __always_inline bool value_end(const __u8 *v, __u32 k, __u32 avail)
{
	return k < avail && (v[k] == '\r' || v[k] == ' ' || v[k] == '\t');
}

/* One lowercase hex digit's value, without a branch; *bad gets 1 when c is
 * none. */
static __always_inline __u64 hex_nibble(__u8 c, __u64 *bad)
{
	__s64 d = (__s64)c - '0', x = (__s64)c - 'a';
	barrier_var(d);
	barrier_var(x);
	__u64 isd = ((~d & (d - 10)) >> 63) & 1, isx = ((~x & (x - 6)) >> 63) & 1;
	*bad |= (isd | isx) ^ 1;
	return (d & -isd) | ((x + 10) & -isx);
}

/* decode_hex without a branch per digit: the verifier walks one path
 * through it, not one per kind of digit, so the B3 parse (up to three
 * IDs, two layouts) stays cheap where every path is walked (5.10). */
static __always_inline bool hex_id(const __u8 *p, __u8 *out, const int n)
{
	__u64 bad = 0, nz = 0;
	for (int i = 0; i < n; i++) {
		__u64 v = hex_nibble(p[2 * i], &bad) << 4 | hex_nibble(p[2 * i + 1], &bad);
		out[i] = v;
		nz |= v;
	}
	return !bad && nz;
}

/* Decodes a B3 trace ID of tlen (B3_TRACE_LONG or B3_TRACE_SHORT, a
 * constant) hex digits at p into 16 bytes, padding a short one. */
static __always_inline bool b3_trace_id(const __u8 *p, __u8 *out, const int tlen)
{
	if (tlen == B3_TRACE_LONG)
		return hex_id(p, out, 16);
	__builtin_memset(out, 0, 8);
	return hex_id(p, out + 8, 8);
}

/* A B3 sampling state: CTX_SAMPLED for "1" and "d" (debug), 0 for "0", -1
 * for anything else. */
static __always_inline int b3_state(__u8 c)
{
	if (c == '1' || c == 'd')
		return CTX_SAMPLED;
	return c == '0' ? 0 : -1;
}

/* Parses a single b3 value at v whose trace ID has tlen hex digits (a
 * constant). avail bytes at v were read; B3_SINGLE_MAX + 1 are readable. */
static __always_inline bool b3_single_len(const __u8 *v, __u32 avail, struct span_ctx *out, const int tlen)
{
	const int span = tlen + 1, rest = span + B3_SPAN_LEN;
	if (v[tlen] != '-' || !b3_trace_id(v, out->trace_id, tlen) || !hex_id(v + span, out->span_id, 8))
		return false;
	if (value_end(v, rest, avail)) {
		out->flags = CTX_SAMPLED; /* deferred */
		return true;
	}
	int st = b3_state(v[rest + 1]);
	if (v[rest] != '-' || st < 0)
		return false;
	out->flags = st;
	if (value_end(v, rest + 2, avail))
		return true;
	/* The parent span ID: checked, not used (the span ID is the parent). */
	__u8 parent[8];
	return v[rest + 2] == '-' && hex_id(v + rest + 3, parent, 8) && value_end(v, rest + 3 + B3_SPAN_LEN, avail);
}

/* Parses a single b3 header value at v (see b3_single_len). */
static __always_inline bool parse_b3_single(const __u8 *v, __u32 avail, struct span_ctx *out)
{
	if (v[B3_TRACE_LONG] == '-')
		return b3_single_len(v, avail, out, B3_TRACE_LONG);
	return b3_single_len(v, avail, out, B3_TRACE_SHORT);
}

/* Parses one multi-header B3 field's value at v (avail bytes read,
 * B3_TRACE_LONG + 1 readable), by its kind. */
enum { B3_TRACE, B3_SPAN, B3_SAMPLED, B3_FLAGS, B3_FIELDS };

static __always_inline bool b3_multi_trace(const __u8 *t, __u32 avail, struct span_ctx *out)
{
	if (value_end(t, B3_TRACE_LONG, avail))
		return b3_trace_id(t, out->trace_id, B3_TRACE_LONG);
	if (value_end(t, B3_TRACE_SHORT, avail))
		return b3_trace_id(t, out->trace_id, B3_TRACE_SHORT);
	return false;
}

static __always_inline bool b3_multi_span(const __u8 *sp, __u32 avail, struct span_ctx *out)
{
	return value_end(sp, B3_SPAN_LEN, avail) && hex_id(sp, out->span_id, 8);
}

/* X-B3-Sampled: CTX_SAMPLED or 0, -1 when invalid. */
static __always_inline int b3_multi_sampled(const __u8 *sa, __u32 avail)
{
	if ((sa[0] == '0' || sa[0] == '1') && value_end(sa, 1, avail))
		return sa[0] == '1' ? CTX_SAMPLED : 0;
	if ((sa[0] | 0x20) == 't' && (sa[1] | 0x20) == 'r' && (sa[2] | 0x20) == 'u' && (sa[3] | 0x20) == 'e' &&
	    value_end(sa, 4, avail))
		return CTX_SAMPLED;
	if ((sa[0] | 0x20) == 'f' && (sa[1] | 0x20) == 'a' && (sa[2] | 0x20) == 'l' && (sa[3] | 0x20) == 's' &&
	    (sa[4] | 0x20) == 'e' && value_end(sa, 5, avail))
		return 0;
	return -1;
}

/* X-B3-Flags: "1" is debug, so sampled; anything else is ignored. */
static __always_inline bool b3_multi_debug(const __u8 *fl, __u32 avail)
{
	return fl[0] == '1' && value_end(fl, 1, avail);
}

#endif
