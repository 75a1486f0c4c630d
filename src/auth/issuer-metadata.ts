import { discoverIssuerMetadata, type IssuerMetadata } from './discovery.ts';

const DISCOVERY_MAX_BYTES = 256 * 1024;

/**
 * An issuer's discovered metadata, fetched once and shared by its key set and its introspection
 * client. A failed discovery is forgotten, so the next caller tries again.
 */
export function issuerMetadataSource(issuer: string, timeoutMs: number): () => Promise<IssuerMetadata> {
  let pending: Promise<IssuerMetadata> | undefined;
  return () => {
    pending ??= discoverIssuerMetadata(issuer, { timeoutMs, maxBytes: DISCOVERY_MAX_BYTES }).catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
    return pending;
  };
}
