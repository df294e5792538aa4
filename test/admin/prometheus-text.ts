/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4),
 * for tests: it throws on any line a Prometheus server would reject, on a
 * family whose samples are not contiguous or come before its TYPE, and on a
 * histogram whose buckets are not cumulative or disagree with its _count.
 */

export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface PromFamily {
  readonly name: string;
  type: string;
  help: string | undefined;
  readonly samples: PromSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** As Prometheus reads it (Go's ParseFloat): Inf and NaN in any case — prom-client writes "Nan". */
function parseValue(text: string, line: number): number {
  const lower = text.toLowerCase();
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  if (lower === 'nan') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: "${text}" is not a sample value`);
  return Number(text);
}

/** name{a="x",b="y"} → [name, labels, rest of the line]. */
function parseSeries(text: string, line: number): [string, Record<string, string>, string] {
  const brace = text.indexOf('{');
  const space = text.indexOf(' ');
  if (brace === -1 || (space !== -1 && space < brace)) {
    if (space === -1) throw new Error(`line ${line}: no value`);
    return [text.slice(0, space), {}, text.slice(space + 1)];
  }
  const name = text.slice(0, brace);
  const labels: Record<string, string> = {};
  let i = brace + 1;
  for (;;) {
    if (text[i] === '}') break;
    const eq = text.indexOf('=', i);
    if (eq === -1) throw new Error(`line ${line}: label without =`);
    const labelName = text.slice(i, eq);
    if (!LABEL_NAME.test(labelName)) throw new Error(`line ${line}: bad label name "${labelName}"`);
    if (text[eq + 1] !== '"') throw new Error(`line ${line}: label value not quoted`);
    let value = '';
    let j = eq + 2;
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') {
        const next = text[++j];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else throw new Error(`line ${line}: bad escape \\${next}`);
      } else value += text[j];
    }
    if (j >= text.length) throw new Error(`line ${line}: unterminated label value`);
    if (labelName in labels) throw new Error(`line ${line}: label ${labelName} twice`);
    labels[labelName] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw new Error(`line ${line}: expected , or } after a label`);
  }
  if (text[i + 1] !== ' ') throw new Error(`line ${line}: expected a space before the value`);
  return [name, labels, text.slice(i + 2)];
}

/** The family a sample name belongs to (histogram/summary suffixes folded). */
function familyOf(name: string, families: Map<string, PromFamily>): PromFamily | undefined {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = families.get(name.slice(0, -suffix.length));
      if (base && (base.type === 'histogram' || base.type === 'summary')) return base;
    }
  }
  return families.get(name);
}

export function parsePrometheusText(text: string): Map<string, PromFamily> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, PromFamily>();
  const finished = new Set<string>();
  let current: PromFamily | undefined;
  const lines = text.split('\n');
  for (let n = 0; n < lines.length - 1; n++) {
    const raw = lines[n]!;
    const line = n + 1;
    if (raw.trim() === '') continue;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(raw);
      if (!m) continue;
      const [, kind, name, rest] = m;
      if (!NAME.test(name!)) throw new Error(`line ${line}: bad metric name "${name}"`);
      let family = families.get(name!);
      if (!family) {
        if (finished.has(name!)) throw new Error(`line ${line}: family ${name} appears twice`);
        family = { name: name!, type: 'untyped', help: undefined, samples: [] };
        families.set(name!, family);
      }
      if (current && current !== family) finished.add(current.name);
      current = family;
      if (kind === 'TYPE') {
        if (family.samples.length > 0) throw new Error(`line ${line}: TYPE of ${name} after its samples`);
        if (!TYPES.has(rest ?? '')) throw new Error(`line ${line}: unknown type "${rest}"`);
        family.type = rest!;
      } else {
        family.help = rest ?? '';
      }
      continue;
    }
    const [name, labels, rest] = parseSeries(raw, line);
    if (!NAME.test(name)) throw new Error(`line ${line}: bad metric name "${name}"`);
    const parts = rest.split(' ');
    if (parts.length > 2) throw new Error(`line ${line}: trailing text "${rest}"`);
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1]!)) throw new Error(`line ${line}: bad timestamp "${parts[1]}"`);
    const value = parseValue(parts[0]!, line);
    let family = familyOf(name, families);
    if (!family) {
      family = { name, type: 'untyped', help: undefined, samples: [] };
      families.set(name, family);
    }
    if (finished.has(family.name)) throw new Error(`line ${line}: samples of ${family.name} are not contiguous`);
    if (current && current !== family) finished.add(current.name);
    current = family;
    family.samples.push({ name, labels, value });
  }
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

function checkHistogram(family: PromFamily): void {
  const series = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let entry = series.get(key);
    if (!entry) series.set(key, (entry = { buckets: [] }));
    if (s.name === `${family.name}_bucket`) {
      if (le === undefined) throw new Error(`${family.name}: a bucket without le`);
      entry.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
    } else if (s.name === `${family.name}_count`) entry.count = s.value;
    else if (s.name === `${family.name}_sum`) entry.sum = s.value;
    else throw new Error(`${family.name}: unexpected sample ${s.name}`);
  }
  for (const [key, entry] of series) {
    const buckets = entry.buckets;
    if (buckets.length === 0 || buckets[buckets.length - 1]![0] !== Infinity) throw new Error(`${family.name}${key}: no +Inf bucket`);
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]![0] > buckets[i - 1]![0])) throw new Error(`${family.name}${key}: le not increasing`);
      if (buckets[i]![1] < buckets[i - 1]![1]) throw new Error(`${family.name}${key}: buckets not cumulative`);
    }
    if (entry.count !== buckets[buckets.length - 1]![1]) throw new Error(`${family.name}${key}: _count differs from the +Inf bucket`);
    if (entry.sum === undefined) throw new Error(`${family.name}${key}: no _sum`);
  }
}

/** The value of one sample, matched by name and a subset of its labels. */
export function sampleValue(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families.values()) {
    for (const s of family.samples) {
      if (s.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}
