/**
 * `twokey countersign`: an approver signs the approval the change system issued for them. Reads
 * the token on stdin (or --file), prints the JWS JSON General serialization with both signatures,
 * to attach as the approval annotation in place of the token. It checks the token's shape only,
 * and tells on stderr what the claims approve, so that the approver signs nothing unread.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { TwokeyError } from '../errors.ts';
import { isJsonObject, type JsonObject } from '../json.ts';
import { countersign } from '../keys/signing.ts';
import { printable } from '../text.ts';
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

/** What an approval's claims approve, in one line for the person countersigning it. */
export function describeClaims(claims: JsonObject): string {
  const text = (value: unknown) => (typeof value === 'string' ? printable(value) : typeof value === 'number' ? String(value) : '(none)');
  const twokey = isJsonObject(claims.twokey) ? claims.twokey : {};
  const what =
    typeof twokey.plan === 'string'
      ? `every entry of plan ${text(twokey.plan)} (${text(twokey.entries)} entries)`
      : `the ${text(twokey.action)} of ${text(twokey.resource)} ${twokey.namespace ? `${text(twokey.namespace)}/` : ''}${text(twokey.name)} bound to ${text(twokey.digest)}`;
  const until = typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? new Date(claims.exp * 1000).toISOString() : '(no exp)';
  return `countersigning, as ${text(claims.sub)}: change ${text(twokey.change)}, ${what}, in cluster ${text(claims.aud)}, issued by ${text(claims.iss)}, valid until ${until}`;
}

export function registerCountersign(program: Command, { out, err, io }: Terminal): void {
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
    const claims = token.payload();
    if (!claims.ok) throw new TwokeyError('ERR_TOKEN_INVALID', `the input is not an approval token: its payload ${claims.detail}`);
    err(describeClaims(claims.value));
    out((await countersign(token, signer)).json);
  });
}
