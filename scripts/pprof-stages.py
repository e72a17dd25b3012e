#!/usr/bin/env python3
"""Where the agent's CPU goes, by pipeline stage, from a CPU profile.

usage: pprof-stages.py AGENT_BINARY PROFILE SPANS [LABEL]

Reads `go tool pprof -traces` and files each sample under one stage:
garbage collection if any frame of its stack is the collector's own
work (background marking, assists, sweeping); else the stage of the
frame nearest the leaf that names one (an allocation in span building is
span building's). Prints each stage's CPU, share and microseconds per
span (SPANS: the spans the agent exported while it was profiled), and a
one-line summary ("stage=us ...") that bench-agent.sh puts in make
bench's table.

Go's profiler samples its threads' CPU time, kernel time in system calls
included, but not the kernel's work for it elsewhere (softirqs, the
ring buffer's wakeups): the total is a little below the run time
bench-agent.sh reads from schedstat.
"""
import re
import subprocess
import sys

GC = re.compile(r"^runtime\.(gcBgMarkWorker|gcAssistAlloc|bgsweep|bgscavenge|gcStart|gcMarkDone|gcMarkTermination)")

# Leaf to root, the first frame that matches one of these decides.
STAGES = [
    ("export: gzip", r"klauspost/compress|^compress/(gzip|flate)|^hash/crc32"),
    ("export: OTLP encode", r"internal/export\.(encode|append|spanSize|valueSize|end\b|resourceKey|split)|"
     r"^google\.golang\.org/protobuf/"),
    ("export: gRPC", r"^google\.golang\.org/grpc|^golang\.org/x/net/http2|otlptrace"),
    ("export: queue, spool", r"internal/export\."),
    ("span building", r"internal/(protocols/httpsem|spans|sampling|spanmetrics|redact|tracecontext|k8smeta\.\(\*Store\))|"
     r"otel/attribute|internal/protocols/[a-z0-9]+\.(ServerSpan|ClientSpan|.*[sS]pan\b)"),
    ("parsing (conntrack, HTTP)", r"internal/(httpwire|h2wire|protocols|conntrack)|x/net/http2/hpack"),
    ("ring read, decode", r"internal/probes/sockio\.decode|cilium/ebpf/ringbuf|internal/wire\."),
    ("wakeups, scheduling", r"internal/ringpoll|internal/probes/sockio\.\(\*Probe\)\.(loop|drain)|"
     r"^runtime\.(netpoll|findRunnable|schedule|park_m|futex|notesleep|notewakeup|stopm|startm|wakep|mcall|gopark|"
     r"goready|ready|selectgo|chanrecv|chansend|timerproc|checkTimers|runtimer|usleep|sysmon|resetspinning)"),
    ("discovery, selection", r"internal/(discovery|procs|selection|k8smeta|kernelfs|probes)"),
    ("metrics, status", r"internal/(metrics|statusserver|status)\."),
]
STAGES = [(name, re.compile(rx)) for name, rx in STAGES]
OTHER = "other (runtime, system calls)"


def samples(binary, profile):
    out = subprocess.run(["go", "tool", "pprof", "-traces", binary, profile],
                         check=True, capture_output=True, text=True).stdout
    for block in out.split("-----------+")[1:]:
        lines = [l for l in block.splitlines()[1:] if l.strip()]
        if not lines:
            continue
        first = lines[0].split()
        value, frames = first[0], [" ".join(first[1:])] + [l.strip() for l in lines[1:]]
        m = re.match(r"([\d.]+)(ns|us|ms|s)$", value)
        if not m:
            continue
        ms = float(m.group(1)) * {"ns": 1e-6, "us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)]
        yield ms, [f.replace(" (inline)", "") for f in frames]


def stage(frames):
    if any(GC.search(f) for f in frames):
        return "garbage collection"
    for f in frames:
        for name, rx in STAGES:
            if rx.search(f):
                return name
    return OTHER


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    binary, profile, spans = sys.argv[1], sys.argv[2], int(sys.argv[3])
    label = sys.argv[4] if len(sys.argv) > 4 else profile
    by = {}
    for ms, frames in samples(binary, profile):
        s = stage(frames)
        by[s] = by.get(s, 0) + ms
    total = sum(by.values())
    if not total or not spans:
        print(f"{label}: no samples or no spans")
        return
    print(f"{label}: {total:.0f} ms of CPU sampled over {spans} spans, {total * 1e3 / spans:.2f} us a span")
    order = [n for n, _ in STAGES] + ["garbage collection", OTHER]
    for name in order:
        if name in by:
            print(f"  {name:30} {by[name]:8.0f} ms {100 * by[name] / total:5.1f}% {by[name] * 1e3 / spans:6.2f} us/span")
    short = {"export: gzip": "gzip", "export: OTLP encode": "encode", "export: gRPC": "grpc",
             "export: queue, spool": "queue", "span building": "spans", "parsing (conntrack, HTTP)": "parse",
             "ring read, decode": "decode", "wakeups, scheduling": "wakeups", "discovery, selection": "discovery",
             "metrics, status": "metrics", "garbage collection": "gc", OTHER: "other"}
    print("STAGES " + " ".join(f"{short[n]}={by[n] * 1e3 / spans:.2f}" for n in order if n in by))


if __name__ == "__main__":
    main()
