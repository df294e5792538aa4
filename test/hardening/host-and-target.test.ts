/**
 * Host, request-target and version checks over raw sockets, and routing on
 * the normalized target: a route and the backend always agree on the path.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { sendRaw, startCapturingBackend, type CapturingBackend } from '../helpers/raw-http.js';

describe('Host, request-target and version', () => {
  let admin: CapturingBackend;
  let web: CapturingBackend;
  let vhost: CapturingBackend;
  let lb: RunningSwitchyard;
  const hits = () => admin.seen.length + web.seen.length + vhost.seen.length;

  before(async () => {
    [admin, web, vhost] = await Promise.all([startCapturingBackend(), startCapturingBackend(), startCapturingBackend()]);
    lb = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.admin]
        backends = [{ url = "${admin.url}" }]
        [pools.web]
        backends = [{ url = "${web.url}" }]
        [pools.vhost]
        backends = [{ url = "${vhost.url}" }]
        [[routes]]
        match = { host = "vhost.example" }
        pool = "vhost"
        [[routes]]
        match = { host = "*.wild.example" }
        pool = "vhost"
        [[routes]]
        match = { host = "fqdn.example." }
        pool = "vhost"
        [[routes]]
        match = { path_prefix = "/admin" }
        pool = "admin"
        [[routes]]
        match = { path_prefix = "/" }
        pool = "web"
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await Promise.all([admin?.close(), web?.close(), vhost?.close()]);
  });

  const REFUSED: { desc: string; request: string; status: number }[] = [
    { desc: 'HTTP/1.1 without Host', request: 'GET / HTTP/1.1\r\n\r\n', status: 400 },
    { desc: 'empty Host', request: 'GET / HTTP/1.1\r\nHost: \r\n\r\n', status: 400 },
    { desc: 'Host with a space', request: 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', status: 400 },
    { desc: 'Host with a path', request: 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', status: 400 },
    { desc: 'Host with userinfo', request: 'GET / HTTP/1.1\r\nHost: user@a\r\n\r\n', status: 400 },
    { desc: 'Host with a bad port', request: 'GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n', status: 400 },
    { desc: 'two Host fields', request: 'GET / HTTP/1.1\r\nHost: vhost.example\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'HTTP/0.9', request: 'GET /\r\n\r\n', status: 400 },
    { desc: 'HTTP/2.0 request line', request: 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', status: 505 },
    { desc: 'HTTP/1.2', request: 'GET / HTTP/1.2\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'HTTP/3.0', request: 'GET / HTTP/3.0\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'asterisk-form', request: 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'authority-form on GET', request: 'GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'absolute-form with another scheme', request: 'GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'absolute-form with userinfo', request: 'GET http://u@vhost.example/x HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'absolute-form with a bad authority', request: 'GET http://a%20b/x HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'CONNECT', request: 'CONNECT vhost.example:443 HTTP/1.1\r\nHost: vhost.example:443\r\n\r\n', status: 405 },
    { desc: 'path above the root', request: 'GET /../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'dot-dot with path parameter', request: 'GET /public/..;/admin HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'dot-dot beside an encoded slash', request: 'GET /public/..%2Fadmin HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'raw backslash', request: 'GET /public\\..\\admin HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'encoded NUL', request: 'GET /a%00 HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'bad escape', request: 'GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'fragment', request: 'GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
    { desc: 'non-ASCII byte in the path', request: 'GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
  ];
  for (const { desc, request, status } of REFUSED) {
    it(`${desc}: ${status}, connection closed, nothing forwarded`, async () => {
      const before = hits();
      const result = await sendRaw(lb.port, `${request}GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n`);
      assert.deepEqual(result.responses.map((r) => r.status), [status], result.text);
      assert.ok(result.closed, 'connection closed');
      assert.equal(hits(), before, 'no backend saw anything');
    });
  }

  const ROUTED: { desc: string; request: string; backend: () => CapturingBackend; url: string; host?: string }[] = [
    { desc: 'dot segments resolved before routing', request: 'GET /public/../admin HTTP/1.1\r\nHost: a\r\n\r\n', backend: () => admin, url: '/admin' },
    { desc: 'encoded dot segments too', request: 'GET /public/%2E%2e/admin/x?q=1 HTTP/1.1\r\nHost: a\r\n\r\n', backend: () => admin, url: '/admin/x?q=1' },
    { desc: 'duplicate slashes merged before routing', request: 'GET //admin HTTP/1.1\r\nHost: a\r\n\r\n', backend: () => admin, url: '/admin' },
    { desc: 'encoded unreserved letters decoded before routing', request: 'GET /%61dmin HTTP/1.1\r\nHost: a\r\n\r\n', backend: () => admin, url: '/admin' },
    { desc: 'the query is forwarded as received', request: 'GET /x?a=/../b&c=%2e HTTP/1.1\r\nHost: a\r\n\r\n', backend: () => web, url: '/x?a=/../b&c=%2e' },
    { desc: 'an encoded slash stays encoded', request: 'GET /files/group%2fproject HTTP/1.1\r\nHost: a\r\n\r\n', backend: () => web, url: '/files/group%2Fproject' },
    { desc: 'HTTP/1.0 without Host', request: 'GET /old HTTP/1.0\r\n\r\n', backend: () => web, url: '/old' },
    {
      desc: 'absolute-form: its authority routes and becomes Host',
      request: 'GET http://VHOST.example:8080/x?y HTTP/1.1\r\nHost: other.example\r\n\r\n',
      backend: () => vhost,
      url: '/x?y',
      host: 'VHOST.example:8080',
    },
    { desc: 'Host matched without port, any case', request: 'GET /p HTTP/1.1\r\nHost: Vhost.Example:81\r\n\r\n', backend: () => vhost, url: '/p', host: 'Vhost.Example:81' },
    { desc: 'Host with a trailing dot (fully qualified): routed as without it, forwarded as sent', request: 'GET /fq HTTP/1.1\r\nHost: vhost.example.\r\n\r\n', backend: () => vhost, url: '/fq', host: 'vhost.example.' },
    { desc: 'trailing dot and a port', request: 'GET /fqp HTTP/1.1\r\nHost: VHOST.example.:81\r\n\r\n', backend: () => vhost, url: '/fqp', host: 'VHOST.example.:81' },
    { desc: 'trailing dot on a wildcard route\'s subdomain', request: 'GET /w HTTP/1.1\r\nHost: a.wild.example.\r\n\r\n', backend: () => vhost, url: '/w', host: 'a.wild.example.' },
    { desc: 'a route written with a trailing dot matches the name without it', request: 'GET /cfg HTTP/1.1\r\nHost: fqdn.example\r\n\r\n', backend: () => vhost, url: '/cfg', host: 'fqdn.example' },
    { desc: 'absolute-form with a trailing dot', request: 'GET http://vhost.example./abs HTTP/1.1\r\nHost: other\r\n\r\n', backend: () => vhost, url: '/abs', host: 'vhost.example.' },
    { desc: 'IPv6 literal Host', request: 'GET /v6 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n', backend: () => web, url: '/v6', host: '[::1]:8080' },
  ];
  for (const { desc, request, backend, url, host } of ROUTED) {
    it(`${desc}`, async () => {
      const target = backend();
      const before = target.seen.length;
      const others = hits() - before;
      const result = await sendRaw(lb.port, request, { responses: 1 });
      assert.equal(result.responses[0]?.status, 200, result.text);
      assert.equal(target.seen.length, before + 1, 'the expected backend served it');
      assert.equal(hits() - target.seen.length, others, 'no other backend saw it');
      const seen = target.seen.at(-1)!;
      assert.equal(seen.url, url);
      if (host !== undefined) assert.equal(seen.headers.host, host);
    });
  }
});
