/**
 * A logger whose lines are kept for the test to read.
 */
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { createLogger } from '../../src/server/logger.ts';

export function captureLog(): { lines: string[]; logger: Logger } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, logger: createLogger('info', sink) };
}
