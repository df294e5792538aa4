/**
 * The SDK as a plugin author meets it: a fresh project whose node_modules
 * holds only `switchyard` (a link to this package, as `npm install <path>`
 * makes), a strict NodeNext tsconfig, and plugins written with
 * definePlugin. The package's emitted .d.ts must type-check them — and must
 * reject a plugin that breaks the contract.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');

const GOOD = `
import { definePlugin, LbError, parseDuration, durationSchema, type Candidate, type HealthTarget, type PluginApi, type RequestContext, type StrategyDefinition } from 'switchyard';
import { startBackends, startSwitchyard, type RunningSwitchyard } from 'switchyard/testing';

interface RequestIdConfig { header: string }

export const requestId = definePlugin({
  name: 'request-id',
  kind: 'middleware',
  schema: { type: 'object', properties: { header: { type: 'string', default: 'x-request-id' } } },
  create(config: RequestIdConfig, api: PluginApi) {
    let n = 0;
    return {
      async handle(ctx: RequestContext, next: () => Promise<void>) {
        const id = (ctx.headers[config.header] as string | undefined) ?? \`\${api.pluginName}-\${++n}\`;
        ctx.headers[config.header] = id;
        await next();
        if (ctx.response) ctx.response.headers[config.header] = id;
      },
    };
  },
});

export const first = definePlugin({
  name: 'first-healthy',
  kind: 'strategy',
  create() {
    return { pick: (candidates: readonly Candidate[]) => candidates[0] };
  },
}) satisfies StrategyDefinition;

export const check = definePlugin({
  name: 'always',
  kind: 'health',
  schema: { type: 'object', properties: { slow: durationSchema('How long to wait.', '0ms') } },
  create(config: { slow: string }) {
    const ms = parseDuration(config.slow);
    return {
      async check(target: HealthTarget, signal: AbortSignal) {
        if (signal.aborted) throw new LbError('LB_ERR_UPSTREAM_TIMEOUT');
        return { healthy: target.port > 0 && ms >= 0, reason: 'fine' };
      },
    };
  },
});

export async function smoke(): Promise<RunningSwitchyard> {
  const [b] = await startBackends(1);
  return startSwitchyard({ toml: \`[pools.web]\\nbackends = [{ url = "\${b!.url}" }]\` });
}
`;

const BAD = `
import { definePlugin } from 'switchyard';
export default definePlugin({
  name: 'broken',
  kind: 'strategy',
  create() {
    return { pick: (candidates) => candidates[0]?.url }; // a URL string, not a Candidate
  },
});
`;

async function project(source: string): Promise<{ dir: string; code: number; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-sdk-'));
  await mkdir(join(dir, 'node_modules'));
  await symlink(REPO, join(dir, 'node_modules', 'switchyard'), 'dir');
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'my-plugin', type: 'module', private: true }));
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true },
      include: ['*.ts'],
    }),
  );
  await writeFile(join(dir, 'plugin.ts'), source);
  return new Promise((resolve) => {
    execFile(process.execPath, [TSC, '-p', dir], { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ dir, code: err ? ((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr });
    });
  });
}

const ROOT_ONLY = GOOD.replace(/^import .*switchyard\/testing.*$/m, '').replace(/export async function smoke[\s\S]*$/, '');

test('definePlugin in a fresh plugin project', async (t) => {
  // Three independent tsc runs (a few seconds each), side by side.
  const [good, rootOnly, bad] = await Promise.all([project(GOOD), project(ROOT_ONLY), project(BAD)]);
  t.after(() => Promise.all([good, rootOnly, bad].map((p) => rm(p.dir, { recursive: true, force: true }))));

  await t.test('a project with only switchyard linked type-checks plugins of every kind and switchyard/testing', () => {
    assert.equal(good.code, 0, good.output);
  });
  await t.test('importing only the root entry needs no @types/node of its own', () => {
    // switchyard/testing pulls in pino, whose types reference Node's; the root entry must not rely on that.
    assert.equal(rootOnly.code, 0, rootOnly.output);
  });
  await t.test('a plugin that breaks the contract fails, and only its own file is blamed', () => {
    assert.notEqual(bad.code, 0);
    assert.match(bad.output, /^plugin\.ts\(6,\d+\): error TS2322/m, bad.output);
    assert.deepEqual(bad.output.split('\n').filter((l) => / error TS/.test(l) && !l.startsWith('plugin.ts')), []);
  });
});
