/**
 * What the manifest commands read: files, folders (their .yaml, .yml and .json files, as
 * `kubectl apply -f DIR` reads them), `-` for stdin; and the plan document.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TwokeyError } from '../errors.ts';
import type { ManifestText } from '../manifests/plan.ts';
import { type PlanDocument, readPlanDocument } from '../plan/document.ts';

export async function readStdin(stdin: AsyncIterable<Uint8Array | string>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new TwokeyError('ERR_MANIFEST_INVALID', `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** The files a path names: itself, or a folder's files whose names end as `extensions` say, by name. */
async function filesOf(path: string, extensions: RegExp): Promise<string[]> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(path)).isDirectory();
  } catch (error) {
    throw new TwokeyError('ERR_MANIFEST_INVALID', `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (!isDirectory) return [path];
  const names = (await readdir(path, { withFileTypes: true }))
    .filter((entry) => entry.isFile() && !entry.name.startsWith('.') && extensions.test(entry.name))
    .map((entry) => entry.name)
    .sort();
  return names.map((name) => join(path, name));
}

/** The manifests of files, folders and `-`, each with its source for messages. */
export async function readManifestInputs(paths: readonly string[], stdin: AsyncIterable<Uint8Array | string>): Promise<ManifestText[]> {
  const out: ManifestText[] = [];
  for (const path of paths) {
    if (path === '-') out.push({ text: await readStdin(stdin), source: 'stdin' });
    else for (const file of await filesOf(path, /\.(ya?ml|json)$/)) out.push({ text: await readText(file), source: file });
  }
  return out;
}

/** The approval tokens of files and folders (every file of a folder but hidden ones), one token per file. */
export async function readApprovalFiles(paths: readonly string[]): Promise<Array<{ source: string; token: string }>> {
  const out: Array<{ source: string; token: string }> = [];
  for (const path of paths) for (const file of await filesOf(path, /./)) out.push({ source: file, token: (await readText(file)).trim() });
  return out;
}

export async function readPlanFile(path: string): Promise<PlanDocument> {
  const text = await readText(path);
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new TwokeyError('ERR_MANIFEST_INVALID', `${path} is not JSON: ${(error as Error).message}`);
  }
  return readPlanDocument(document, path);
}
