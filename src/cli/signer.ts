/**
 * Where `twokey approve` and `twokey countersign` get their signatures: a private JWK file, or an
 * external signer command (an HSM, a KMS, an agent) so that the private key never touches disk
 * here. The command is spawned without a shell (argv split on whitespace, or a JSON array), reads
 * the JWS signing input `BASE64URL(header).BASE64URL(payload)` on stdin and prints the signature,
 * base64url, or `{"signature":"<base64url>"}`, on stdout. A non-zero exit, a timeout, or a signature
 * that does not verify with `--public-key` is an error, and nothing is printed.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { JWK } from 'jose';
import { TwokeyError } from '../errors.ts';
import { isJsonObject } from '../json.ts';
import { assertVerifies, type JwsSigner, localSigner, parsePrivateJwk } from '../keys/signing.ts';
import { usageError } from './common.ts';

export const SIGNER_TIMEOUT_MS = 30_000;
const MAX_OUTPUT = 64 * 1024;
const SIGNATURE = /^[A-Za-z0-9_-]+$/;

export interface SignerFlags {
  privateKey?: string;
  signer?: string;
  publicKey?: string;
}

/** The options of a command that signs: a private key file, or an external signer and the public key it signs for. */
export function withSignerOptions(command: Command, privateKeyHelp: string): Command {
  return command
    .option('--private-key <jwk>', privateKeyHelp)
    .option(
      '--signer <command>',
      'an external signer: a command (split on whitespace, or a JSON array) that reads the JWS signing input on stdin and prints the signature (base64url, or {"signature":...})',
    )
    .option(
      '--public-key <jwk>',
      'with --signer: the public JWK (with kid, and alg unless Ed25519 or P-256) its signatures must verify with',
    );
}

/** The command line of an external signer as argv: a JSON array of strings, or words split on whitespace. */
export function signerArgv(command: string): string[] {
  const text = command.trim();
  if (text.startsWith('[')) {
    let argv: unknown;
    try {
      argv = JSON.parse(text);
    } catch {
      throw usageError('--signer: a JSON array of strings was expected');
    }
    if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string' && a !== '')) {
      throw usageError('--signer: a JSON array of non-empty strings was expected');
    }
    return argv as string[];
  }
  const argv = text.split(/\s+/).filter(Boolean);
  if (argv.length === 0) throw usageError('--signer must name a command');
  return argv;
}

async function readJwk(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new TwokeyError('ERR_KEY_INVALID', `cannot read the ${what} ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    // The parser's message quotes the text around the error: part of a private key.
    throw new TwokeyError('ERR_KEY_INVALID', `the ${what} ${path} is not JSON`);
  }
}

/** Runs the signer command once on `input`; its signature's bytes. */
export function runSigner(argv: readonly string[], input: string, timeoutMs = SIGNER_TIMEOUT_MS): Promise<Uint8Array> {
  const [file, ...args] = argv as [string, ...string[]];
  return new Promise((resolve, reject) => {
    const fail = (why: string) => reject(new TwokeyError('ERR_SIGNER', `the signer ${JSON.stringify(file)} ${why}`));
    const child = spawn(file, args, { shell: false, stdio: ['pipe', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(`did not answer within ${timeoutMs / 1000} s`);
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_OUTPUT) child.kill('SIGKILL');
      else chunks.push(chunk);
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      fail(`cannot be run: ${error.message}`);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (size > MAX_OUTPUT) return fail(`printed more than ${MAX_OUTPUT} bytes`);
      if (code !== 0) return fail(signal ? `was killed (${signal})` : `exited ${code}`);
      let text = Buffer.concat(chunks).toString('utf8').trim();
      if (text.startsWith('{')) {
        try {
          const answer: unknown = JSON.parse(text);
          text = isJsonObject(answer) && typeof answer.signature === 'string' ? answer.signature : '';
        } catch {
          text = '';
        }
      }
      if (!SIGNATURE.test(text)) return fail('printed no base64url signature');
      resolve(Buffer.from(text, 'base64url'));
    });
    child.stdin.on('error', () => {}); // a signer that exits without reading is judged by its exit
    child.stdin.end(input);
  });
}

/** A signer that runs `argv`, and whose every signature is checked against `publicJwk` before it is used. */
export function externalSigner(argv: readonly string[], publicJwk: JWK, alg: string): JwsSigner {
  return {
    alg,
    kid: publicJwk.kid as string,
    sign: async (input) => {
      const signature = await runSigner(argv, input);
      const [protectedHeader, payload] = input.split('.') as [string, string];
      await assertVerifies(publicJwk, alg, protectedHeader, payload, Buffer.from(signature).toString('base64url'));
      return signature;
    },
  };
}

function algorithmOf(jwk: JWK, source: string): string {
  if (typeof jwk.alg === 'string') return jwk.alg;
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  throw usageError(`${source} has no alg and is neither Ed25519 nor P-256`);
}

/** The signer the flags name: exactly one of --private-key and --signer (with --public-key). */
export async function signerFrom(flags: SignerFlags): Promise<JwsSigner> {
  if ((flags.privateKey === undefined) === (flags.signer === undefined)) throw usageError('give exactly one of --private-key and --signer');
  if (flags.privateKey !== undefined) {
    if (flags.publicKey !== undefined) throw usageError('--public-key goes with --signer');
    return localSigner(parsePrivateJwk(await readJwk(flags.privateKey, 'private JWK'), flags.privateKey));
  }
  if (flags.publicKey === undefined) throw usageError('--signer needs --public-key: the public JWK its signatures must verify with');
  const document = await readJwk(flags.publicKey, 'public JWK');
  if (!isJsonObject(document) || typeof document.kty !== 'string') throw usageError(`${flags.publicKey} is not a JWK`);
  const jwk = document as JWK;
  if ('d' in jwk) throw usageError(`${flags.publicKey} holds a private key; --signer takes the public one`);
  if (typeof jwk.kid !== 'string' || jwk.kid === '') throw usageError(`${flags.publicKey} has no kid; the webhook finds keys by kid`);
  return externalSigner(signerArgv(flags.signer as string), jwk, algorithmOf(jwk, flags.publicKey));
}
