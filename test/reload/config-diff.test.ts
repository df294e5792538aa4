/** diffConfigs / describeChanges: what a reload changes, from two validated configs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.js';
import { describeChanges, diffConfigs, isUnchanged } from '../../src/server/config-diff.js';

const BASE = `
[server]
listen = "127.0.0.1:8080"

[pools.web]
strategy = "round-robin"
backends = [{ url = "http://127.0.0.1:8001" }, { url = "http://127.0.0.1:8002" }]

[pools.api]
backends = [{ url = "http://127.0.0.1:8101" }]

[[routes]]
name = "api"
match = { path_prefix = "/api/" }
pool = "api"

[[routes]]
name = "web"
match = { path_prefix = "/" }
pool = "web"

[[pipeline]]
plugin = "headers"
request.set = { "X-A" = "1" }
`;

const load = (text: string) => loadConfigText(text, '/tmp/switchyard-diff/lb.toml');

const cases: { desc: string; edit: (s: string) => string; expect: string }[] = [
  { desc: 'comments only', edit: (s) => `# a comment\n${s}`, expect: 'no effective change' },
  {
    desc: 'a backend replaced',
    edit: (s) => s.replace('8002', '8003'),
    expect: 'pools ~web; backends +web http://127.0.0.1:8003, -web http://127.0.0.1:8002',
  },
  {
    desc: 'a weight changed',
    edit: (s) => s.replace('{ url = "http://127.0.0.1:8001" }', '{ url = "http://127.0.0.1:8001", weight = 3 }'),
    expect: 'pools ~web; backends ~web http://127.0.0.1:8001',
  },
  { desc: 'a strategy changed', edit: (s) => s.replace('"round-robin"', '"p2c"'), expect: 'pools ~web; plugins ~pools.web.strategy' },
  {
    desc: 'a pool and its route added',
    edit: (s) =>
      s.replace('[[routes]]\nname = "api"', '[pools.img]\nbackends = [{ url = "http://127.0.0.1:8201" }]\n\n[[routes]]\nname = "img"\nmatch = { path_prefix = "/img/" }\npool = "img"\n\n[[routes]]\nname = "api"'),
    expect: 'routes +img; pools +img; backends +img http://127.0.0.1:8201',
  },
  {
    desc: 'a route removed',
    edit: (s) => s.replace('[[routes]]\nname = "api"\nmatch = { path_prefix = "/api/" }\npool = "api"\n', '').replace('[pools.api]\nbackends = [{ url = "http://127.0.0.1:8101" }]\n', ''),
    expect: 'routes -api; pools -api; backends -api http://127.0.0.1:8101',
  },
  { desc: 'plugin options changed', edit: (s) => s.replace('"X-A" = "1"', '"X-A" = "2"'), expect: 'plugins ~pipeline[0]' },
  {
    desc: 'a plugin added',
    edit: (s) => `${s}\n[[pipeline]]\nplugin = "headers"\nresponse.remove = ["Server"]\n`,
    expect: 'plugins +pipeline[1]',
  },
  { desc: 'listen and idle timeout', edit: (s) => s.replace('8080"', '8081"\nidle_timeout = "5s"'), expect: 'settings server.listen, server.idle_timeout' },
];

for (const { desc, edit, expect } of cases) {
  test(`diff: ${desc}`, async () => {
    const before = await load(BASE);
    const after = await load(edit(BASE));
    const changes = diffConfigs(before, after);
    assert.equal(describeChanges(changes), expect);
    assert.equal(isUnchanged(changes), expect === 'no effective change');
  });
}

test('diff: the structured form lists added and removed separately', async () => {
  const changes = diffConfigs(await load(BASE), await load(BASE.replace('8002', '8003')));
  assert.deepEqual(changes.backends, { added: ['web http://127.0.0.1:8003'], removed: ['web http://127.0.0.1:8002'], changed: [] });
  assert.deepEqual(changes.routes, { added: [], removed: [], changed: [] });
  assert.deepEqual(changes.settings, []);
});
