/**
 * The policy and issuer keys in force, kept current without a restart. Every change is loaded
 * and checked in full before it replaces the last good version; a bad file is logged and
 * counted, never applied, so it can never open the gate. Answering a review only reads the
 * current snapshot: keys are fetched in the background, never on the request path.
 */
import { resolve } from 'node:path';
import { type ApproverKeys, assertNoSharedKeys, loadApproverKeys } from '../keys/approvers.ts';
import { type IssuerKeySet, KeyRing, refuseSharedKeys } from '../keys/jwks.ts';
import { describeSource, loadIssuerKeys } from '../keys/sources.ts';
import { loadPolicyFile } from '../policy/load.ts';
import type { IssuerPolicy, Policy } from '../policy/policy.ts';
import { type FilePoller, pollFiles } from './watch.ts';

export interface ConfigSnapshot {
  readonly policy: Policy;
  readonly keys: KeyRing;
}

export type ReloadKind = 'policy' | 'jwks';

/** Reports reloads to logs and metrics without tying the store to either. */
export interface ConfigObserver {
  reloaded(kind: ReloadKind, source: string): void;
  failed(kind: ReloadKind, source: string, error: unknown): void;
  /** A key set was loaded, at start or later; it may hold keys that cannot be used, or none. */
  keysLoaded?(set: IssuerKeySet, source: string): void;
}

export interface ConfigStoreOptions {
  readonly policyPath: string;
  readonly observer?: ConfigObserver;
  /** How often watched files are checked; default 5s. */
  readonly pollIntervalMs?: number;
  /** Shortest time between two background fetches of one JWKS URL on an unknown kid; default 30s. */
  readonly minRefetchMs?: number;
}

const sourceKey = (issuer: IssuerPolicy) => `${issuer.issuer}\u0000${describeSource(issuer)}`;

/** Every issuer whose keys are loaded: the ordinary ones, and the break-glass issuer. */
function keySources(policy: Policy): IssuerPolicy[] {
  return policy.breakGlass ? [...policy.issuers, policy.breakGlass] : [...policy.issuers];
}

/**
 * Refuses key sets where the break-glass issuer shares a key with an ordinary issuer, or where any
 * issuer's key, the break-glass issuer's included, is also registered for an approver.
 */
function checkKeySets(policy: Policy, approvers: ApproverKeys | undefined, sets: ReadonlyMap<string, IssuerKeySet>): void {
  const ordinary = policy.issuers.flatMap((issuer) => sets.get(sourceKey(issuer)) ?? []);
  const breakGlass = policy.breakGlass && sets.get(sourceKey(policy.breakGlass));
  refuseSharedKeys(breakGlass, ordinary);
  assertNoSharedKeys(approvers, breakGlass ? [...ordinary, breakGlass] : ordinary);
}

export class ConfigStore {
  readonly #options: Required<Omit<ConfigStoreOptions, 'observer'>> & {
    observer: ConfigObserver | undefined;
  };
  #policy: Policy | undefined;
  /** Last good key set per issuer source. */
  #keySets = new Map<string, IssuerKeySet>();
  /** The approvers' keys of the policy in force. */
  #approvers: ApproverKeys | undefined;
  #snapshot: ConfigSnapshot | undefined;
  #poller: FilePoller | undefined;
  #refreshTimers = new Map<string, NodeJS.Timeout>();
  #lastFetch = new Map<string, number>();
  #reloading: Promise<void> = Promise.resolve();

  constructor(options: ConfigStoreOptions) {
    this.#options = {
      policyPath: resolve(options.policyPath),
      observer: options.observer,
      pollIntervalMs: options.pollIntervalMs ?? 5000,
      minRefetchMs: options.minRefetchMs ?? 30_000,
    };
  }

  /** Loads the policy and keys. Throws if the policy or a JWKS file is invalid; a JWKS URL may still be pending. */
  async start(): Promise<void> {
    const policy = await loadPolicyFile(this.#options.policyPath);
    await this.#apply(policy, { initial: true });
    this.#poller = pollFiles(this.#options.pollIntervalMs, (path) => this.#serialize(() => this.#fileChanged(path)));
    await this.#poller.watch(this.#watchedFiles());
  }

  stop(): void {
    this.#poller?.stop();
    for (const timer of this.#refreshTimers.values()) clearTimeout(timer);
    this.#refreshTimers.clear();
  }

  /** The policy and keys in force, or undefined before the first successful load. */
  current(): ConfigSnapshot | undefined {
    return this.#snapshot;
  }

  /** Why the store is not ready to judge; empty when it is. */
  notReady(): string[] {
    if (!this.#policy) return ['no policy loaded'];
    return keySources(this.#policy)
      .filter((issuer) => !this.#keySets.has(sourceKey(issuer)))
      .map((issuer) => `no JWKS loaded yet for issuer ${issuer.issuer} (${describeSource(issuer)})`);
  }

  /** Asks for a background refetch of an issuer's JWKS URL, e.g. after an unknown kid. Never waits. */
  requestRefresh(issuerName: string): void {
    const issuer = this.#policy && keySources(this.#policy).find((i) => i.issuer === issuerName);
    if (issuer?.jwks.kind !== 'url') return;
    const last = this.#lastFetch.get(sourceKey(issuer)) ?? 0;
    if (Date.now() - last < this.#options.minRefetchMs) return;
    void this.#serialize(() => this.#fetchUrl(issuer));
  }

  /** Reloads and refetches at once (tests and operators' signals use this). */
  async reloadNow(): Promise<void> {
    await this.#serialize(() => this.#fileChanged(this.#options.policyPath));
  }

  #serialize(task: () => Promise<void>): Promise<void> {
    this.#reloading = this.#reloading.then(task, task);
    return this.#reloading;
  }

  #watchedFiles(): string[] {
    const files = [this.#options.policyPath];
    for (const issuer of this.#policy ? keySources(this.#policy) : []) if (issuer.jwks.kind === 'file') files.push(issuer.jwks.path);
    for (const approver of this.#policy?.approvers ?? []) if (approver.keys.kind === 'file') files.push(approver.keys.path);
    return files;
  }

  async #fileChanged(path: string): Promise<void> {
    // An approver's JWKS is part of the policy: the policy is loaded again, whole, with it.
    const approverFile = this.#policy?.approvers?.some((a) => a.keys.kind === 'file' && a.keys.path === path) ?? false;
    if (path === this.#options.policyPath || approverFile) {
      path = this.#options.policyPath;
      let policy: Policy;
      try {
        policy = await loadPolicyFile(path);
      } catch (error) {
        this.#options.observer?.failed('policy', path, error);
        return;
      }
      try {
        await this.#apply(policy, { initial: false });
        this.#options.observer?.reloaded('policy', path);
      } catch (error) {
        this.#options.observer?.failed('policy', path, error);
      }
      await this.#poller?.watch(this.#watchedFiles());
      return;
    }
    for (const issuer of this.#policy ? keySources(this.#policy) : []) {
      if (issuer.jwks.kind !== 'file' || issuer.jwks.path !== path) continue;
      try {
        const set = await loadIssuerKeys(issuer);
        this.#checkReplacement(sourceKey(issuer), set);
        this.#replaceKeys(sourceKey(issuer), set);
        this.#options.observer?.reloaded('jwks', path);
        this.#options.observer?.keysLoaded?.(set, path);
      } catch (error) {
        this.#options.observer?.failed('jwks', path, error);
      }
    }
  }

  /**
   * Makes `policy` current. File key sets must all load, or the policy is refused as a whole;
   * URL key sets are fetched once here and then in the background.
   */
  async #apply(policy: Policy, { initial }: { initial: boolean }): Promise<void> {
    const approvers = await loadApproverKeys(policy);
    const next = new Map<string, IssuerKeySet>();
    for (const issuer of keySources(policy)) {
      const key = sourceKey(issuer);
      const known = this.#keySets.get(key);
      if (issuer.jwks.kind === 'file') {
        // Read again with every policy: a rotation refused while the policy forbade it (a key shared
        // with an approver) takes effect once the policy allows it, without waiting for the file to
        // change again. An unreadable file keeps the set in force, as its own reload would.
        let set: IssuerKeySet;
        try {
          set = await loadIssuerKeys(issuer);
        } catch (error) {
          if (!known || initial) throw error;
          this.#options.observer?.failed('jwks', describeSource(issuer), error);
          next.set(key, known);
          continue;
        }
        if (known?.fingerprint === set.fingerprint) next.set(key, known);
        else {
          this.#options.observer?.keysLoaded?.(set, describeSource(issuer));
          next.set(key, set);
        }
      } else if (known) {
        next.set(key, known);
      }
    }
    checkKeySets(policy, approvers, next);
    this.#policy = policy;
    this.#approvers = approvers;
    this.#keySets = next;
    this.#publish();
    for (const timer of this.#refreshTimers.values()) clearTimeout(timer);
    this.#refreshTimers.clear();
    for (const issuer of keySources(policy)) {
      if (issuer.jwks.kind !== 'url') continue;
      if (!next.has(sourceKey(issuer))) await this.#fetchUrl(issuer);
      else this.#scheduleRefresh(issuer);
    }
  }

  async #fetchUrl(issuer: IssuerPolicy): Promise<void> {
    const key = sourceKey(issuer);
    this.#lastFetch.set(key, Date.now());
    try {
      const set = await loadIssuerKeys(issuer);
      if (this.#policy && keySources(this.#policy).some((i) => sourceKey(i) === key)) {
        this.#checkReplacement(key, set);
        this.#replaceKeys(key, set);
        this.#options.observer?.reloaded('jwks', describeSource(issuer));
        this.#options.observer?.keysLoaded?.(set, describeSource(issuer));
      }
    } catch (error) {
      this.#options.observer?.failed('jwks', describeSource(issuer), error);
    }
    this.#scheduleRefresh(issuer);
  }

  #scheduleRefresh(issuer: IssuerPolicy): void {
    const key = sourceKey(issuer);
    clearTimeout(this.#refreshTimers.get(key));
    // Retry sooner while no set was ever loaded.
    const delay = this.#keySets.has(key) ? issuer.refreshSeconds * 1000 : Math.min(issuer.refreshSeconds * 1000, 10_000);
    const timer = setTimeout(() => void this.#serialize(() => this.#fetchUrl(issuer)), delay);
    timer.unref();
    this.#refreshTimers.set(key, timer);
  }

  /** Refuses a key set that would share a key between the break-glass issuer and an ordinary one, or with an approver. */
  #checkReplacement(key: string, set: IssuerKeySet): void {
    if (this.#policy) checkKeySets(this.#policy, this.#approvers, new Map([...this.#keySets, [key, set]]));
  }

  /** Installs a freshly loaded key set; the same keys again keep the current key ring (and what it verified). */
  #replaceKeys(key: string, set: IssuerKeySet): void {
    if (this.#keySets.get(key)?.fingerprint === set.fingerprint) return;
    this.#keySets.set(key, set);
    this.#publish();
  }

  #publish(): void {
    if (!this.#policy) return;
    const sets = keySources(this.#policy).flatMap((issuer) => {
      const set = this.#keySets.get(sourceKey(issuer));
      return set ? [set] : [];
    });
    this.#snapshot = { policy: this.#policy, keys: new KeyRing(sets, this.#approvers) };
  }
}

/**
 * Loads the policy and keys once, for one-shot commands (`twokey check`). An unreachable JWKS URL
 * is reported and its issuer left without keys, as the server would be until it loads.
 */
export async function loadSnapshot(policyPath: string, warn: (message: string) => void): Promise<ConfigSnapshot> {
  const policy = await loadPolicyFile(policyPath);
  const approvers = await loadApproverKeys(policy);
  const sets = new Map<string, IssuerKeySet>();
  for (const issuer of keySources(policy)) {
    try {
      const set = await loadIssuerKeys(issuer);
      if (set.keys.size === 0) warn(`the JWKS ${describeSource(issuer)} of ${issuer.issuer} holds no usable key: no approval of it counts`);
      sets.set(sourceKey(issuer), set);
    } catch (error) {
      if (issuer.jwks.kind === 'file') throw error;
      warn((error as Error).message);
    }
  }
  checkKeySets(policy, approvers, sets);
  return { policy, keys: new KeyRing(sets.values(), approvers) };
}
