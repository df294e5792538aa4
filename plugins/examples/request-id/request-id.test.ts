/**
 * request-id's own test, as its author would write it: a real Switchyard
 * and a real backend from `switchyard/testing`, the plugin loaded by path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startBackend, startSwitchyard } from 'switchyard/testing';
import { chooseRequestId } from './index.js';

const PLUGIN = fileURLToPath(new URL('./index.js', import.meta.url));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

test('chooseRequestId keeps a sane incoming id and replaces anything else', () => {
  const rows: { desc: string; incoming: string | string[] | undefined; trust: boolean; kept: boolean }[] = [
    { desc: 'sane id', incoming: 'req-42.a:b_c', trust: true, kept: true },
    { desc: 'sane id, not trusted', incoming: 'req-42', trust: false, kept: false },
    { desc: 'none', incoming: undefined, trust: true, kept: false },
    { desc: 'spaces', incoming: 'a b', trust: true, kept: false },
    { desc: 'too long', incoming: 'x'.repeat(129), trust: true, kept: false },
    { desc: 'sent twice', incoming: ['a', 'b'], trust: true, kept: false },
  ];
  for (const { desc, incoming, trust, kept } of rows) {
    const id = chooseRequestId(incoming, trust);
    if (kept) assert.equal(id, incoming, desc);
    else assert.match(id, UUID, desc);
  }
});

test('the backend and the client see the same id', async (t) => {
  const backend = await startBackend('echo', (req, res) => res.end(String(req.headers['x-trace'])));
  const lb = await startSwitchyard({
    toml: `
      [server]
      listen = "127.0.0.1:0"
      [pools.web]
      backends = [{ url = "${backend.url}" }]
      [[pipeline]]
      plugin = "${PLUGIN}"
      header = "X-Trace"
    `,
  });
  t.after(async () => {
    await lb.close();
    await backend.close();
  });

  const fresh = await fetch(lb.url);
  const seenByBackend = await fresh.text();
  assert.match(seenByBackend, UUID);
  assert.equal(fresh.headers.get('x-trace'), seenByBackend);

  const kept = await fetch(lb.url, { headers: { 'x-trace': 'from-the-edge-1' } });
  assert.equal(await kept.text(), 'from-the-edge-1');
  assert.equal(kept.headers.get('x-trace'), 'from-the-edge-1');

  const replaced = await fetch(lb.url, { headers: { 'x-trace': 'bad id\u00e9' } });
  assert.match(await replaced.text(), UUID);
});
