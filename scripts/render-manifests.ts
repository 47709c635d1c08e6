/**
 * Writes manifests/twokey.yaml from the chart. A test fails when the two drift apart.
 */
import { writeFileSync } from 'node:fs';
import { MANIFESTS, renderManifests } from '../test/support/chart.ts';

writeFileSync(MANIFESTS, renderManifests());
process.stdout.write(`wrote ${MANIFESTS}\n`);
