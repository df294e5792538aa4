/**
 * `npm start`: three demo backends on 127.0.0.1:8001-8003, then `lb run` on
 * the shipped lb.toml (as a child process, through bin/lb with its node
 * flags, exactly as a user would run it).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startDemoBackends } from './backends.js';

const backends = await startDemoBackends([8001, 8002, 8003]);
console.log(`demo backends listening on ${backends.map((b) => `127.0.0.1:${b.port}`).join(', ')}`);

const bin = fileURLToPath(new URL('../../bin/lb', import.meta.url));
const config = fileURLToPath(new URL('../../lb.toml', import.meta.url));
// Through sh, so a copy of the tree that lost the file's exec bit still starts.
const lb = spawn('sh', [bin, 'run', '-c', config, ...process.argv.slice(2)], { stdio: 'inherit' });
console.log('Switchyard starting on http://127.0.0.1:8080 (admin http://127.0.0.1:9090) — try: curl localhost:8080');

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => lb.kill(signal));
}
lb.on('exit', (code) => {
  for (const b of backends) b.server.close();
  process.exit(code ?? 0);
});
