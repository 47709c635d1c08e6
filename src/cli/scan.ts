/**
 * `twokey scan`: list critical workloads and namespaces, and report the workloads whose current
 * spec no valid approvals cover and the objects whose critical label is a look-alike (exit 1 when
 * there are any).
 */
import { type Command, Option } from 'commander';
import { ClusterClient } from '../cluster/client.ts';
import { FINDINGS, scanCluster } from '../cluster/scan.ts';
import { loadSnapshot } from '../config/store.ts';
import { type ClusterFlags, EXIT, kubeConfigOptions, type Terminal, withClusterOptions } from './common.ts';

interface ScanFlags extends ClusterFlags {
  config: string;
  output: 'table' | 'json';
}

function table(rows: ReadonlyArray<Record<string, string>>, columns: ReadonlyArray<[string, string]>): string[] {
  const widths = columns.map(([key, title]) => Math.max(title.length, ...rows.map((r) => (r[key] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(columns.map(([, title]) => title)), ...rows.map((r) => line(columns.map(([key]) => r[key] ?? '')))];
}

export function registerScan(program: Command, terminal: Terminal): void {
  const { out, err } = terminal;
  withClusterOptions(
    program
      .command('scan')
      .description(
        'audit a cluster: critical workloads whose current spec has no valid approvals (or that warn mode or break-glass let through), and critical labels that are not "true" (exit 1 when any is found)',
      )
      .requiredOption('--config <policy>', "the policy file (the cluster's policy: its issuers, keys and critical namespaces)")
      .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table')),
  ).action(async (flags: ScanFlags) => {
    const snapshot = await loadSnapshot(flags.config, (message) => err(`warning: ${message}`));
    const { client } = ClusterClient.connect(kubeConfigOptions(flags));
    const rows = await scanCluster(client, snapshot, { warn: (message) => err(`warning: ${message}`) });
    const unapproved = rows.filter((r) => r.status === 'unapproved');
    const wouldRefuse = rows.filter((r) => r.status === 'would-refuse');
    const breakGlass = rows.filter((r) => r.status === 'break-glass' || r.status === 'break-glass-overdue');
    const mislabelled = rows.filter((r) => r.criticalLabel !== undefined);
    if (flags.output === 'json') out(JSON.stringify(rows, null, 2));
    else {
      const columns: Array<[string, string]> = [
        ['resource', 'RESOURCE'],
        ['namespace', 'NAMESPACE'],
        ['name', 'NAME'],
        ['criticalBy', 'CRITICAL BY'],
        ['status', 'STATUS'],
        ['detail', 'DETAIL'],
      ];
      for (const line of table(rows as unknown as Array<Record<string, string>>, columns)) out(line);
      const critical = rows.filter((r) => r.criticalBy !== 'none' && r.criticalBy !== 'event');
      err(
        `${critical.length} critical objects, ${unapproved.length} without valid approvals for their current spec, ${mislabelled.length} with a critical label that is not "true"` +
          `${wouldRefuse.length > 0 ? `, ${wouldRefuse.length} that enforce mode would refuse` : ''}${breakGlass.length > 0 ? `, ${breakGlass.length} admitted by break-glass and not yet approved by two` : ''}`,
      );
    }
    terminal.exitCode = rows.some((r) => FINDINGS.has(r.status)) ? EXIT.refused : EXIT.ok;
  });
}
