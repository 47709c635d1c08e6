/**
 * Keeps the benchmark from rotting: a run with tiny settings must complete and report every
 * number for both servers. It measures nothing worth reading; `npm run bench` does.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { ROOT } from '../support/cli.ts';

it('runs both servers through a case end to end and writes its report', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twokey-bench-'));
  try {
    const out = join(dir, 'bench.json');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['bench/run.ts', '--smoke', '--cases', 'one-approval,large-1mb', '--out', out],
      {
        cwd: ROOT,
        timeout: 55_000,
      },
    );
    expect(stdout).toMatch(/^case\s+server\s+req\/s saturation/);
    const report = JSON.parse(await readFile(out, 'utf8'));
    expect(report.cases.map((c: { case: string }) => c.case)).toEqual(['one-approval', 'large-1mb']);
    const [refused, large] = report.cases;
    expect(refused.twokey.rps.median).toBeGreaterThan(0);
    expect(refused.baseline.rps.median).toBeGreaterThan(0);
    expect(refused.ratio.median).toBeGreaterThan(0);
    expect(refused.twokey.errors).toBe(0);
    expect(large.twokey.p99Ms.median).toBeGreaterThan(0);
    expect(large.twokey.eventLoopMaxMs.median).toBeGreaterThanOrEqual(0);
    expect(report.targets.length).toBeGreaterThan(5);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('runs another build of twokey as the baseline with --against, and holds it to the same verdicts', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twokey-bench-'));
  try {
    const out = join(dir, 'bench.json');
    // The plain baseline admits a one-approval review; a build of twokey must refuse it, or the run stops.
    await promisify(execFile)(process.execPath, ['bench/run.ts', '--smoke', '--cases', 'one-approval', '--against', ROOT, '--out', out], {
      cwd: ROOT,
      timeout: 55_000,
    });
    const report = JSON.parse(await readFile(out, 'utf8'));
    expect(report.settings.against).toBe(ROOT);
    expect(report.cases[0].baseline.rps.median).toBeGreaterThan(0);
    // And the baseline really is started from that checkout: one without a build does not start.
    await expect(
      promisify(execFile)(process.execPath, ['bench/run.ts', '--smoke', '--cases', 'one-approval', '--against', dir, '--out', out], {
        cwd: ROOT,
        timeout: 55_000,
      }),
    ).rejects.toThrow(/baseline server exited/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
