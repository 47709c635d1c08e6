/**
 * `twokey countersign`: an approver signs the approval the change system issued for them. Reads
 * the token on stdin (or --file), prints the JWS JSON General serialization with both signatures,
 * to attach as the approval annotation in place of the token. It checks the token's shape only.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { TwokeyError } from '../errors.ts';
import { countersign } from '../keys/signing.ts';
import { parseToken } from '../token/jws.ts';
import type { Terminal } from './common.ts';
import { type SignerFlags, signerFrom, withSignerOptions } from './signer.ts';

interface CountersignFlags extends SignerFlags {
  file: string;
  key?: string;
}

/** Tokens read here may be larger than an annotation holds; the webhook applies its own limit. */
const MAX_INPUT = 1024 * 1024;

async function readAll(stream: AsyncIterable<Uint8Array | string>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk);
    size += bytes.length;
    if (size > MAX_INPUT) throw new TwokeyError('ERR_TOKEN_INVALID', `the token is larger than ${MAX_INPUT} bytes`);
    chunks.push(bytes);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function registerCountersign(program: Command, { out, io }: Terminal): void {
  withSignerOptions(
    program
      .command('countersign')
      .description(
        "countersign an approval the change system issued: prints it with the approver's signature added (JWS JSON General serialization)",
      )
      .option('-f, --file <file>', 'the approval token, or - for stdin', '-')
      .option('--key <jwk>', 'the same as --private-key'),
    "the approver's private JWK (from twokey keygen --approver); or --signer",
  ).action(async (flags: CountersignFlags) => {
    const signer = await signerFrom(flags.key === undefined ? flags : { ...flags, privateKey: flags.privateKey ?? flags.key });
    const text = flags.file === '-' ? await readAll(io.stdin) : await readFile(flags.file, 'utf8');
    const token = parseToken(text, MAX_INPUT);
    if (!token.ok) throw new TwokeyError('ERR_TOKEN_INVALID', `the input is not an approval token: it ${token.detail}`);
    out((await countersign(token, signer)).json);
  });
}
