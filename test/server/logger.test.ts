/**
 * Secrets that reach a log call by mistake are censored.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/server/logger.ts';

function capture() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, logger: createLogger('info', sink) };
}

describe('log redaction', () => {
  it('censors tokens, private keys and authorization headers', () => {
    const { lines, logger } = capture();
    logger.info({ token: 'eyJ.secret-token.sig', tokens: ['eyJ.secret-list.sig'], privateKey: { d: 'secret-d' } }, 'one');
    logger.error({ err: { message: 'bad', token: 'eyJ.secret-err.sig' } }, 'two');
    logger.info({ req: { headers: { authorization: 'Bearer secret-bearer' } } }, 'three');
    const text = lines.join('');
    expect(text).not.toMatch(/secret/);
    expect(text.match(/\[redacted\]/g)).toHaveLength(5);
  });
});
