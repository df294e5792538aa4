/**
 * The client connection limit: the soft open-files limit read from
 * /proc/self/limits, the default derived from it, and an explicit
 * server.max_connections split across workers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  clientConnectionLimit,
  connectionsForOpenFiles,
  describeClientConnectionLimit,
  parseOpenFilesLimit,
  RESERVED_DESCRIPTORS,
} from '../../src/server/client-connection-limit.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** /proc/self/limits as Linux writes it, with `soft` and `hard` for Max open files. */
function procLimits(soft: string, hard: string): string {
  return [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max cpu time              unlimited            unlimited            seconds   ',
    'Max processes             96367                96367                processes ',
    `Max open files            ${soft.padEnd(21)}${hard.padEnd(21)}files     `,
    'Max locked memory         8388608              8388608              bytes     ',
    '',
  ].join('\n');
}

test('parseOpenFilesLimit: the soft limit of Max open files; unlimited or unreadable text gives none', () => {
  const rows: { desc: string; text: string; want: number | undefined }[] = [
    { desc: 'a soft limit below the hard one', text: procLimits('1024', '524288'), want: 1024 },
    { desc: 'soft and hard equal', text: procLimits('256', '256'), want: 256 },
    { desc: 'unlimited', text: procLimits('unlimited', 'unlimited'), want: undefined },
    { desc: 'no Max open files line', text: 'Limit Soft Limit Hard Limit Units\nMax processes 10 10 processes\n', want: undefined },
    { desc: 'garbage', text: 'Max open files lots many files\n\u0000\u0001', want: undefined },
    { desc: 'a negative number', text: procLimits('-1', '-1'), want: undefined },
    { desc: 'empty', text: '', want: undefined },
  ];
  for (const row of rows) assert.equal(parseOpenFilesLimit(row.text), row.want, row.desc);
});

test('connectionsForOpenFiles: half of what the reserve leaves, never below 1', () => {
  assert.equal(RESERVED_DESCRIPTORS, 64);
  const rows: { desc: string; openFiles: number; want: number }[] = [
    { desc: 'ulimit -n 256', openFiles: 256, want: 96 },
    { desc: 'the common default 1024', openFiles: 1024, want: 480 },
    { desc: 'an odd remainder rounds down', openFiles: 1025, want: 480 },
    { desc: 'systemd 524288', openFiles: 524_288, want: 262_112 },
    { desc: 'just above the reserve', openFiles: 66, want: 1 },
    { desc: 'the reserve itself', openFiles: 64, want: 1 },
    { desc: 'below the reserve', openFiles: 10, want: 1 },
  ];
  for (const row of rows) assert.equal(connectionsForOpenFiles(row.openFiles), row.want, row.desc);
});

test('clientConnectionLimit: an explicit value is split across workers (ceil), the derived one is per process', () => {
  const rows: { desc: string; configured: number | undefined; processes: number; openFiles: number | undefined; max: number | undefined; derived: boolean }[] = [
    { desc: 'explicit, one process', configured: 5, processes: 1, openFiles: 1024, max: 5, derived: false },
    { desc: 'explicit, split evenly', configured: 10, processes: 2, openFiles: 1024, max: 5, derived: false },
    { desc: 'explicit, split rounds up', configured: 5, processes: 2, openFiles: 1024, max: 3, derived: false },
    { desc: 'explicit, fewer than the workers: 1 each', configured: 1, processes: 4, openFiles: undefined, max: 1, derived: false },
    { desc: 'explicit wins over an unknown open-files limit', configured: 7, processes: 1, openFiles: undefined, max: 7, derived: false },
    { desc: 'derived, one process', configured: undefined, processes: 1, openFiles: 256, max: 96, derived: true },
    { desc: 'derived is not split across workers', configured: undefined, processes: 4, openFiles: 256, max: 96, derived: true },
    { desc: 'no open-files limit: no limit', configured: undefined, processes: 1, openFiles: undefined, max: undefined, derived: true },
  ];
  for (const row of rows) {
    const limit = clientConnectionLimit(row.configured, row.processes, row.openFiles);
    assert.equal(limit.max, row.max, row.desc);
    assert.equal(limit.derived, row.derived, row.desc);
  }
});

test('describeClientConnectionLimit: says the number, where it comes from, and how to choose another', () => {
  assert.equal(
    describeClientConnectionLimit(clientConnectionLimit(undefined, 1, 256), false),
    'accepting at most 96 client connections (half of the open-files limit 256; set server.max_connections to choose)',
  );
  assert.equal(describeClientConnectionLimit(clientConnectionLimit(5, 1, 256), false), 'accepting at most 5 client connections (server.max_connections)');
  assert.equal(
    describeClientConnectionLimit(clientConnectionLimit(5, 2, 256), true),
    'accepting at most 3 client connections in each worker (server.max_connections = 5 over 2 workers)',
  );
  assert.equal(
    describeClientConnectionLimit(clientConnectionLimit(undefined, 1, undefined), false),
    'accepting client connections without a limit (the open-files limit is unlimited or unknown; set server.max_connections to choose)',
  );
});

test('readOpenFilesLimit: the soft limit a process runs under (ulimit -n 300 → 300)', { skip: process.platform !== 'linux' && 'Linux only', timeout: 10_000 }, async () => {
  const module = new URL('../../src/server/open-files-limit.js', import.meta.url).href;
  const script = `import(${JSON.stringify(module)}).then(async (m) => console.log(await m.readOpenFilesLimit()))`;
  const { stdout } = await run('/bin/sh', ['-c', 'ulimit -n 300 && exec "$@"', 'sh', process.execPath, '-e', script], { timeout: 10_000 });
  assert.equal(stdout.trim(), '300');
});
