/**
 * `npm run bench`: twokey's real server against a baseline fastify HTTPS server configured like
 * it, driven alternately by the same load in one run, case by case. Reports requests/s at
 * saturation, latency at a fixed arrival rate (open loop), errors, peak RSS and the event-loop
 * delay of large reviews, as medians over rounds with their spread, and the ratio of twokey to
 * the baseline. Prints a table and writes JSON. Every phase is bounded in time.
 */
import { join } from 'node:path';
import { benchCases, type Cases } from './cases.ts';
import { type Load, measure } from './measure.ts';
import { type BenchOptions, benchOptions } from './options.ts';
import { caseReports, judgeTargets, printTable, printTargets, type Samples, writeResult } from './report.ts';
import { type Server, startServer, type Target } from './servers.ts';
import { benchSetup } from './setup.ts';

const log = (line: string) => process.stderr.write(`${line}\n`);

/** Every case on both servers, round by round, alternating which goes first; `started` once both servers are up. */
async function runRounds(options: BenchOptions, { cases }: Cases, dir: string, load: Load): Promise<{ samples: Samples; started: number }> {
  // The 8-20 KB cases share long-lived servers; each large case gets fresh ones, so the memory a
  // 3 MB review leaves behind (V8 keeps its grown heap) does not count against the small cases.
  const servers: Record<Target, Server> = {
    baseline: await startServer('baseline', dir, options.nodeOptions, options.against),
    twokey: await startServer('twokey', dir, options.nodeOptions, options.against),
  };
  const samples: Samples = {};
  const started = Date.now();
  try {
    for (let round = 0; round < options.rounds; round += 1) {
      for (const c of cases) {
        // Alternate who goes first, so drift in the machine's load does not favour one side.
        const order: Target[] = round % 2 === 0 ? ['baseline', 'twokey'] : ['twokey', 'baseline'];
        for (const target of order) {
          log(`round ${round + 1}/${options.rounds}  ${c.name.padEnd(14)} ${target}`);
          samples[c.name] ??= { baseline: [], twokey: [] };
          // A case with a policy of its own runs on servers started from it.
          const own = c.large || c.dir !== undefined;
          const server = own
            ? await startServer(target, c.dir ? join(dir, c.dir) : dir, options.nodeOptions, options.against)
            : servers[target];
          try {
            samples[c.name]?.[target].push(await measure(server, c, load));
          } finally {
            if (own) server.child.kill();
          }
        }
      }
    }
  } finally {
    for (const server of Object.values(servers)) server.child.kill();
  }
  return { samples, started };
}

async function main(args: readonly string[]): Promise<void> {
  const options = benchOptions(args);
  const setup = await benchSetup();
  const cases = await benchCases(setup.key, options, log, setup.approverKeys);
  log(`starting servers (reviews of ${(cases.reviewBytes / 1024).toFixed(1)} KB)...`);
  let rounds: { samples: Samples; started: number };
  try {
    rounds = await runRounds(options, cases, setup.dir, { options, caPem: setup.caPem });
  } finally {
    setup.remove();
  }
  const report = caseReports(cases.cases, rounds.samples);
  printTable(report, options.rate);
  const targets = judgeTargets(report, options.rate);
  printTargets(targets);
  const out = writeResult(options, {
    reviewBytes: cases.reviewBytes,
    coldPoolSize: cases.coldPoolSize,
    coldWraps: cases.coldWraps(),
    elapsedS: Math.round((Date.now() - rounds.started) / 1000),
    cases: report,
    targets,
  });
  log(`wrote ${out}`);
}

await main(process.argv.slice(2));
