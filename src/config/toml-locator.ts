/**
 * Where each key of a TOML document is written, so an error found on the
 * parsed object (ajv reports a JSON pointer such as `/pools/web/backends/1/url`)
 * can be printed as `file:line:col`. smol-toml keeps no source positions, so
 * this is a second, positions-only scan of the text.
 *
 * Contract: meant for text that smol-toml has already accepted (TOML 1.0,
 * plus the TOML 1.1 relaxations smol-toml takes: newlines, comments and a
 * trailing comma inside inline tables, `\e` and `\xHH` escapes). It reports
 * no syntax errors. On any other input it never throws and never loops: it
 * stops at the first thing it cannot follow and returns what it found so far.
 */

export interface SourcePosition {
  /** 1-based line; lines end at LF (a CRLF's CR is the last column of its line). */
  line: number;
  /**
   * 1-based column in Unicode code points, not UTF-16 code units, so a key
   * after an emoji or a CJK character gets the column an editor shows.
   */
  column: number;
}

/** Matches smol-toml's default nesting limit; deeper input is not valid for us anyway. */
const MAX_DEPTH = 1000;

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22; // "
const HASH = 0x23; // #
const APOS = 0x27; // '
const COMMA = 0x2c;
const DOT = 0x2e;
const EQUALS = 0x3d;
const LBRACKET = 0x5b;
const BACKSLASH = 0x5c;
const RBRACKET = 0x5d;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const BOM = 0xfeff;

const TILDE_RE = /~/g;
const SLASH_RE = /\//g;
const HEX_RE = /^[0-9a-fA-F]+$/;

/** Escapes one path segment as JSON pointer does (RFC 6901), matching ajv's instancePath. */
function escapeSegment(segment: string): string {
  if (segment.indexOf('~') < 0 && segment.indexOf('/') < 0) return segment;
  return segment.replace(TILDE_RE, '~0').replace(SLASH_RE, '~1');
}

function isBareKeyChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x5f || // _
    c === 0x2d //   -
  );
}

/** Thrown to abandon the scan; `locateKeys` keeps what was recorded before it. */
class ScanStopped extends Error {}

/** One segment of a dotted key: its decoded name and where it starts. */
interface KeyPart {
  name: string;
  offset: number;
}

class KeyScanner {
  private i = 0;
  private readonly start: number;
  private readonly out = new Map<string, SourcePosition>();
  /** Elements seen so far per array-of-tables, keyed by resolved path (`routes`, `routes/0/pipeline`). */
  private readonly tableArrayLengths = new Map<string, number>();
  // Offset -> line/column cursor. Positions are recorded in increasing offset
  // order, so converting all of them walks the text once.
  private cursorOffset: number;
  private cursorLine = 1;
  private cursorColumn = 1;

  constructor(private readonly src: string) {
    // A BOM is not part of line 1 as an editor shows it.
    this.start = src.charCodeAt(0) === BOM ? 1 : 0;
    this.i = this.start;
    this.cursorOffset = this.start;
  }

  run(): Map<string, SourcePosition> {
    try {
      this.document();
    } catch {
      // ScanStopped, or anything unforeseen on invalid input: keep the partial map.
    }
    return this.out;
  }

  private stop(): never {
    throw new ScanStopped();
  }

  private document(): void {
    const s = this.src;
    // Prefix for keys of the current table: '' at the root, else its path plus '/'.
    let prefix = '';
    for (;;) {
      this.skipBlank(true);
      if (this.i >= s.length) return;
      if (s.charCodeAt(this.i) === LBRACKET) prefix = this.header() + '/';
      else this.keyValue(prefix, 0);
      this.skipBlank(false);
      if (this.i < s.length) {
        const c = s.charCodeAt(this.i);
        if (c !== LF && c !== CR) this.stop();
      }
    }
  }

  /** `[a.b]` or `[[a.b]]`; returns the resolved table path (array indexes included). */
  private header(): string {
    const s = this.src;
    const headerOffset = this.i;
    const isTableArray = s.charCodeAt(this.i + 1) === LBRACKET;
    this.i += isTableArray ? 2 : 1;
    this.skipWs();
    const parts = this.dottedKey();
    this.expect(RBRACKET);
    if (isTableArray) this.expect(RBRACKET);

    let path = '';
    for (let k = 0; k < parts.length; k++) {
      const part = parts[k]!;
      path = k === 0 ? escapeSegment(part.name) : path + '/' + escapeSegment(part.name);
      this.record(path, part.offset, false);
      const count = this.tableArrayLengths.get(path);
      if (isTableArray && k === parts.length - 1) {
        const index = count ?? 0;
        this.tableArrayLengths.set(path, index + 1);
        path += '/' + index;
      } else if (count !== undefined && k < parts.length - 1) {
        // `[routes.match]` after `[[routes]]` means the last element so far.
        path += '/' + (count - 1);
      }
    }
    // A table is defined by exactly one header, which beats an earlier
    // implicit mention (`[a]` after `[a.b]`).
    this.record(path, headerOffset, true);
    return path;
  }

  /** `key = value`, `a.b."c" = value`; `prefix` is '' or ends in '/'. */
  private keyValue(prefix: string, depth: number): void {
    const parts = this.dottedKey();
    this.expect(EQUALS);
    this.skipWs();
    let path = '';
    for (let k = 0; k < parts.length; k++) {
      const part = parts[k]!;
      path = (k === 0 ? prefix : path + '/') + escapeSegment(part.name);
      this.record(path, part.offset, false);
    }
    this.value(path, depth);
  }

  /** Leaves `i` after the whitespace that follows the last part. */
  private dottedKey(): KeyPart[] {
    const s = this.src;
    const parts: KeyPart[] = [];
    for (;;) {
      const offset = this.i;
      parts.push({ name: this.simpleKey(), offset });
      this.skipWs();
      if (s.charCodeAt(this.i) !== DOT) return parts;
      this.i++;
      this.skipWs();
    }
  }

  private simpleKey(): string {
    const s = this.src;
    const c = s.charCodeAt(this.i);
    if (c === QUOTE) return this.basicKey();
    if (c === APOS) {
      const startOffset = this.i + 1;
      this.skipLiteralString();
      return s.slice(startOffset, this.i - 1);
    }
    const startOffset = this.i;
    while (this.i < s.length && isBareKeyChar(s.charCodeAt(this.i))) this.i++;
    if (this.i === startOffset) this.stop();
    return s.slice(startOffset, this.i);
  }

  /** A "quoted" key, decoded, since its escapes change the key's name. */
  private basicKey(): string {
    const s = this.src;
    this.i++;
    let name = '';
    let runStart = this.i;
    for (;;) {
      if (this.i >= s.length) this.stop();
      const c = s.charCodeAt(this.i);
      if (c === QUOTE) {
        name += s.slice(runStart, this.i);
        this.i++;
        return name;
      }
      if (c === LF || c === CR) this.stop();
      if (c !== BACKSLASH) {
        this.i++;
        continue;
      }
      name += s.slice(runStart, this.i);
      const e = s[this.i + 1];
      let hexDigits = 0;
      switch (e) {
        case 'b': name += '\b'; break;
        case 't': name += '\t'; break;
        case 'n': name += '\n'; break;
        case 'f': name += '\f'; break;
        case 'r': name += '\r'; break;
        case 'e': name += '\x1b'; break;
        case '"': name += '"'; break;
        case '\\': name += '\\'; break;
        case 'x': hexDigits = 2; break;
        case 'u': hexDigits = 4; break;
        case 'U': hexDigits = 8; break;
        default: this.stop();
      }
      this.i += 2;
      if (hexDigits > 0) {
        const hex = s.slice(this.i, this.i + hexDigits);
        const code = hex.length === hexDigits ? Number.parseInt(hex, 16) : NaN;
        if (!(code >= 0 && code <= 0x10ffff) || !HEX_RE.test(hex)) this.stop();
        name += String.fromCodePoint(code);
        this.i += hexDigits;
      }
      runStart = this.i;
    }
  }

  private value(path: string, depth: number): void {
    if (depth > MAX_DEPTH) this.stop();
    const s = this.src;
    const c = s.charCodeAt(this.i);
    if (c === QUOTE) {
      if (s.charCodeAt(this.i + 1) === QUOTE && s.charCodeAt(this.i + 2) === QUOTE) this.skipMultilineBasic();
      else this.skipBasicString();
    } else if (c === APOS) {
      if (s.charCodeAt(this.i + 1) === APOS && s.charCodeAt(this.i + 2) === APOS) this.skipMultilineLiteral();
      else this.skipLiteralString();
    } else if (c === LBRACKET) {
      this.array(path, depth + 1);
    } else if (c === LBRACE) {
      this.inlineTable(path, depth + 1);
    } else {
      // Number, boolean, date/time (which may hold one space): ends at the
      // first delimiter; trailing blanks are harmless.
      const startOffset = this.i;
      while (this.i < s.length) {
        const d = s.charCodeAt(this.i);
        if (d === COMMA || d === RBRACKET || d === RBRACE || d === HASH || d === LF || d === CR) break;
        this.i++;
      }
      if (this.i === startOffset) this.stop();
    }
  }

  private array(path: string, depth: number): void {
    const s = this.src;
    this.i++;
    for (let index = 0; ; index++) {
      this.skipBlank(true);
      if (this.i >= s.length) this.stop();
      if (s.charCodeAt(this.i) === RBRACKET) break;
      const elementPath = path + '/' + index;
      this.record(elementPath, this.i, false);
      this.value(elementPath, depth);
      this.skipBlank(true);
      const c = s.charCodeAt(this.i);
      if (c === COMMA) this.i++;
      else if (c === RBRACKET) break;
      else this.stop();
    }
    this.i++;
  }

  private inlineTable(path: string, depth: number): void {
    const s = this.src;
    const prefix = path + '/';
    this.i++;
    for (;;) {
      // Newlines and comments are TOML 1.1 (smol-toml accepts them).
      this.skipBlank(true);
      if (this.i >= s.length) this.stop();
      if (s.charCodeAt(this.i) === RBRACE) break;
      this.keyValue(prefix, depth);
      this.skipBlank(true);
      const c = s.charCodeAt(this.i);
      if (c === COMMA) this.i++;
      else if (c === RBRACE) break;
      else this.stop();
    }
    this.i++;
  }

  private skipBasicString(): void {
    const s = this.src;
    for (this.i++; this.i < s.length; this.i++) {
      const c = s.charCodeAt(this.i);
      if (c === QUOTE) {
        this.i++;
        return;
      }
      if (c === BACKSLASH) this.i++;
      else if (c === LF || c === CR) break;
    }
    this.stop();
  }

  private skipLiteralString(): void {
    const s = this.src;
    for (this.i++; this.i < s.length; this.i++) {
      const c = s.charCodeAt(this.i);
      if (c === APOS) {
        this.i++;
        return;
      }
      if (c === LF || c === CR) break;
    }
    this.stop();
  }

  /** `"""…"""`: backslash escapes (line-ending ones included) skip the next char. */
  private skipMultilineBasic(): void {
    const s = this.src;
    for (this.i += 3; this.i < s.length; this.i++) {
      const c = s.charCodeAt(this.i);
      if (c === BACKSLASH) this.i++;
      else if (c === QUOTE && s.charCodeAt(this.i + 1) === QUOTE && s.charCodeAt(this.i + 2) === QUOTE) {
        this.i += 3;
        this.skipExtraClosingQuotes(QUOTE);
        return;
      }
    }
    this.stop();
  }

  private skipMultilineLiteral(): void {
    const end = this.src.indexOf("'''", this.i + 3);
    if (end < 0) this.stop();
    this.i = end + 3;
    this.skipExtraClosingQuotes(APOS);
  }

  /** `"""a""""` ends in the last three quotes: up to two quotes before them are content. */
  private skipExtraClosingQuotes(quote: number): void {
    for (let extra = 0; extra < 2 && this.src.charCodeAt(this.i) === quote; extra++) this.i++;
  }

  private skipWs(): void {
    const s = this.src;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c !== SPACE && c !== TAB) return;
      this.i++;
    }
  }

  /** Spaces, tabs and a comment; with `newlines`, also line breaks and further comments. */
  private skipBlank(newlines: boolean): void {
    const s = this.src;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === SPACE || c === TAB) this.i++;
      else if (c === HASH) {
        const eol = s.indexOf('\n', this.i);
        this.i = eol < 0 ? s.length : eol;
        // A CRLF's CR belongs to the line break, not the comment.
        if (eol > 0 && s.charCodeAt(eol - 1) === CR) this.i--;
      } else if (newlines && (c === LF || c === CR)) this.i++;
      else return;
    }
  }

  private expect(c: number): void {
    this.skipWs();
    if (this.src.charCodeAt(this.i) !== c) this.stop();
    this.i++;
  }

  private record(path: string, offset: number, overwrite: boolean): void {
    if (!overwrite && this.out.has(path)) return;
    this.out.set(path, this.positionAt(offset));
  }

  private positionAt(offset: number): SourcePosition {
    const s = this.src;
    if (offset < this.cursorOffset) {
      // Not expected (records come in text order), but stay correct if it happens.
      this.cursorOffset = this.start;
      this.cursorLine = 1;
      this.cursorColumn = 1;
    }
    let line = this.cursorLine;
    let column = this.cursorColumn;
    for (let k = this.cursorOffset; k < offset; k++) {
      const c = s.charCodeAt(k);
      if (c === LF) {
        line++;
        column = 1;
      } else if (!(c >= 0xdc00 && c <= 0xdfff && k > 0 && isHighSurrogate(s.charCodeAt(k - 1)))) {
        // The low half of a surrogate pair belongs to the code point already counted.
        column++;
      }
    }
    this.cursorOffset = offset;
    this.cursorLine = line;
    this.cursorColumn = column;
    return { line, column };
  }
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

/**
 * Scans `source` once and maps every key path it writes to where it is
 * written. Paths are JSON-pointer segments joined by '/' without the leading
 * slash (`pools/web/backends/1/url`), '~' and '/' inside a key escaped as
 * `~0` and `~1`, array elements by index. What a path points at:
 * - a key (bare, quoted, or one part of a dotted key): its first character
 *   (the opening quote of a quoted key);
 * - an array element: the element's first character;
 * - a `[table]` header: its `[`; an `[[array.of.tables]]` header: its `[[`,
 *   under the path of the element it opens (`routes/0`), while `routes`
 *   itself points at the first header's `routes`.
 * Implicitly created tables point at their first mention.
 */
export function locateKeys(source: string): Map<string, SourcePosition> {
  return new KeyScanner(source).run();
}

/**
 * The position of the deepest prefix of `path` that `positions` knows, so an
 * error about a missing key points at the table that should hold it.
 * `path` holds raw (unescaped) segments, e.g. an ajv instancePath split on
 * '/' with `~1` and `~0` decoded, plus `params.missingProperty` if any.
 * Undefined when not even the first segment is known (callers use 1:1).
 */
export function positionOf(
  positions: Map<string, SourcePosition>,
  path: readonly string[],
): SourcePosition | undefined {
  const joined: string[] = [];
  let key = '';
  for (let k = 0; k < path.length; k++) {
    key = k === 0 ? escapeSegment(path[k]!) : key + '/' + escapeSegment(path[k]!);
    joined.push(key);
  }
  for (let k = joined.length - 1; k >= 0; k--) {
    const position = positions.get(joined[k]!);
    if (position !== undefined) return position;
  }
  return undefined;
}
