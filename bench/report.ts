/**
 * What a run comes to: per case and server the median over the rounds with its range, the ratio
 * of twokey to the baseline, the table printed, the targets judged (docs/benchmarks.md,
 * "Targets"), and the JSON written.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Case } from './cases.ts';
import type { Sample } from './measure.ts';
import type { BenchOptions } from './options.ts';
import { percentile } from './rate-probe.ts';
import { ROOT, type Target } from './servers.ts';

export type Samples = Record<string, Record<Target, Sample[]>>;

type Summary = { median: number; min: number; max: number };

const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

const summarize = (xs: Array<number | undefined>): Summary | undefined => {
  const values = xs.filter((x): x is number => typeof x === 'number' && !Number.isNaN(x));
  return values.length ? { median: median(values), min: Math.min(...values), max: Math.max(...values) } : undefined;
};

export function caseReports(cases: readonly Case[], samples: Samples) {
  return cases.map((c) => {
    const per = samples[c.name] as Record<Target, Sample[]>;
    const side = (target: Target) => ({
      rps: summarize(per[target].map((s) => s.rps)),
      cpuUs: summarize(per[target].map((s) => s.cpuUsPerReview)),
      p50Ms: summarize(per[target].map((s) => s.p50Ms)),
      p99Ms: summarize(per[target].map((s) => s.p99Ms)),
      errors: per[target].reduce((n, s) => n + (s.saturationErrors ?? 0) + (s.rateErrors ?? 0), 0),
      peakRssMb: summarize(per[target].map((s) => s.peakRssMb)),
      eventLoopMaxMs: summarize(per[target].map((s) => s.eventLoopMaxMs)),
    });
    const baseline = side('baseline');
    const twokey = side('twokey');
    const ratios = per.twokey.map((s, i) => (s.rps && per.baseline[i]?.rps ? s.rps / (per.baseline[i]?.rps as number) : undefined));
    return { case: c.name, description: c.description, large: Boolean(c.large), baseline, twokey, ratio: summarize(ratios) };
  });
}

export type CaseReport = ReturnType<typeof caseReports>[number];

const fmt = (s: Summary | undefined, digits = 0) =>
  s ? `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})` : '-';

export function printTable(report: readonly CaseReport[], rate: number): void {
  const rows = [
    [
      'case',
      'server',
      'req/s saturation',
      'CPU µs/review',
      `p50 ms @${rate}/s`,
      `p99 ms @${rate}/s`,
      'errors',
      'peak RSS MB',
      'loop max ms',
      'twokey/baseline',
    ],
  ];
  for (const r of report) {
    for (const target of ['baseline', 'twokey'] as const) {
      const s = r[target];
      rows.push([
        target === 'baseline' ? r.case : '',
        target,
        r.large ? '(one at a time)' : fmt(s.rps),
        fmt(s.cpuUs),
        fmt(s.p50Ms, 2),
        fmt(s.p99Ms, 2),
        String(s.errors),
        fmt(s.peakRssMb),
        r.large ? fmt(s.eventLoopMaxMs, 1) : '',
        target === 'twokey' && !r.large ? fmt(r.ratio, 2) : '',
      ]);
    }
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  for (const row of rows)
    process.stdout.write(
      `${row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd()}\n`,
    );
}

export function judgeTargets(report: readonly CaseReport[], rate: number) {
  const byCase = Object.fromEntries(report.map((r) => [r.case, r]));
  /** A target, judged only when one of the cases it is about ran. */
  const target = (name: string, ok: boolean | undefined, detail: string, about: readonly string[]) => ({
    target: name,
    met: ok ?? false,
    detail,
    judged: about.some((c) => c in byCase),
  });
  const smallCases = ['pass-through', 'approved-warm', 'approved-cold', 'one-approval', 'metadata-only'];
  const largeCases = ['large-1mb', 'large-3mb'];
  const ratioOf = (name: string) => byCase[name]?.ratio?.median;
  const p99Of = (name: string) => byCase[name]?.twokey.p99Ms?.median;
  return [
    target('approved-warm >= 0.60 of baseline req/s', (ratioOf('approved-warm') ?? 0) >= 0.6, `${ratioOf('approved-warm')?.toFixed(2)}`, [
      'approved-warm',
    ]),
    target('approved-cold >= 0.35 of baseline req/s', (ratioOf('approved-cold') ?? 0) >= 0.35, `${ratioOf('approved-cold')?.toFixed(2)}`, [
      'approved-cold',
    ]),
    ...['pass-through', 'one-approval', 'metadata-only'].map((name) =>
      target(`${name} >= 0.70 of baseline req/s`, (ratioOf(name) ?? 0) >= 0.7, `${ratioOf(name)?.toFixed(2)}`, [name]),
    ),
    ...smallCases.map((name) =>
      target(`${name} p99 <= 3 ms at ${rate} req/s`, (p99Of(name) ?? Infinity) <= 3, `${p99Of(name)?.toFixed(2)} ms`, [name]),
    ),
    target(
      '0 errors',
      report.every((r) => r.twokey.errors === 0),
      `${report.reduce((n, r) => n + r.twokey.errors, 0)} errors`,
      [...smallCases, ...largeCases],
    ),
    target('3 MB review p99 <= 100 ms', (p99Of('large-3mb') ?? Infinity) <= 100, `${p99Of('large-3mb')?.toFixed(1)} ms`, ['large-3mb']),
    target(
      'event-loop delay never above 50 ms',
      report.filter((r) => r.large).every((r) => (r.twokey.eventLoopMaxMs?.max ?? Infinity) <= 50),
      report
        .filter((r) => r.large)
        .map((r) => `${r.case} ${r.twokey.eventLoopMaxMs?.max.toFixed(1)} ms`)
        .join(', '),
      largeCases,
    ),
    target(
      'peak RSS <= 128 MB for the 8-20 KB cases',
      report.filter((r) => !r.large).every((r) => (r.twokey.peakRssMb?.max ?? Infinity) <= 128),
      `${Math.max(...report.filter((r) => !r.large).map((r) => r.twokey.peakRssMb?.max ?? 0)).toFixed(0)} MB`,
      smallCases,
    ),
  ];
}

export function printTargets(targets: ReturnType<typeof judgeTargets>): void {
  process.stdout.write('\n');
  for (const t of targets.filter((t) => t.judged)) process.stdout.write(`${t.met ? 'met    ' : 'NOT MET'}  ${t.target}: ${t.detail}\n`);
}

/** Writes the run as JSON, to `options.out` or bench/results/, and answers where. */
export function writeResult(
  options: BenchOptions,
  run: {
    readonly reviewBytes: number;
    readonly coldPoolSize: number;
    readonly coldWraps: number;
    readonly elapsedS: number;
    readonly cases: readonly CaseReport[];
    readonly targets: ReturnType<typeof judgeTargets>;
  },
): string {
  const { durationS, rounds, connections, rate, largeRequests } = options;
  const result = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    settings: {
      durationS,
      rounds,
      connections,
      rate,
      largeRequests,
      reviewBytes: run.reviewBytes,
      coldPoolSize: run.coldPoolSize,
      coldWraps: run.coldWraps,
      nodeOptions: options.nodeOptions,
      against: options.against ?? null,
    },
    elapsedS: run.elapsedS,
    cases: run.cases,
    targets: run.targets,
  };
  const out = options.out ?? join(ROOT, 'bench', 'results', `bench-${result.date.replace(/[:.]/g, '-')}.json`);
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  return out;
}
