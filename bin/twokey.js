#!/usr/bin/env node
// The installed command runs the compiled CLI (built by `npm run build`, and on `npm ci` by `prepare`).
import { run } from '../dist/cli/main.js';

process.exitCode = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
