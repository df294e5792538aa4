import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import { locateKeys, positionOf, type SourcePosition } from '../../src/config/toml-locator.js';

// The document from the locator's brief. Note: `routes/1/pool` is on line 28
// and `pipeline/0/rate` on line 32 (lines 27 and 31 hold `routes/1/match` and
// `pipeline/0/plugin`).
const LB = `[server]
listen = "127.0.0.1:8080"

[pools.web]
strategy = "round-robin"
backends = [
  { url = "http://127.0.0.1:8001" },
  { url = "http://127.0.0.1:8002", weight = 2 },
]

[pools.web.health]
checker = "http"
interval = 5

[pools.api]
health = { checker = "tcp", interval = "2s", timeout = "500ms" }

[[routes]]
match = { host = "api.example.test", path_prefix = "/v1/" }
pool = "api"

  [[routes.pipeline]]
  plugin = "headers"
  request.set = { "X-Api" = "1" }

[[routes]]
match = { path_prefix = "/" }
pool = "web"

[[pipeline]]
plugin = "rate-limit"
rate = 100
`;

const REFERENCE_URL = new URL('../../../../shared/lb.reference.toml', import.meta.url);

interface Row {
  desc: string;
  toml: string;
  /** Map key: escaped segments joined by '/'. */
  path: string;
  line: number;
  column: number;
}

const rows: Row[] = [
  // The brief's document.
  { desc: 'table header', toml: LB, path: 'server', line: 1, column: 1 },
  { desc: 'key in table', toml: LB, path: 'server/listen', line: 2, column: 1 },
  { desc: 'dotted table header', toml: LB, path: 'pools/web', line: 4, column: 1 },
  { desc: 'implicit super-table points at its first mention', toml: LB, path: 'pools', line: 4, column: 2 },
  { desc: 'multi-line array key', toml: LB, path: 'pools/web/backends', line: 6, column: 1 },
  { desc: 'array element (inline table)', toml: LB, path: 'pools/web/backends/0', line: 7, column: 3 },
  { desc: 'key in first array element', toml: LB, path: 'pools/web/backends/0/url', line: 7, column: 5 },
  { desc: 'second array element', toml: LB, path: 'pools/web/backends/1', line: 8, column: 3 },
  { desc: 'key in second array element', toml: LB, path: 'pools/web/backends/1/url', line: 8, column: 5 },
  { desc: 'second key in array element', toml: LB, path: 'pools/web/backends/1/weight', line: 8, column: 36 },
  { desc: 'sub-table header', toml: LB, path: 'pools/web/health', line: 11, column: 1 },
  { desc: 'key in sub-table', toml: LB, path: 'pools/web/health/interval', line: 13, column: 1 },
  { desc: 'inline table key', toml: LB, path: 'pools/api/health', line: 16, column: 1 },
  { desc: 'first key in inline table', toml: LB, path: 'pools/api/health/checker', line: 16, column: 12 },
  { desc: 'last key in inline table', toml: LB, path: 'pools/api/health/timeout', line: 16, column: 46 },
  { desc: 'array of tables: the key', toml: LB, path: 'routes', line: 18, column: 3 },
  { desc: 'array of tables: first element at [[', toml: LB, path: 'routes/0', line: 18, column: 1 },
  { desc: 'inline table in array-of-tables element', toml: LB, path: 'routes/0/match/path_prefix', line: 19, column: 38 },
  { desc: 'indented nested array of tables', toml: LB, path: 'routes/0/pipeline/0', line: 22, column: 3 },
  { desc: 'key in nested array of tables', toml: LB, path: 'routes/0/pipeline/0/plugin', line: 23, column: 3 },
  { desc: 'dotted key: first part', toml: LB, path: 'routes/0/pipeline/0/request', line: 24, column: 3 },
  { desc: 'dotted key: last part', toml: LB, path: 'routes/0/pipeline/0/request/set', line: 24, column: 11 },
  { desc: 'quoted key in inline table after dotted key', toml: LB, path: 'routes/0/pipeline/0/request/set/X-Api', line: 24, column: 19 },
  { desc: 'second array-of-tables element', toml: LB, path: 'routes/1', line: 26, column: 1 },
  { desc: 'key in second element', toml: LB, path: 'routes/1/match/path_prefix', line: 27, column: 11 },
  { desc: 'routes/1/pool', toml: LB, path: 'routes/1/pool', line: 28, column: 1 },
  { desc: 'top-level array of tables', toml: LB, path: 'pipeline/0', line: 30, column: 1 },
  { desc: 'pipeline/0/rate', toml: LB, path: 'pipeline/0/rate', line: 32, column: 1 },

  // Keys.
  { desc: 'bare key at root', toml: 'a = 1', path: 'a', line: 1, column: 1 },
  { desc: 'indented with tabs and spaces', toml: '\t  key = 1', path: 'key', line: 1, column: 4 },
  { desc: 'digits and dashes are bare keys', toml: 'x = 0\n1234 = 1\nbare-key_1 = 2', path: 'bare-key_1', line: 3, column: 1 },
  { desc: 'digit-only bare key', toml: 'x = 0\n1234 = 1', path: '1234', line: 2, column: 1 },
  { desc: 'basic quoted key with escapes', toml: 'x = 0\n"say \\"hi\\"" = 1', path: 'say "hi"', line: 2, column: 1 },
  { desc: 'unicode escapes in quoted key are decoded', toml: '"\\u0041\\U0001F600\\tB" = 1', path: 'A\u{1F600}\tB', line: 1, column: 1 },
  { desc: 'key after an escaped quote', toml: 't = { "a\\"b" = 1, c = 2 }', path: 't/c', line: 1, column: 19 },
  { desc: 'literal quoted key keeps backslashes', toml: "x = 0\n'C:\\dir' = 1", path: 'C:\\dir', line: 2, column: 1 },
  { desc: 'empty quoted key', toml: 'x = 0\n"" = 1', path: '', line: 2, column: 1 },
  { desc: 'child of an empty key', toml: 'a = { "" = { b = 1 } }', path: 'a//b', line: 1, column: 14 },
  { desc: '~ in a key is escaped as ~0', toml: '"a~b" = 1', path: 'a~0b', line: 1, column: 1 },
  { desc: '/ in a key is escaped as ~1', toml: '[t]\n"a/b" = 1', path: 't/a~1b', line: 2, column: 1 },
  { desc: 'quoted key with a dot is one segment', toml: 'site."google.com" = true', path: 'site/google.com', line: 1, column: 6 },
  { desc: 'dotted key with spaces around dots', toml: 'a . b = 1', path: 'a/b', line: 1, column: 5 },
  { desc: 'dotted key: intermediate table at first mention', toml: '[t]\nreq.a = 1\nreq.b = 2', path: 't/req', line: 2, column: 1 },
  { desc: 'dotted key: second sibling', toml: '[t]\nreq.a = 1\nreq.b = 2', path: 't/req/b', line: 3, column: 5 },
  { desc: 'dotted key inside inline table', toml: 'a = { b.c = 1 }', path: 'a/b/c', line: 1, column: 9 },

  // Table headers.
  { desc: 'header with spaces inside brackets', toml: '  [ a . b ]\nx = 1', path: 'a/b', line: 1, column: 3 },
  { desc: 'header segment position', toml: '  [ a . b ]\nx = 1', path: 'a', line: 1, column: 5 },
  { desc: 'header with quoted dotted key', toml: '[a.b."quoted.key"]\nx = 1', path: 'a/b/quoted.key', line: 1, column: 1 },
  { desc: 'key under quoted-key header', toml: '[a.b."quoted.key"]\nx = 1', path: 'a/b/quoted.key/x', line: 2, column: 1 },
  { desc: 'header with literal key containing /', toml: "[a.'lit/eral']\nx = 1", path: 'a/lit~1eral/x', line: 2, column: 1 },
  { desc: 'header with trailing comment', toml: '[a] # [b]\nx = 1', path: 'a/x', line: 2, column: 1 },
  { desc: 'explicit header after implicit mention wins', toml: '[a.b]\nx = 1\n[a]\ny = 2', path: 'a', line: 3, column: 1 },
  { desc: 'empty table', toml: '[a]\n[b]', path: 'b', line: 2, column: 1 },

  // Arrays of tables.
  { desc: 'array of tables: second element', toml: '[[r]]\nx = 1\n[[r]]\nx = 2', path: 'r/1', line: 3, column: 1 },
  { desc: 'array of tables: key in second element', toml: '[[r]]\nx = 1\n[[r]]\nx = 2', path: 'r/1/x', line: 4, column: 1 },
  { desc: 'sub-table refers to the last element', toml: '[[r]]\n[r.m]\nh = "a"\n[[r]]\n[r.m]\nh = "b"', path: 'r/1/m/h', line: 6, column: 1 },
  { desc: 'sub-table header of the last element', toml: '[[r]]\n[r.m]\nh = "a"\n[[r]]\n[r.m]\nh = "b"', path: 'r/1/m', line: 5, column: 1 },
  { desc: 'nested arrays count per parent element (1)', toml: '[[a]]\n[[a.b]]\n[[a.b]]\n[[a]]\n[[a.b]]', path: 'a/0/b/1', line: 3, column: 1 },
  { desc: 'nested arrays count per parent element (2)', toml: '[[a]]\n[[a.b]]\n[[a.b]]\n[[a]]\n[[a.b]]', path: 'a/1/b/0', line: 5, column: 1 },
  { desc: 'array of tables with / in its name', toml: '[["a/b"]]\nx = 1', path: 'a~1b/0/x', line: 2, column: 1 },
  { desc: 'array of tables inside a table', toml: '[t]\n[[t.list]]\nx = 1\n[[t.list]]\nx = 2', path: 't/list/1/x', line: 5, column: 1 },

  // Inline tables and arrays.
  { desc: 'nested inline table', toml: 'a = { b = { c = 1 }, d = 2 }', path: 'a/b/c', line: 1, column: 13 },
  { desc: 'key after nested inline table', toml: 'a = { b = { c = 1 }, d = 2 }', path: 'a/d', line: 1, column: 22 },
  { desc: 'empty inline table', toml: 'a = {}\nb = 1', path: 'b', line: 2, column: 1 },
  { desc: 'nested arrays: inner array', toml: 'a = [[1, 2], [3, [4]]]', path: 'a/1', line: 1, column: 14 },
  { desc: 'nested arrays: element of inner array', toml: 'a = [[1, 2], [3, [4]]]', path: 'a/0/1', line: 1, column: 10 },
  { desc: 'nested arrays: three deep', toml: 'a = [[1, 2], [3, [4]]]', path: 'a/1/1/0', line: 1, column: 19 },
  { desc: 'empty array', toml: 'a = []\nb = [ ]', path: 'b', line: 2, column: 1 },
  {
    desc: 'multi-line array with comments and trailing comma',
    toml: 'a = [ # c [ ] ,\n  1, # one, ]\n  # only a comment "\n  "x", # two\n]\nb = 1',
    path: 'a/1', line: 4, column: 3,
  },
  {
    desc: 'key after multi-line array with comments',
    toml: 'a = [ # c [ ] ,\n  1, # one, ]\n  # only a comment "\n  "x", # two\n]\nb = 1',
    path: 'b', line: 6, column: 1,
  },
  {
    desc: 'inline tables in a multi-line array',
    toml: 'backends = [\n  { url = "a" },\n  { url = "b", weight = 2 },\n]',
    path: 'backends/1/weight', line: 3, column: 16,
  },
  {
    desc: 'multi-line inline table (TOML 1.1, accepted by smol-toml)',
    toml: 'a = {\n  b = 1, # c\n  d = 2,\n}\ne = 3',
    path: 'a/d', line: 3, column: 3,
  },

  // Strings and other values must be skipped exactly.
  { desc: 'basic string with delimiters inside', toml: 'a = "x # [ { , ] } = \\" y"\nb = 1', path: 'b', line: 2, column: 1 },
  { desc: 'literal string ending in backslash', toml: "a = 'C:\\dir\\'\nb = 1", path: 'b', line: 2, column: 1 },
  { desc: 'string values inside inline table', toml: 't = { a = "}, b = 1", b = \'{ c = ]\', c = 3 }', path: 't/c', line: 1, column: 38 },
  {
    desc: 'multi-line basic string with escapes, quotes and line-ending backslash',
    toml: 'a = """\nline \\""" still in\ntext \\\n   more "" x""""\nb = 1',
    path: 'b', line: 5, column: 1,
  },
  {
    desc: 'multi-line basic string with escaped backslash before closing quotes',
    toml: 'a = """x\\\\"""\nb = 1',
    path: 'b', line: 2, column: 1,
  },
  {
    desc: 'multi-line literal string with brackets, keys and quotes inside',
    toml: "a = '''\n[not.a.table]\nb = \"not a key\" ''\nc''''\nd = 1",
    path: 'd', line: 5, column: 1,
  },
  {
    desc: 'multi-line strings as array elements',
    toml: 'a = [\n  """x\n]""",\n  \'\'\'y\n,\'\'\',\n  "z",\n]',
    path: 'a/2', line: 6, column: 3,
  },
  {
    desc: 'dates, floats, special floats, hex, booleans',
    toml: 't = { d = 1979-05-27 07:32:00-07:00, l = 07:32:00, f = -inf, n = nan, h = 0xDEAD_BEEF, b = true, e = 6.626e-34 }',
    path: 't/e', line: 1, column: 98,
  },
  { desc: 'date with a space as array element', toml: 'a = [1979-05-27 07:32:00Z, 2]', path: 'a/1', line: 1, column: 28 },
  { desc: 'value followed by a comment', toml: 'a = 1 # = [ {\nb = 2', path: 'b', line: 2, column: 1 },

  // Line endings, BOM, columns.
  { desc: 'CRLF line endings', toml: '[t]\r\na = 1 # c\r\nb = [\r\n  1,\r\n  2,\r\n]\r\n', path: 't/b/1', line: 5, column: 3 },
  { desc: 'CRLF after a header', toml: '[t]\r\n[u]\r\nx = 1\r\n', path: 'u/x', line: 3, column: 1 },
  { desc: 'BOM is not a column', toml: '\uFEFFa = 1\nb = 2', path: 'a', line: 1, column: 1 },
  { desc: 'columns count code points, not UTF-16 units', toml: 'a = { "😀" = 1, b = 2 }', path: 'a/b', line: 1, column: 16 },
  { desc: 'non-ASCII in a string before a key', toml: 't = { s = "日本😀", k = 1 }', path: 't/k', line: 1, column: 18 },
];

interface PositionOfRow {
  desc: string;
  toml: string;
  path: string[];
  expected: SourcePosition | undefined;
}

const positionOfRows: PositionOfRow[] = [
  { desc: 'exact key in inline table', toml: LB, path: ['pools', 'api', 'health', 'timeout'], expected: { line: 16, column: 46 } },
  { desc: 'missing key falls back to its table header', toml: LB, path: ['pools', 'web', 'missing'], expected: { line: 4, column: 1 } },
  { desc: 'missing key in inline table falls back to the key', toml: LB, path: ['pools', 'api', 'health', 'path'], expected: { line: 16, column: 1 } },
  { desc: 'missing key in sub-table', toml: LB, path: ['pools', 'web', 'health', 'timeout'], expected: { line: 11, column: 1 } },
  { desc: 'missing key in array-of-tables element', toml: LB, path: ['routes', '1', 'pipeline'], expected: { line: 26, column: 1 } },
  { desc: 'deep quoted key', toml: LB, path: ['routes', '0', 'pipeline', '0', 'request', 'set', 'X-Api'], expected: { line: 24, column: 19 } },
  { desc: 'array element out of range falls back to the array', toml: LB, path: ['pools', 'web', 'backends', '5', 'url'], expected: { line: 6, column: 1 } },
  { desc: 'unknown root key', toml: LB, path: ['admin'], expected: undefined },
  { desc: 'empty path', toml: LB, path: [], expected: undefined },
  { desc: 'raw segments are escaped', toml: '["a/b"]\n"c~d" = 1', path: ['a/b', 'c~d'], expected: { line: 2, column: 1 } },
  { desc: 'raw segment with ~1 is not decoded', toml: '["a/b"]\n"c~d" = 1', path: ['a~1b'], expected: undefined },
];

type Leaf = { path: string[]; value: unknown; inArray: boolean };

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Every leaf (scalar, empty table, empty array) of a parsed document. */
function leaves(value: unknown, path: string[] = [], inArray = false, out: Leaf[] = []): Leaf[] {
  if (Array.isArray(value) && value.length > 0) {
    value.forEach((v, i) => leaves(v, [...path, String(i)], true, out));
  } else if (isTable(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) leaves(v, [...path, k], false, out);
  } else if (path.length > 0) {
    out.push({ path, value, inArray });
  }
  return out;
}

const escape = (s: string): string => s.replace(/~/g, '~0').replace(/\//g, '~1');
const key = (path: string[]): string => path.map(escape).join('/');

/** The text of `source` from a position (columns are code points). */
function textAt(lines: string[], p: SourcePosition): string {
  return Array.from(lines[p.line - 1] ?? '').slice(p.column - 1).join('');
}

/**
 * Every leaf has an exact entry; a key's entry starts with the key's text, an
 * array element's entry is at or after its array's key, and starts with the value.
 */
function assertAllLeavesLocated(source: string): number {
  const positions = locateKeys(source);
  const lines = source.split(/\r?\n/);
  const all = leaves(parse(source));
  for (const { path, value, inArray } of all) {
    const where = positions.get(key(path));
    assert.ok(where, `no position for ${key(path)}`);
    const text = textAt(lines, where);
    const last = path[path.length - 1]!;
    if (!inArray) {
      assert.ok(lines[where.line - 1]!.includes(last), `line ${where.line} lacks ${last}`);
      assert.ok([last, `"${last}`, `'${last}`].some((t) => text.startsWith(t)), `${key(path)} at ${where.line}:${where.column} is "${text}"`);
    } else {
      const array = positions.get(key(path.slice(0, -1)));
      assert.ok(array, `no position for the array holding ${key(path)}`);
      assert.ok(
        where.line > array.line || (where.line === array.line && where.column > array.column),
        `${key(path)} at ${where.line}:${where.column} is not after its array at ${array.line}:${array.column}`,
      );
      if (typeof value === 'string') {
        assert.ok(text.startsWith(`"${value}`) || text.startsWith(`'${value}`), `${key(path)} at ${where.line}:${where.column} is "${text}"`);
      } else if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
        assert.ok(text.startsWith(String(value)), `${key(path)} at ${where.line}:${where.column} is "${text}"`);
      } else {
        assert.match(text, /^[[{0-9+\-"'tfin]/, `${key(path)} at ${where.line}:${where.column} is "${text}"`);
      }
    }
  }
  return all.length;
}

describe('locateKeys', () => {
  for (const row of rows) {
    it(row.desc, () => {
      assert.deepEqual(locateKeys(row.toml).get(row.path), { line: row.line, column: row.column }, `path ${JSON.stringify(row.path)}`);
    });
  }

  it('every row is valid TOML holding the path it expects', () => {
    for (const row of rows) {
      let node: unknown = parse(row.toml);
      for (const segment of row.path.split('/')) {
        const raw = segment.replace(/~1/g, '/').replace(/~0/g, '~');
        assert.ok(node !== null && typeof node === 'object' && raw in node, `${row.desc}: ${row.path} not in parsed document`);
        node = (node as Record<string, unknown>)[raw];
      }
    }
  });

  it('records nothing from inside strings', () => {
    const positions = locateKeys("a = '''\n[not.a.table]\nb = \"not a key\" ''\nc''''\nd = \"[x]\"");
    assert.deepEqual([...positions.keys()].sort(), ['a', 'd']);
  });

  it('locates every leaf of every row document', () => {
    for (const row of rows) {
      const positions = locateKeys(row.toml);
      for (const { path } of leaves(parse(row.toml))) assert.ok(positions.has(key(path)), `${row.desc}: no position for ${key(path)}`);
    }
  });

  it('locates every leaf of the brief document at its key or value', () => {
    assert.ok(assertAllLeavesLocated(LB) > 15);
  });

  it('locates every leaf of shared/lb.reference.toml at its key or value', () => {
    const source = readFileSync(REFERENCE_URL, 'utf8');
    assert.ok(assertAllLeavesLocated(source) > 50);
  });

  it('locates the same positions with CRLF line endings', () => {
    assert.deepEqual(locateKeys(LB.replace(/\n/g, '\r\n')), locateKeys(LB));
    const reference = readFileSync(REFERENCE_URL, 'utf8');
    assert.deepEqual(locateKeys(reference.replace(/\r?\n/g, '\r\n')), locateKeys(reference));
  });
});

describe('positionOf', () => {
  for (const row of positionOfRows) {
    it(row.desc, () => {
      assert.deepEqual(positionOf(locateKeys(row.toml), row.path), row.expected);
    });
  }
});

describe('locateKeys on invalid input', () => {
  it('never throws on garbage and keeps what it found', () => {
    const garbage = [
      '', '\n', '\r', '\uFEFF', '=', '[', '[[', ']]', '[a', '[[a]', '[a.]', 'a', 'a =', 'a = ', 'a = "', "a = '", 'a = """', "a = '''",
      'a = [', 'a = [1,', 'a = {', 'a = { b', 'a = { b = ', 'a = { b = 1', '"\\u12', '"\\uZZZZ" = 1', '"\\U7FFFFFFF" = 1', '"\\q" = 1',
      'a = 1 b = 2', 'a = "x\ny"', '\ud83d = 1', 'a = \ud800', '# only a comment', 'a.b.', 'a..b = 1', '[a]]', 'a = ]', 'a = }',
    ];
    for (const g of garbage) assert.ok(locateKeys(g) instanceof Map, JSON.stringify(g));
    assert.deepEqual(locateKeys('a = 1\nb = 2 c = 3\nd = 4').get('a'), { line: 1, column: 1 });
  });

  it('never throws on random text', () => {
    const alphabet = 'ab1 .=[]{},"\'#\\\n\r\t-_~/u😀';
    const chars = Array.from(alphabet);
    let seed = 42;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
    for (let n = 0; n < 3000; n++) {
      let text = '';
      const length = next() % 120;
      for (let k = 0; k < length; k++) text += chars[next() % chars.length];
      assert.ok(locateKeys(text) instanceof Map, JSON.stringify(text));
    }
  });

  it('on every truncation of a valid document, finds a consistent subset', () => {
    const full = locateKeys(LB);
    for (let end = 0; end < LB.length; end++) {
      for (const [path, position] of locateKeys(LB.slice(0, end))) {
        assert.deepEqual(position, full.get(path), `cut at ${end}: ${path}`);
      }
    }
  });

  it('stops on absurd nesting instead of overflowing the stack', () => {
    for (const text of ['a = ' + '['.repeat(200_000), 'a = ' + '{ b = '.repeat(100_000), '['.repeat(200_000), 'a = ' + '[1, '.repeat(100_000)]) {
      const positions = locateKeys(text);
      assert.ok(positions instanceof Map);
    }
    assert.ok(locateKeys('x = 1\na = ' + '['.repeat(200_000)).has('x'));
  });

  it('is linear on a large document', () => {
    const big = Array.from({ length: 20_000 }, (_, i) => `[[pipeline]]\nplugin = "p${i}"\nrequest.set = { "X-${i}" = "1" }\n`).join('\n');
    const started = process.hrtime.bigint();
    const positions = locateKeys(big);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.deepEqual(positions.get('pipeline/19999/request/set/X-19999'), { line: 79_999, column: 17 });
    assert.ok(ms < 2000, `took ${ms}ms`);
  });
});
