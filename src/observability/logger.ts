import { pino, type DestinationStream, type Logger } from 'pino';
import { turnBufferedDestination } from './log-destination.ts';

/**
 * JSON logs. Access lines are built from chosen fields, never from raw headers; the redaction is a
 * second line of defence should a header object ever be logged.
 */
export function createLogger(level: string, options: { pretty?: boolean; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level,
      ...(options.pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, singleLine: true } } } : {}),
      base: { service: 'mcp-warden' },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'req.headers["proxy-authorization"]',
          'headers.authorization',
          'headers.cookie',
          'headers["proxy-authorization"]',
          'res.headers["set-cookie"]',
          'token',
          'secret',
        ],
        censor: '[redacted]',
      },
    },
    options.destination ?? (options.pretty ? undefined : turnBufferedDestination()),
  );
}

export type { Logger };
