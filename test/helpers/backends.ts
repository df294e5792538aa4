/**
 * Real HTTP backends on 127.0.0.1 for end-to-end tests. They live in
 * src/testing.ts (`switchyard/testing`) so plugin authors get the same
 * helpers; re-exported here for Switchyard's own tests.
 */
export { freePort, startBackend, startBackends, type TestBackend } from '../../src/testing.js';
