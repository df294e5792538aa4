/**
 * src/proxy/forwarded-headers.ts, the pure parts: which header names are a
 * forwarding header spelled with `_` (the request guard drops those), and
 * the Forwarded element. The headers on the wire are tested end to end in
 * test/hardening/headers.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardedElement, isForwardingHeaderAlias } from '../../src/proxy/forwarded-headers.js';

const names: { name: string; alias: boolean }[] = [
  { name: 'X_Forwarded_For', alias: true },
  { name: 'x_forwarded_for', alias: true },
  { name: 'X-Forwarded_For', alias: true },
  { name: 'X_Forwarded-For', alias: true },
  { name: 'X_FORWARDED_HOST', alias: true },
  { name: 'x-forwarded_proto', alias: true },
  { name: 'X-Forwarded-For', alias: false },
  { name: 'x-forwarded-proto', alias: false },
  { name: 'X_Forwarded_Fox', alias: false },
  { name: 'X_Forwarded_Port', alias: false },
  { name: 'X_Forwarded', alias: false },
  { name: 'Accept_Encoding', alias: false },
  { name: 'accept-encoding', alias: false },
  { name: 'Transfer_Encoding', alias: false },
  { name: '', alias: false },
];
for (const { name, alias } of names) {
  test(`isForwardingHeaderAlias(${JSON.stringify(name)}) → ${alias}`, () => {
    assert.equal(isForwardingHeaderAlias(name), alias);
  });
}

test('forwardedElement: IPv6 quoted and bracketed, a host with a port quoted', () => {
  assert.equal(forwardedElement('::1', 'lb.example:8080', 'https'), 'for="[::1]";host="lb.example:8080";proto=https');
  assert.equal(forwardedElement('', undefined, 'http'), 'for=unknown;proto=http');
});
