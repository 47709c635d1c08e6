/**
 * The cases the benchmark runs, each a stream of review bodies and the verdict they must get
 * (docs/benchmarks.md, "What it does").
 */
import type { JWK } from 'jose';
import type { BenchOptions } from './options.ts';
import { approvals, countersigned, deployment, planApprovals, reviewBody, withAnnotations } from './reviews.ts';
import { COUNTERSIGN_DIR } from './setup.ts';

export interface Case {
  readonly name: string;
  readonly description: string;
  readonly large?: boolean;
  /** The folder (in the setup's) of a policy of its own: the case runs on servers started from it. */
  readonly dir?: string;
  /** The body of the i-th request. */
  readonly body: (i: number) => string;
  readonly expect: 'allowed' | 'denied';
}

export interface Cases {
  /** The cases selected, in the order they run. */
  readonly cases: readonly Case[];
  /** Bytes of an approved review of the small cases. */
  readonly reviewBytes: number;
  readonly coldPoolSize: number;
  /** How often the cold case ran through its pool, which makes later requests warm. */
  coldWraps(): number;
}

/** Cold: every request carries approvals the server has not seen, from a pool minted here. */
async function coldBodies(key: JWK, options: BenchOptions, log: (line: string) => void) {
  const critical = deployment('payments');
  // The pool is sized for the fastest plausible run; a wrap would make later requests warm, so it is counted.
  const coldPoolSize = options.smoke ? 200 : Math.ceil(6000 * options.durationS);
  log(`minting ${coldPoolSize * 2} approvals for the cold-cache case...`);
  const coldTemplate = reviewBody(
    'CREATE',
    withAnnotations(critical, { 'approval.twokey.dev/bob': '@@BOB@@', 'approval.twokey.dev/carol': '@@CAROL@@' }),
  );
  const coldPool: Array<[string, string]> = [];
  for (let i = 0; i < coldPoolSize; i += 1) {
    const pair = await approvals(key, critical, ['bob@example.com', 'carol@example.com'], `CHG${100000 + i}`);
    coldPool.push([pair['approval.twokey.dev/bob'] as string, pair['approval.twokey.dev/carol'] as string]);
  }
  let coldCursor = 0;
  let coldWraps = 0;
  const body = () => {
    if (coldCursor === coldPool.length) {
      coldCursor = 0;
      coldWraps += 1;
    }
    const [bob, carol] = coldPool[coldCursor++] as [string, string];
    return coldTemplate.replace('@@BOB@@', bob).replace('@@CAROL@@', carol);
  };
  return { body, coldPoolSize, coldWraps: () => coldWraps };
}

async function bigCase(key: JWK, megabytes: number): Promise<Case> {
  const big = deployment('payments', megabytes * 1024 * 1024);
  const body = reviewBody('CREATE', withAnnotations(big, await approvals(key, big, ['bob@example.com', 'carol@example.com'])));
  return {
    name: `large-${megabytes}mb`,
    description: `CREATE of a critical ${megabytes} MB Deployment with two approvals, one request at a time`,
    large: true,
    body: () => body,
    expect: 'allowed',
  };
}

export async function benchCases(
  key: JWK,
  options: BenchOptions,
  log: (line: string) => void,
  approverKeys: Readonly<Record<string, JWK>> = {},
): Promise<Cases> {
  const critical = deployment('payments');
  const twoApprovals = await approvals(key, critical, ['bob@example.com', 'carol@example.com']);
  const oneApproval = await approvals(key, critical, ['bob@example.com']);
  const approvedBody = reviewBody('CREATE', withAnnotations(critical, twoApprovals));
  const countersignedBody =
    Object.keys(approverKeys).length > 0
      ? reviewBody('CREATE', withAnnotations(critical, await countersigned(twoApprovals, approverKeys)))
      : approvedBody;
  const planBody = reviewBody(
    'CREATE',
    withAnnotations(critical, await planApprovals(key, critical, ['bob@example.com', 'carol@example.com'], 100)),
  );
  const cold = await coldBodies(key, options, log);
  const passThrough = reviewBody('CREATE', deployment('team-a'));
  const refused = reviewBody('CREATE', withAnnotations(critical, oneApproval));
  const metadataOnly = reviewBody(
    'UPDATE',
    withAnnotations(critical, { ...twoApprovals, 'example.com/note': 'rotated on-call' }),
    withAnnotations(critical, twoApprovals),
  );
  const small = (name: string, description: string, body: Case['body'], expect: Case['expect'] = 'allowed'): Case => ({
    name,
    description,
    body,
    expect,
  });
  const allCases: Case[] = [
    small('pass-through', 'CREATE of a Deployment in a namespace that is not critical', () => passThrough),
    small('approved-warm', 'CREATE of a critical Deployment with two valid approvals, the same tokens each time', () => approvedBody),
    small(
      'plan-100',
      'CREATE of a critical Deployment with two approvals of a 100-object plan and the proof of its entry, the same tokens each time',
      () => planBody,
    ),
    small('approved-cold', 'CREATE of a critical Deployment with two valid approvals never seen before', cold.body),
    small('one-approval', 'CREATE of a critical Deployment with one approval (refused)', () => refused, 'denied'),
    small('metadata-only', 'UPDATE of a critical Deployment that changes only an annotation', () => metadataOnly),
    {
      ...small(
        'countersigned',
        'CREATE of a critical Deployment with two countersigned approvals (approvals.countersign), the same tokens each time',
        () => countersignedBody,
      ),
      dir: COUNTERSIGN_DIR,
    },
    await bigCase(key, 1),
    await bigCase(key, 3),
  ];
  return {
    cases: allCases.filter((c) => !options.cases || options.cases.has(c.name)),
    reviewBytes: Buffer.byteLength(approvedBody),
    coldPoolSize: cold.coldPoolSize,
    coldWraps: cold.coldWraps,
  };
}
