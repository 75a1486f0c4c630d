import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { ConfigProblem } from '../config/errors.ts';
import type { Logger } from '../observability/logger.ts';

/** As often as the secrets are re-read (src/config/secret-source.ts), and for the same reason: a mounted Secret changes by a symlink swap. */
const FILE_POLL_MS = 2000;
const CERT_PATH = 'listen.tls.cert_file';
const KEY_PATH = 'listen.tls.key_file';

/** `listen.tls`: PEM files, the certificate (chain, leaf first) and its private key. */
export interface TlsFiles {
  readonly cert_file: string;
  readonly key_file: string;
}

/** A certificate and the key that belongs to it, checked, as Node's TLS options take them. */
export interface TlsPair {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** For log lines: which certificate is served. Never the PEM. */
  readonly serial: string;
  readonly fingerprint: string;
  readonly validTo: string;
}

export type TlsPairResult = { ok: true; pair: TlsPair } | { ok: false; problems: ConfigProblem[] };

type FileRead = { ok: true; bytes: Buffer } | { ok: false; code: string };

/**
 * Reads and checks the pair: both files readable, a certificate, a private key, and the key is the
 * certificate's. Every problem names its YAML path; no message carries file content.
 */
export function readTlsPair(files: TlsFiles): TlsPairResult {
  return checkPair(files, readFiles(files));
}

/**
 * Re-reads the files every two seconds and, when either differs from what was last seen (at first, the
 * `served` pair the server started with), gives the server a new secure context: connections made after
 * that get the new certificate, open ones keep theirs. A pair that cannot be used is logged once (a
 * warning, with the problems) and the current certificate is kept.
 */
export function watchTlsFiles(server: HttpsServer, files: TlsFiles, served: TlsPair, logger: Logger, periodMs = FILE_POLL_MS): { close(): void } {
  let last: { cert: FileRead; key: FileRead } = { cert: { ok: true, bytes: served.cert }, key: { ok: true, bytes: served.key } };
  const poll = () => {
    const read = readFiles(files);
    if (sameRead(read.cert, last.cert) && sameRead(read.key, last.key)) return;
    last = read;
    const checked = checkPair(files, read);
    if (!checked.ok) {
      logger.warn({ problems: checked.problems }, 'TLS certificate not reloaded, keeping the previous one');
      return;
    }
    const { pair } = checked;
    try {
      server.setSecureContext({ cert: pair.cert, key: pair.key });
    } catch (error) {
      logger.warn({ problems: [{ path: CERT_PATH, message: `Node refused the pair (${(error as NodeJS.ErrnoException).code ?? 'error'})` }] }, 'TLS certificate not reloaded, keeping the previous one');
      return;
    }
    logger.info({ serial: pair.serial, fingerprint: pair.fingerprint, valid_to: pair.validTo }, 'TLS certificate reloaded');
  };
  const timer = setInterval(poll, periodMs);
  timer.unref();
  return { close: () => clearInterval(timer) };
}

function readFiles(files: TlsFiles): { cert: FileRead; key: FileRead } {
  return { cert: readFile(files.cert_file), key: readFile(files.key_file) };
}

function readFile(path: string): FileRead {
  try {
    return { ok: true, bytes: readFileSync(path) };
  } catch (error) {
    return { ok: false, code: (error as NodeJS.ErrnoException).code ?? 'error' };
  }
}

function sameRead(a: FileRead, b: FileRead): boolean {
  return a.ok && b.ok ? a.bytes.equals(b.bytes) : !a.ok && !b.ok && a.code === b.code;
}

function checkPair(files: TlsFiles, read: { cert: FileRead; key: FileRead }): TlsPairResult {
  const problems: ConfigProblem[] = [];
  if (!read.cert.ok) problems.push({ path: CERT_PATH, message: `cannot read ${files.cert_file} (${read.cert.code})` });
  if (!read.key.ok) problems.push({ path: KEY_PATH, message: `cannot read ${files.key_file} (${read.key.code})` });
  let certificate: X509Certificate | undefined;
  if (read.cert.ok) {
    certificate = parseCertificate(read.cert.bytes);
    if (!certificate) problems.push({ path: CERT_PATH, message: `${files.cert_file} holds no PEM certificate` });
  }
  let key: KeyObject | undefined;
  if (read.key.ok) {
    key = parseKey(read.key.bytes);
    if (!key) problems.push({ path: KEY_PATH, message: `${files.key_file} holds no unencrypted PEM private key` });
  }
  if (!certificate || !key || !read.cert.ok || !read.key.ok) return { ok: false, problems };
  if (!certificate.checkPrivateKey(key)) return { ok: false, problems: [{ path: KEY_PATH, message: `the key in ${files.key_file} does not match the certificate in ${files.cert_file}` }] };
  const pair: TlsPair = { cert: read.cert.bytes, key: read.key.bytes, serial: certificate.serialNumber, fingerprint: certificate.fingerprint256, validTo: certificate.validTo };
  // Whatever else OpenSSL refuses (a chain it cannot parse, a key too weak for its security level).
  try {
    createSecureContext({ cert: pair.cert, key: pair.key });
  } catch (error) {
    return { ok: false, problems: [{ path: CERT_PATH, message: `the certificate and key cannot be used together (${(error as NodeJS.ErrnoException).code ?? 'error'})` }] };
  }
  return { ok: true, pair };
}

/** PEM only: Node's TLS options take nothing else, though X509Certificate would also parse DER. */
function parseCertificate(bytes: Buffer): X509Certificate | undefined {
  if (!bytes.includes('-----BEGIN CERTIFICATE-----')) return undefined;
  try {
    return new X509Certificate(bytes);
  } catch {
    return undefined;
  }
}

function parseKey(bytes: Buffer): KeyObject | undefined {
  try {
    return createPrivateKey({ key: bytes, format: 'pem' });
  } catch {
    return undefined;
  }
}
