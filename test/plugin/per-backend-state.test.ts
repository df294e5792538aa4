/** PerBackendState: per-URL plugin state forgets the URLs no instance still using it lists, when one closes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PerBackendState } from '../../src/index.js';

const api = (...urls: string[]) => ({ backendUrls: new Set(urls) });

test('PerBackendState: a failed build forgets nothing the running instance lists; a drained old instance takes its dropped URLs along', () => {
  const state = new PerBackendState<number>();
  const running = {};
  state.use(running, api('http://a', 'http://b'));
  state.byUrl.set('http://a', 1).set('http://b', 2);

  // A reload that drops b but fails to build: its instance is closed first.
  const failed = {};
  state.use(failed, api('http://a'));
  assert.deepEqual(state.release(failed), []);
  assert.deepEqual([...state.byUrl.keys()], ['http://a', 'http://b']);

  // A reload that drops b and goes live: b stays while the old instance drains (it may still record into it).
  const next = {};
  state.use(next, api('http://a', 'http://c'));
  state.byUrl.set('http://c', 3);
  assert.deepEqual([...state.byUrl.keys()], ['http://a', 'http://b', 'http://c']);
  assert.deepEqual(state.release(running), ['http://b']);
  assert.deepEqual([...state.byUrl.entries()], [['http://a', 1], ['http://c', 3]]);

  // The last user gone: nothing is listed any more.
  assert.deepEqual(state.release(next), ['http://a', 'http://c']);
  assert.equal(state.byUrl.size, 0);
});
