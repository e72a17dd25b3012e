// Package export sends weft's spans out: OTLP gRPC to a collector, or
// readable lines (console) and OTLP-shaped JSON lines (jsonl) to a writer.
//
// The OTLP path survives collector outages:
//
//	Export → queue (memory, bounded) → sender → endpoint (failover list)
//	                 ↘ spill ↘        ↗ drain, oldest first
//	                      spool (disk, bounded)
//
// Export never blocks. Batches the collector cannot take are retried with
// backoff; with a spool they go to disk once the memory queue fills or a
// batch has failed SpoolAfter times, and are sent back in order once an
// endpoint answers. Every span ends in weft_export_spans_total as exported
// or dropped (by reason); none is lost silently.
package export
