import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readCookie } from '../../src/index.js';

/** The union of what rate-limit, sticky-session and consistent-hash each promised of their own copy. */
const cases: { desc: string; header: string | string[] | undefined; name: string; want: string | undefined }[] = [
  { desc: 'no header', header: undefined, name: 'sid', want: undefined },
  { desc: 'empty header', header: '', name: 'sid', want: undefined },
  { desc: 'only cookie', header: 'sid=abc', name: 'sid', want: 'abc' },
  { desc: 'among others', header: 'a=1; sid=abc; b=2', name: 'sid', want: 'abc' },
  { desc: 'last, no space', header: 'a=1;sid=abc', name: 'sid', want: 'abc' },
  { desc: 'tab before the pair', header: 'a=1;\tsid=abc', name: 'sid', want: 'abc' },
  { desc: 'absent', header: 'a=1; b=2', name: 'sid', want: undefined },
  { desc: 'name is a suffix of another name', header: 'xsid=no; sid=yes', name: 'sid', want: 'yes' },
  { desc: 'name is a prefix of another name', header: 'sidx=no', name: 'sid', want: undefined },
  { desc: 'longer name that ends the same', header: 'xlb_sticky=no; lb_sticky=yes', name: 'lb_sticky', want: 'yes' },
  { desc: 'longer name that starts the same', header: 'lb_sticky2=no', name: 'lb_sticky', want: undefined },
  { desc: 'name without a value is not a match', header: 'sid; a=1', name: 'sid', want: undefined },
  { desc: 'names are case-sensitive', header: 'SID=abc', name: 'sid', want: undefined },
  { desc: 'value containing =', header: 'sid=a=b', name: 'sid', want: 'a=b' },
  { desc: 'value containing =, then another cookie', header: 'sid=a=b; c=d', name: 'sid', want: 'a=b' },
  { desc: 'empty value, last', header: 'sid=', name: 'sid', want: '' },
  { desc: 'empty value, then another cookie', header: 'sid=; c=d', name: 'sid', want: '' },
  { desc: 'trailing spaces and tabs trimmed', header: 'sid=abc \t ; a=1', name: 'sid', want: 'abc' },
  { desc: 'quoted value is unquoted', header: 'sid="abc"', name: 'sid', want: 'abc' },
  { desc: 'quoted, then trailing space', header: 'sid="abc" ; a=1', name: 'sid', want: 'abc' },
  { desc: 'quoted empty value', header: 'sid=""', name: 'sid', want: '' },
  { desc: 'a lone quote is kept', header: 'sid="', name: 'sid', want: '"' },
  { desc: 'an unbalanced quote is kept', header: 'sid="abc', name: 'sid', want: '"abc' },
  { desc: 'first of two with the name', header: 'sid=1; sid=2', name: 'sid', want: '1' },
  { desc: 'list of headers', header: ['a=1', 'sid=abc'], name: 'sid', want: 'abc' },
  { desc: 'list of headers: the first one that has it', header: ['sid=1', 'sid=2'], name: 'sid', want: '1' },
  { desc: 'list of headers: an empty value still counts', header: ['sid=', 'sid=2'], name: 'sid', want: '' },
  { desc: 'empty list', header: [], name: 'sid', want: undefined },
];

for (const { desc, header, name, want } of cases) {
  test(`readCookie: ${desc}`, () => {
    assert.equal(readCookie(header, name), want);
  });
}
