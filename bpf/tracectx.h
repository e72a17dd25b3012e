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

#endif
