/**
 * Kubernetes Events about decisions, so `kubectl describe` and `kubectl get events` show who was
 * refused and which change was admitted by whom. Events never delay an answer: they are queued
 * after the response is sent, the queue is bounded (overflow is dropped and counted, break-glass and
 * warn mode's Events last), repeats of the same decision are folded into one Event's count, and dry
 * runs make none.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Verdict } from '../decision/verdict.ts';
import { eventMessage } from '../decision/wording.ts';
import { describeError } from '../errors.ts';
import type { AdmissionRequest } from '../kubernetes/admission.ts';
import { readMeta } from '../kubernetes/objects.ts';
import type { TwokeyMetrics } from '../server/metrics.ts';
import { type KubeRest, statusMessage } from './rest.ts';

export interface EventRecorderOptions {
  readonly logger: Logger;
  readonly metrics?: TwokeyMetrics;
  readonly queueLimit?: number;
  /** Repeats of one decision within this window update one Event. */
  readonly dedupeWindowMs?: number;
  /** Shortest time between two count updates of one Event. */
  readonly updateIntervalMs?: number;
  readonly instance?: string;
}

interface CoreEvent {
  metadata: { generateName: string; namespace: string };
  involvedObject: { apiVersion: string; kind: string; name: string; namespace?: string; uid?: string };
  reason: string;
  message: string;
  type: 'Normal' | 'Warning';
  action: string;
  source: { component: string; host: string };
  reportingComponent: string;
  reportingInstance: string;
  firstTimestamp: string;
  lastTimestamp: string;
  count: number;
}

type Task =
  | { kind: 'create'; key: string; event: CoreEvent }
  | { kind: 'update'; key: string; namespace: string; name: string; count: number };

interface Seen {
  name?: string;
  namespace: string;
  count: number;
  /** The count the API has been told. */
  sentCount: number;
  firstSeen: number;
  lastSent: number;
  /** A count update waiting for the update interval to pass. */
  trailing?: NodeJS.Timeout;
}

const MESSAGE_LIMIT = 1024;

/**
 * The Event's reason: a refusal, an admission by approvals, one by a break-glass token, or a
 * refusal warn mode admitted. All but an approved change are Warnings.
 */
export function eventReason(verdict: Verdict): 'ChangeRefused' | 'ChangeApproved' | 'BreakGlass' | 'WouldRefuse' {
  if (verdict.wouldRefuse !== undefined) return 'WouldRefuse';
  if (!verdict.allowed) return 'ChangeRefused';
  return verdict.breakGlass?.status === 'counted' ? 'BreakGlass' : 'ChangeApproved';
}

/** How much a queued Event matters when the queue is full: a break-glass admission most, then warn mode's. */
function rank(task: Task): number {
  if (task.kind !== 'create') return 0;
  return task.event.reason === 'BreakGlass' ? 2 : task.event.reason === 'WouldRefuse' ? 1 : 0;
}

export class EventRecorder {
  readonly #rest: KubeRest;
  readonly #options: Required<Omit<EventRecorderOptions, 'metrics'>> & { metrics?: TwokeyMetrics };
  readonly #queue: Task[] = [];
  readonly #seen = new Map<string, Seen>();
  #draining: Promise<void> | undefined;

  constructor(rest: KubeRest, options: EventRecorderOptions) {
    this.#rest = rest;
    this.#options = {
      queueLimit: 500,
      dedupeWindowMs: 10 * 60_000,
      updateIntervalMs: 30_000,
      instance: hostname(),
      ...options,
    };
  }

  /** Records a decision; returns at once. */
  record(request: AdmissionRequest, verdict: Verdict): void {
    if (request.dryRun) return;
    const admittedWithApprovals = verdict.allowed && verdict.aspects.length > 0;
    if (!admittedWithApprovals && verdict.allowed) return;
    const subject = request.object ?? request.oldObject;
    if (!subject) return;
    let uid = '';
    let metaName = '';
    try {
      ({ uid, name: metaName } = readMeta(subject));
    } catch {
      // A malformed object still gets its refusal recorded, without a uid.
    }
    const name = verdict.target?.name || metaName || request.name;
    if (!name) return;
    const isNamespace = request.resource.group === '' && request.resource.resource === 'namespaces';
    const namespace = isNamespace ? '' : request.namespace;
    const eventNamespace = namespace || 'default';
    const reason = eventReason(verdict);
    // One decision: the same aspects bound to the same digests, approved by the same changes, or let
    // through by the same incident's approver (each break-glass is an Event that names its own).
    const aspects = verdict.aspects.map((a) => `${a.action} ${a.digest} ${a.change ?? ''}`);
    const glass = reason === 'BreakGlass' ? [verdict.breakGlass?.incident ?? '', verdict.breakGlass?.approver ?? ''] : [];
    const key = [
      reason,
      request.resource.resource,
      namespace,
      name,
      verdict.action ?? '',
      verdict.digest ?? '',
      ...aspects,
      ...glass,
      request.user.username,
    ].join('\u0000');

    const now = Date.now();
    const seen = this.#seen.get(key);
    if (seen && now - seen.firstSeen < this.#options.dedupeWindowMs) {
      seen.count += 1;
      if (seen.name && now - seen.lastSent >= this.#options.updateIntervalMs) this.#sendCount(key, seen);
      else {
        this.#options.metrics?.events.inc({ result: 'deduplicated' });
        // The last occurrences of a burst are told once the interval has passed, so counts end right.
        this.#scheduleCount(key, seen, Math.max(0, this.#options.updateIntervalMs - (now - seen.lastSent)));
      }
      return;
    }
    this.#remember(key, { namespace: eventNamespace, count: 1, sentCount: 1, firstSeen: now, lastSent: now });
    const message = eventMessage(verdict);
    const time = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const apiVersion = request.kind.group ? `${request.kind.group}/${request.kind.version}` : request.kind.version;
    this.#enqueue({
      kind: 'create',
      key,
      event: {
        metadata: { generateName: `${name}.twokey.`, namespace: eventNamespace },
        involvedObject: { apiVersion, kind: request.kind.kind, name, ...(namespace ? { namespace } : {}), ...(uid ? { uid } : {}) },
        reason,
        message: message.length > MESSAGE_LIMIT ? `${message.slice(0, MESSAGE_LIMIT - 1)}…` : message,
        type: reason === 'ChangeApproved' ? 'Normal' : 'Warning',
        action: verdict.action ? verdict.action.replace(/(^|\+)([a-z])/g, (_, sep: string, c: string) => sep + c.toUpperCase()) : 'Judge',
        source: { component: 'twokey', host: this.#options.instance },
        reportingComponent: 'twokey',
        reportingInstance: this.#options.instance,
        firstTimestamp: time,
        lastTimestamp: time,
        count: 1,
      },
    });
  }

  /** Tells the count later; waits on for the Event's name while its creation is still in flight. */
  #scheduleCount(key: string, seen: Seen, delayMs: number): void {
    seen.trailing ??= setTimeout(() => {
      seen.trailing = undefined;
      if (seen.count <= seen.sentCount) return;
      if (seen.name) this.#sendCount(key, seen);
      else if (Date.now() - seen.firstSeen < this.#options.dedupeWindowMs)
        this.#scheduleCount(key, seen, Math.max(this.#options.updateIntervalMs, 100));
    }, delayMs).unref();
  }

  #sendCount(key: string, seen: Seen): void {
    seen.lastSent = Date.now();
    seen.sentCount = seen.count;
    this.#enqueue({ kind: 'update', key, namespace: seen.namespace, name: seen.name as string, count: seen.count });
  }

  #remember(key: string, seen: Seen): void {
    this.#seen.set(key, seen);
    if (this.#seen.size > 2000) {
      const oldest = this.#seen.keys().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
  }

  #enqueue(task: Task): void {
    if (this.#queue.length >= this.#options.queueLimit) {
      // Break-glass and warn mode's Events are the loud trail: a flood of refusals anyone can provoke
      // must not crowd them out. The oldest queued write of a lower rank gives way; else the newcomer.
      const evicted = this.#queue.findIndex((queued) => rank(queued) < rank(task));
      const dropped = evicted >= 0 ? (this.#queue.splice(evicted, 1)[0] as Task) : task;
      this.#options.metrics?.events.inc({ result: 'dropped' });
      if (dropped.kind === 'create') this.#seen.delete(dropped.key);
      if (dropped === task) return;
    }
    this.#queue.push(task);
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
    });
  }

  async #drain(): Promise<void> {
    for (let task = this.#queue.shift(); task; task = this.#queue.shift()) {
      try {
        await this.#send(task);
      } catch (error) {
        this.#options.metrics?.events.inc({ result: 'failed' });
        this.#options.logger.warn({ error: describeError(error) }, 'could not record a Kubernetes Event');
      }
    }
  }

  async #send(task: Task): Promise<void> {
    if (task.kind === 'create') {
      const response = await this.#rest.call('POST', `/api/v1/namespaces/${encodeURIComponent(task.event.metadata.namespace)}/events`, {
        body: task.event,
        timeoutMs: 5000,
      });
      if (response.status >= 300) throw new Error(statusMessage(response));
      const created = response.body as { metadata?: { name?: string } };
      const seen = this.#seen.get(task.key);
      if (seen && created.metadata?.name) seen.name = created.metadata.name;
      this.#options.metrics?.events.inc({ result: 'sent' });
      return;
    }
    const response = await this.#rest.call(
      'PATCH',
      `/api/v1/namespaces/${encodeURIComponent(task.namespace)}/events/${encodeURIComponent(task.name)}`,
      {
        body: { count: task.count, lastTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') },
        contentType: 'application/merge-patch+json',
        timeoutMs: 5000,
      },
    );
    if (response.status >= 300) throw new Error(statusMessage(response));
    this.#options.metrics?.events.inc({ result: 'updated' });
  }

  /** Waits for queued events, at most `timeoutMs`. */
  async flush(timeoutMs = 2000): Promise<void> {
    if (!this.#draining) return;
    await Promise.race([this.#draining, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }
}
