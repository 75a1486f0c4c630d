import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import type { Logger } from '../observability/logger.ts';

/** A collector that is down fails every batch: one line per minute says so, with how many were lost. */
const REPORT_EVERY_MS = 60_000;

/**
 * The OTLP exporter, with its failures logged. The SDK reports them only through its diagnostic
 * logger, which is off unless registered globally; a collector that is down would go unnoticed.
 */
export class ReportedExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #logger: Logger;
  #failedBatches = 0;
  #reportedAt = Number.NEGATIVE_INFINITY;

  constructor(inner: SpanExporter, logger: Logger) {
    this.#inner = inner;
    this.#logger = logger;
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.#inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) this.#failed(spans.length, result.error);
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }

  #failed(spans: number, error: Error | undefined): void {
    this.#failedBatches += 1;
    const now = performance.now();
    if (now - this.#reportedAt < REPORT_EVERY_MS) return;
    this.#reportedAt = now;
    // The message only: the error object may hold the request, headers (the collector's key) included.
    this.#logger.warn({ failed_batches: this.#failedBatches, spans, problem: error?.message }, 'trace export failed; spans dropped');
    this.#failedBatches = 0;
  }
}
