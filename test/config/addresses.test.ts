/** Listen addresses and backend origins: what a pattern cannot check. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backendUrlProblem,
  hostProblem,
  listenAddressProblem,
  listenersCollide,
  parseListen,
} from '../../src/config/addresses.js';

const listenRows: { text: string; problem?: RegExp }[] = [
  { text: '127.0.0.1:8080' },
  { text: '127.0.0.1:0' },
  { text: '127.0.0.1:65535' },
  { text: ':8080' },
  { text: '0.0.0.0:80' },
  { text: '[::1]:8080' },
  { text: '[::]:8080' },
  { text: 'localhost:8080' },
  { text: 'lb-1.internal:8080' },
  { text: 'my_service:8080' },
  { text: '127.0.0.1:65536', problem: /^port 65536 is out of range: write a port from 1 to 65535 \(or 0 for any free port\)$/ },
  { text: '127.0.0.1:99999', problem: /port 99999 is out of range/ },
  { text: '999.1.1.1:8080', problem: /^"999\.1\.1\.1" is not an IPv4 address: write four numbers from 0 to 255/ },
  { text: '1.2.3:8080', problem: /"1\.2\.3" is not an IPv4 address/ },
  { text: '010.0.0.1:8080', problem: /not an IPv4 address.*without leading zeros/ },
  { text: "[:::1]:8080", problem: /^"\[:::1\]" is not an IPv6 address/ },
  { text: '[1.2.3.4]:8080', problem: /is not an IPv6 address/ },
  { text: '-lb.internal:8080', problem: /^"-lb\.internal" is not a valid host name/ },
  { text: 'lb..internal:8080', problem: /is not a valid host name/ },
  // Shape errors are the pattern's to report, with the description of the key.
  { text: 'localhost' },
  { text: '::1:8080' },
];

for (const row of listenRows) {
  test(`listenAddressProblem("${row.text}") ${row.problem ? 'refuses it' : 'has nothing to add'}`, () => {
    const problem = listenAddressProblem(row.text);
    if (row.problem === undefined) assert.equal(problem, undefined);
    else assert.match(problem ?? '(none)', row.problem);
  });
}

const backendRows: { text: string; problem?: RegExp }[] = [
  { text: 'http://127.0.0.1:8001' },
  { text: 'http://127.0.0.1:8001/' },
  { text: 'https://api.internal' },
  { text: 'http://[::1]:8001' },
  { text: 'http://[::1]' },
  { text: 'http://127.0.0.1:99999', problem: /^port 99999 is out of range: write a port from 1 to 65535$/ },
  { text: 'http://127.0.0.1:0', problem: /^port 0 cannot be connected to/ },
  { text: 'http://127.0.0.1:', problem: /^"" is not a port/ },
  { text: 'http://127.0.0.1:http', problem: /^"http" is not a port/ },
  { text: 'http://999.1.1.1:80', problem: /"999\.1\.1\.1" is not an IPv4 address/ },
  { text: 'http://[::g]:80', problem: /is not an IPv6 address/ },
  { text: 'http://:80', problem: /names no host/ },
  { text: 'http://user:secret@127.0.0.1:80', problem: /must not carry a user name or password/ },
  // Not the shape of an origin: the pattern reports it.
  { text: 'ftp://127.0.0.1:21' },
  { text: 'http://127.0.0.1:8001/path' },
];

for (const row of backendRows) {
  test(`backendUrlProblem("${row.text}") ${row.problem ? 'refuses it' : 'has nothing to add'}`, () => {
    const problem = backendUrlProblem(row.text);
    if (row.problem === undefined) assert.equal(problem, undefined);
    else assert.match(problem ?? '(none)', row.problem);
  });
}

test('hostProblem: a trailing dot (a fully qualified name) is fine, a label over 63 characters is not', () => {
  assert.equal(hostProblem('lb.example.com.'), undefined);
  assert.match(hostProblem(`${'a'.repeat(64)}.example.com`) ?? '', /not a valid host name/);
});

test('parseListen: host and port; ":PORT" means every address', () => {
  assert.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListen('[::1]:9090'), { host: '::1', port: 9090 });
  assert.deepEqual(parseListen(':80'), { host: '::', port: 80 });
});

const collisions: { desc: string; a: string; b: string; collide: boolean }[] = [
  { desc: 'the same address', a: '127.0.0.1:8080', b: '127.0.0.1:8080', collide: true },
  { desc: 'every address and one of them', a: ':8080', b: '127.0.0.1:8080', collide: true },
  { desc: 'every IPv4 address and an IPv4 one', a: '0.0.0.0:8080', b: '127.0.0.1:8080', collide: true },
  { desc: 'every IPv4 address and an IPv6 one', a: '0.0.0.0:8080', b: '[::1]:8080', collide: false },
  { desc: 'two addresses, one port', a: '127.0.0.1:8080', b: '127.0.0.2:8080', collide: false },
  { desc: 'two ports', a: '127.0.0.1:8080', b: '127.0.0.1:9090', collide: false },
  { desc: 'port 0 twice (two free ports)', a: '127.0.0.1:0', b: '127.0.0.1:0', collide: false },
];

for (const row of collisions) {
  test(`listenersCollide: ${row.desc} → ${row.collide}`, () => {
    assert.equal(listenersCollide(parseListen(row.a), parseListen(row.b)), row.collide);
    assert.equal(listenersCollide(parseListen(row.b), parseListen(row.a)), row.collide);
  });
}
