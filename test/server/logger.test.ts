/**
 * Secrets that reach a log call by mistake are censored.
 */
import { describe, expect, it } from 'vitest';
import { captureLog } from '../support/log.ts';

describe('log redaction', () => {
  it('censors tokens, private keys and authorization headers', () => {
    const { lines, logger } = captureLog();
    logger.info({ token: 'eyJ.secret-token.sig', tokens: ['eyJ.secret-list.sig'], privateKey: { d: 'secret-d' } }, 'one');
    logger.error({ err: { message: 'bad', token: 'eyJ.secret-err.sig' } }, 'two');
    logger.info({ req: { headers: { authorization: 'Bearer secret-bearer' } } }, 'three');
    const text = lines.join('');
    expect(text).not.toMatch(/secret/);
    expect(text.match(/\[redacted\]/g)).toHaveLength(5);
  });
});
