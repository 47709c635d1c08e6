/**
 * The benchmark's settings, from its command line (docs/benchmarks.md shows them); `--smoke` makes
 * every phase tiny, for the test that keeps the benchmark working.
 */
import { parseArgs } from 'node:util';

export interface BenchOptions {
  readonly smoke: boolean;
  /** Seconds per measured phase. */
  readonly durationS: number;
  readonly rounds: number;
  /** autocannon connections at saturation. */
  readonly connections: number;
  /** Requests a second of the open-loop latency probe. */
  readonly rate: number;
  /** Requests of each large case, one at a time. */
  readonly largeRequests: number;
  /** The cases to run, by name; all when undefined. */
  readonly cases: ReadonlySet<string> | undefined;
  readonly out: string | undefined;
  /** V8 flags for both servers. */
  readonly nodeOptions: string;
  /**
   * A checkout of twokey, built (its dist/), to run as the baseline instead of the plain fastify
   * server: two builds side by side in one run, to tell what a change costs.
   */
  readonly against: string | undefined;
}

export function benchOptions(args: readonly string[]): BenchOptions {
  const { values: flags } = parseArgs({
    args: [...args],
    options: {
      duration: { type: 'string', default: '4' },
      rounds: { type: 'string', default: '3' },
      connections: { type: 'string', default: '20' },
      rate: { type: 'string', default: '1000' },
      large: { type: 'string', default: '30' },
      cases: { type: 'string' },
      out: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      'node-options': { type: 'string', default: '' },
      against: { type: 'string' },
    },
  });
  const smoke = flags.smoke ?? false;
  return {
    smoke,
    durationS: smoke ? 0.5 : Number(flags.duration),
    rounds: smoke ? 1 : Number(flags.rounds),
    connections: Number(flags.connections),
    rate: smoke ? 200 : Number(flags.rate),
    largeRequests: smoke ? 2 : Number(flags.large),
    cases: flags.cases ? new Set(flags.cases.split(',')) : undefined,
    out: flags.out,
    nodeOptions: flags['node-options'] ?? '',
    against: flags.against,
  };
}
