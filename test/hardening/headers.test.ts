/**
 * Hop-by-hop headers in both directions (including those a Connection
 * header nominates), and X-Forwarded-* / Forwarded: replaced for untrusted
 * peers, extended for trusted_proxies.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { readRequestHead, sendRaw, startCapturingBackend, startRawBackend, type CapturingBackend } from '../helpers/raw-http.js';

const CLIENT_IP_PLUGIN = `export default {
  name: 'client-ip',
  kind: 'middleware',
  create() {
    return { handle: async (ctx, next) => { ctx.headers['x-seen-client-ip'] = ctx.clientIp; await next(); } };
  },
};
`;

describe('hop-by-hop headers', () => {
  let backend: CapturingBackend;
  let raw: Awaited<ReturnType<typeof startRawBackend>>;
  let lb: RunningSwitchyard;

  before(async () => {
    backend = await startCapturingBackend();
    raw = await startRawBackend(async (socket) => {
      while (!socket.destroyed) {
        await readRequestHead(socket);
        socket.write(
          'HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=5, max=7\r\n' +
            'Proxy-Connection: keep-alive\r\nTrailer: X-T\r\nUpgrade: h2c\r\nTE: trailers\r\nX-Public: yes\r\nTransfer-Encoding: chunked\r\n\r\n' +
            '2\r\nok\r\n0\r\nX-T: 1\r\n\r\n',
        );
        socket.resume();
      }
    });
    lb = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.web]
        backends = [{ url = "${backend.url}" }]
        [pools.raw]
        backends = [{ url = "${raw.url}" }]
        [[routes]]
        match = { path_prefix = "/raw" }
        pool = "raw"
        [[routes]]
        pool = "web"
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await backend?.close();
    await raw?.close();
  });

  it('request: hop-by-hop and Connection-nominated headers do not reach the backend', async () => {
    const result = await sendRaw(
      lb.port,
      'GET /req HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret, Host\r\nX-Secret: 1\r\nKeep-Alive: timeout=99\r\n' +
        'Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\n',
      { responses: 1 },
    );
    assert.equal(result.responses[0]?.status, 200, result.text);
    const seen = backend.seen.at(-1)!;
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const hop of ['x-secret', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']) {
      assert.ok(!names.includes(hop), `${hop} was forwarded: ${JSON.stringify(seen.rawHeaders)}`);
    }
    assert.equal(seen.headers['x-kept'], 'yes');
    assert.equal(seen.headers.host, 'a', 'Connection cannot strip Host');
  });

  it('response: hop-by-hop and Connection-nominated headers do not reach the client', async () => {
    const result = await sendRaw(lb.port, 'GET /raw HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1 });
    const response = result.responses[0]!;
    assert.equal(response.status, 200, result.text);
    assert.equal(response.body, 'ok');
    assert.equal(response.headers['x-public'], 'yes');
    for (const hop of ['x-internal', 'proxy-connection', 'trailer', 'upgrade', 'te']) {
      assert.equal(response.headers[hop], undefined, `${hop} reached the client: ${response.head}`);
    }
    assert.notEqual(response.headers['keep-alive'], 'timeout=5, max=7', 'the backend Keep-Alive is not passed on');
    assert.doesNotMatch(response.headers.connection ?? '', /x-internal/i);
  });
});

describe('X-Forwarded-* and Forwarded (forwarded_header = true)', () => {
  let backend: CapturingBackend;
  let untrusted: RunningSwitchyard;
  let trusted: RunningSwitchyard;

  const toml = (trustedProxies: string) => `
    [server]
    listen = "127.0.0.1:0"
    trusted_proxies = ${trustedProxies}
    forwarded_header = true
    [pools.web]
    backends = [{ url = "${backend.url}" }]
    [[pipeline]]
    plugin = "./client-ip.mjs"
  `;
  const forged =
    'GET / HTTP/1.1\r\nHost: lb.example:8080\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: evil.example\r\n' +
    'X-Forwarded-Proto: https\r\nForwarded: for=203.0.113.9;proto=https\r\n\r\n';

  before(async () => {
    backend = await startCapturingBackend();
    untrusted = await startSwitchyard({ toml: toml('[]'), files: { 'client-ip.mjs': CLIENT_IP_PLUGIN } });
    trusted = await startSwitchyard({ toml: toml('["127.0.0.0/8"]'), files: { 'client-ip.mjs': CLIENT_IP_PLUGIN } });
  });
  after(async () => {
    await untrusted?.close();
    await trusted?.close();
    await backend?.close();
  });

  it('an untrusted peer: every forwarding header is replaced', async () => {
    const result = await sendRaw(untrusted.port, forged, { responses: 1 });
    assert.equal(result.responses[0]?.status, 200, result.text);
    const { headers } = backend.seen.at(-1)!;
    assert.equal(headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(headers['x-forwarded-host'], 'lb.example:8080');
    assert.equal(headers['x-forwarded-proto'], 'http');
    assert.equal(headers.forwarded, 'for=127.0.0.1;host="lb.example:8080";proto=http');
    assert.equal(headers['x-seen-client-ip'], '127.0.0.1');
  });

  it('a trusted proxy: the chain is extended and the client is the nearest untrusted hop', async () => {
    const result = await sendRaw(trusted.port, forged, { responses: 1 });
    assert.equal(result.responses[0]?.status, 200, result.text);
    const { headers } = backend.seen.at(-1)!;
    assert.equal(headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(headers['x-forwarded-host'], 'evil.example', "the trusted proxy's X-Forwarded-Host is kept");
    assert.equal(headers['x-forwarded-proto'], 'https');
    assert.equal(headers.forwarded, 'for=203.0.113.9;proto=https, for=127.0.0.1;host="lb.example:8080";proto=http');
    assert.equal(headers['x-seen-client-ip'], '203.0.113.9');
  });

  it('a trusted proxy that sent no forwarding headers: they are started', async () => {
    const result = await sendRaw(trusted.port, 'GET / HTTP/1.1\r\nHost: lb.example\r\n\r\n', { responses: 1 });
    assert.equal(result.responses[0]?.status, 200, result.text);
    const { headers } = backend.seen.at(-1)!;
    assert.equal(headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(headers.forwarded, 'for=127.0.0.1;host=lb.example;proto=http');
  });
});

describe('Forwarded off (the default): X-Forwarded-* only, and a forged Forwarded never passes', () => {
  let backend: CapturingBackend;
  let untrusted: RunningSwitchyard;
  let trusted: RunningSwitchyard;
  const toml = (trustedProxies: string) => `
    [server]
    listen = "127.0.0.1:0"
    trusted_proxies = ${trustedProxies}
    [pools.web]
    backends = [{ url = "${backend.url}" }]
  `;
  const withForwarded = 'GET / HTTP/1.1\r\nHost: lb.example\r\nForwarded: for=203.0.113.9;proto=https\r\n\r\n';

  before(async () => {
    backend = await startCapturingBackend();
    untrusted = await startSwitchyard({ toml: toml('[]') });
    trusted = await startSwitchyard({ toml: toml('["127.0.0.0/8"]') });
  });
  after(async () => {
    await untrusted?.close();
    await trusted?.close();
    await backend?.close();
  });

  it('no Forwarded is added', async () => {
    const result = await sendRaw(untrusted.port, 'GET / HTTP/1.1\r\nHost: lb.example\r\n\r\n', { responses: 1 });
    assert.equal(result.responses[0]?.status, 200, result.text);
    const { headers } = backend.seen.at(-1)!;
    assert.equal(headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(headers.forwarded, undefined);
  });

  it("an untrusted client's Forwarded is removed", async () => {
    const result = await sendRaw(untrusted.port, withForwarded, { responses: 1 });
    assert.equal(result.responses[0]?.status, 200, result.text);
    assert.equal(backend.seen.at(-1)!.headers.forwarded, undefined);
  });

  it("a trusted proxy's Forwarded is passed on as it came", async () => {
    const result = await sendRaw(trusted.port, withForwarded, { responses: 1 });
    assert.equal(result.responses[0]?.status, 200, result.text);
    assert.equal(backend.seen.at(-1)!.headers.forwarded, 'for=203.0.113.9;proto=https');
  });

  // CGI, WSGI, PHP and Rack read X_Forwarded_For as X-Forwarded-For and merge the two, the forged value first.
  const forgedWithUnderscores =
    'GET / HTTP/1.1\r\nHost: lb.example\r\nX_Forwarded_For: 6.6.6.6\r\nx-forwarded_for: 6.6.6.7\r\nX_FORWARDED_HOST: evil.example\r\n' +
    'X-Forwarded_Proto: https\r\nX_Custom_Header: kept\r\nX_Forwarded_Forx: kept too\r\n\r\n';
  for (const which of ['untrusted', 'trusted'] as const) {
    it(`${which} peer: forwarding headers spelled with _ are dropped; other _ names pass`, async () => {
      const lb = which === 'untrusted' ? untrusted : trusted;
      const result = await sendRaw(lb.port, forgedWithUnderscores, { responses: 1 });
      assert.equal(result.responses[0]?.status, 200, result.text);
      const seen = backend.seen.at(-1)!;
      const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      assert.deepEqual(
        names.filter((n) => ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto'].includes(n.replaceAll('_', '-'))),
        ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto'],
        `only the proxy's own spellings reach the backend: ${JSON.stringify(seen.rawHeaders)}`,
      );
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(seen.headers['x-forwarded-host'], 'lb.example');
      assert.equal(seen.headers['x-forwarded-proto'], 'http');
      assert.equal(seen.headers['x_custom_header'], 'kept');
      assert.equal(seen.headers['x_forwarded_forx'], 'kept too');
      assert.doesNotMatch(seen.rawHeaders.join('\n'), /6\.6\.6|evil/);
    });
  }
});
