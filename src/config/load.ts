/**
 * lb.toml → parsed → checked against the core schema → every plugin table
 * checked against its plugin's schema → normalized and frozen. Every problem
 * found is reported at once, each at its file:line:col.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse, TomlError } from 'smol-toml';
import { loadPlugin, PluginLoadError } from '../plugin/registry.js';
import type { JsonSchema, PluginDefinition, PluginKind } from '../plugin/types.js';
import { parseDuration, parseSize } from '../units.js';
import { ConfigError, issueAt, issuesFromAjv, type ConfigIssue } from './issues.js';
import { coreSchema, HEALTH_CORE_KEYS } from './schema.js';
import { locateKeys, type SourcePosition } from './toml-locator.js';
import type {
  HealthConfig,
  LbConfig,
  ListenAddress,
  PluginRef,
  PoolConfig,
  RouteConfig,
  ServerConfig,
} from './types.js';

type Table = Record<string, unknown>;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true });
const validateCore = ajv.compile(coreSchema);
const pluginValidators = new WeakMap<PluginDefinition, ValidateFunction>();

const EMPTY_OBJECT_SCHEMA: JsonSchema = { type: 'object' };

function pluginValidator(def: PluginDefinition): ValidateFunction {
  let validate = pluginValidators.get(def);
  if (!validate) {
    validate = ajv.compile(def.schema ?? EMPTY_OBJECT_SCHEMA);
    pluginValidators.set(def, validate);
  }
  return validate;
}

/** "127.0.0.1:8080" | "[::1]:8080" | ":8080" → host and port. */
export function parseListen(text: string): ListenAddress {
  const colon = text.lastIndexOf(':');
  let host = text.slice(0, colon);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host: host === '' ? '::' : host, port: Number(text.slice(colon + 1)) };
}

/** Sorted-key JSON, so that equal options give equal identities whatever their order in the file. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Table)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const key of Object.keys(value)) {
      // Plugin definitions belong to their modules, not to this config.
      if (key !== 'definition') deepFreeze((value as Table)[key]);
    }
    Object.freeze(value);
  }
  return value;
}

function segmentsOf(keyPath: (string | number)[]): string[] {
  return keyPath.map(String);
}

function dotted(segments: (string | number)[]): string {
  return segments.map((s) => (typeof s === 'number' ? `[${s}]` : `.${s}`)).join('').replace(/^\./, '');
}

class Loader {
  readonly issues: ConfigIssue[] = [];
  constructor(
    readonly file: string,
    readonly dir: string,
    readonly positions: Map<string, SourcePosition>,
  ) {}

  problem(segments: (string | number)[], message: string): void {
    this.issues.push(issueAt(this.file, this.positions, segmentsOf(segments), message));
  }

  /** Loads and validates one plugin table; undefined (with an issue recorded) when it cannot. */
  async plugin(
    name: string,
    options: Table,
    kind: PluginKind,
    at: (string | number)[],
    nameKey: string,
  ): Promise<PluginRef | undefined> {
    let definition: PluginDefinition;
    try {
      definition = await loadPlugin(name, this.dir, kind);
    } catch (err) {
      if (!(err instanceof PluginLoadError)) throw err;
      this.problem([...at, nameKey], err.message);
      return undefined;
    }
    const validate = pluginValidator(definition);
    if (!validate(options)) {
      this.issues.push(...issuesFromAjv(validate.errors ?? [], this.file, this.positions, segmentsOf(at)));
      return undefined;
    }
    return {
      name,
      definition,
      options,
      identity: canonicalJson({ name, options }),
      keyPath: dotted(at),
    };
  }

  /** `{ plugin = "x", …options }` → plugin ref for the options without the `plugin` key. */
  async pluginTable(table: Table, kind: PluginKind, at: (string | number)[]): Promise<PluginRef | undefined> {
    const { plugin, ...options } = table;
    return this.plugin(plugin as string, options, kind, at, 'plugin');
  }

  server(raw: Table): ServerConfig {
    const tls = raw.tls as { cert: string; key: string } | undefined;
    return {
      listen: parseListen(raw.listen as string),
      workers: raw.workers as number | 'auto',
      maxBody: parseSize(raw.max_body as string),
      maxHeaderSize: parseSize(raw.max_header_size as string),
      maxHeadersCount: raw.max_headers_count as number,
      headersTimeout: parseDuration(raw.headers_timeout as string),
      bodyTimeout: parseDuration(raw.body_timeout as string),
      idleTimeout: parseDuration(raw.idle_timeout as string),
      shutdownGrace: parseDuration(raw.shutdown_grace as string),
      trustedProxies: raw.trusted_proxies as string[],
      forwardedHeader: raw.forwarded_header as boolean,
      tls: tls ? { cert: resolve(this.dir, tls.cert), key: resolve(this.dir, tls.key) } : undefined,
    };
  }

  async health(raw: Table | undefined, at: (string | number)[]): Promise<HealthConfig | undefined> {
    if (!raw) return undefined;
    const options: Table = {};
    for (const key of Object.keys(raw)) {
      if (!(HEALTH_CORE_KEYS as readonly string[]).includes(key)) options[key] = raw[key];
    }
    const checker = await this.plugin(raw.checker as string, options, 'health', at, 'checker');
    if (!checker) return undefined;
    return {
      checker,
      interval: parseDuration(raw.interval as string),
      timeout: parseDuration(raw.timeout as string),
      unhealthyAfter: raw.unhealthy_after as number,
      healthyAfter: raw.healthy_after as number,
    };
  }

  async pool(name: string, raw: Table): Promise<PoolConfig | undefined> {
    const at = ['pools', name];
    const strategyRaw = raw.strategy as string | Table;
    const strategy =
      typeof strategyRaw === 'string'
        ? await this.plugin(strategyRaw, {}, 'strategy', at, 'strategy')
        : await this.pluginTable(strategyRaw, 'strategy', [...at, 'strategy']);
    const health = await this.health(raw.health as Table | undefined, [...at, 'health']);
    const backends = (raw.backends as Table[]).map((b) => ({
      url: (b.url as string).replace(/\/$/, '').toLowerCase(),
      weight: b.weight as number,
    }));
    const seen = new Set<string>();
    backends.forEach((b, i) => {
      if (seen.has(b.url)) this.problem([...at, 'backends', i, 'url'], `backend ${b.url} is listed twice in this pool; list each backend once and use weight to give it more traffic`);
      seen.add(b.url);
    });
    if (!strategy || (raw.health && !health)) return undefined;
    return {
      name,
      strategy,
      connectTimeout: parseDuration(raw.connect_timeout as string),
      responseTimeout: parseDuration(raw.response_timeout as string),
      maxConnections: raw.max_connections as number,
      maxQueue: raw.max_queue as number,
      passiveFailures: raw.passive_failures as number,
      passiveCooldown: parseDuration(raw.passive_cooldown as string),
      backends,
      health,
    };
  }

  async pipeline(raw: Table[], at: (string | number)[]): Promise<PluginRef[]> {
    const refs: PluginRef[] = [];
    for (let i = 0; i < raw.length; i++) {
      const ref = await this.pluginTable(raw[i]!, 'middleware', [...at, i]);
      if (ref) refs.push(ref);
    }
    return refs;
  }

  async routes(raw: Table[], pools: Table): Promise<RouteConfig[]> {
    const out: RouteConfig[] = [];
    for (let i = 0; i < raw.length; i++) {
      const route = raw[i]!;
      const match = route.match as Table;
      const pool = route.pool as string;
      if (!Object.hasOwn(pools, pool)) {
        this.problem(['routes', i, 'pool'], `pool "${pool}" is not defined; defined pools: ${Object.keys(pools).join(', ')}`);
      }
      out.push({
        name: (route.name as string | undefined) ?? String(i),
        host: (match.host as string | undefined)?.toLowerCase(),
        pathPrefix: match.path_prefix as string | undefined,
        methods: match.methods as string[] | undefined,
        pool,
        pipeline: await this.pipeline(route.pipeline as Table[], ['routes', i, 'pipeline']),
      });
    }
    if (raw.length === 0 && Object.keys(pools).length > 1) {
      this.problem(['pools'], `there are ${Object.keys(pools).length} pools but no [[routes]]: add [[routes]] tables that say which requests go to which pool`);
    }
    return out;
  }
}

/**
 * Parses and validates TOML text. Throws ConfigError listing every problem;
 * never returns a partly valid config.
 */
export async function loadConfigText(source: string, file: string): Promise<LbConfig> {
  const absolute = resolve(file);
  let raw: Table;
  try {
    raw = parse(source) as Table;
  } catch (err) {
    if (err instanceof TomlError) {
      const firstLine = err.message.split('\n')[0] ?? err.message;
      throw new ConfigError([
        { file: absolute, line: err.line, column: err.column, keyPath: '', message: `TOML syntax error: ${firstLine.replace(/^Invalid TOML document: /, '')}` },
      ]);
    }
    throw err;
  }
  const positions = locateKeys(source);
  const loader = new Loader(absolute, dirname(absolute), positions);
  if (!validateCore(raw)) {
    throw new ConfigError(issuesFromAjv(validateCore.errors ?? [], absolute, positions));
  }

  const rawPools = raw.pools as Record<string, Table>;
  const pools: Record<string, PoolConfig> = {};
  for (const name of Object.keys(rawPools)) {
    const pool = await loader.pool(name, rawPools[name]!);
    if (pool) pools[name] = pool;
  }
  const pipeline = await loader.pipeline(raw.pipeline as Table[], ['pipeline']);
  const routes = await loader.routes(raw.routes as Table[], rawPools);
  if (loader.issues.length > 0) throw new ConfigError(loader.issues);

  const admin = raw.admin as Table | undefined;
  const config: LbConfig = {
    file: absolute,
    dir: loader.dir,
    hash: createHash('sha256').update(source).digest('hex'),
    server: loader.server(raw.server as Table),
    admin: admin ? { listen: parseListen(admin.listen as string) } : undefined,
    pools,
    routes,
    pipeline,
  };
  return deepFreeze(config);
}

/** Reads and validates a config file. IO errors are thrown as they are (the CLI maps them to exit 2). */
export async function loadConfigFile(file: string): Promise<LbConfig> {
  const source = await readFile(file, 'utf8');
  return loadConfigText(source, file);
}
