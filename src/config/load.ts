/**
 * lb.toml → parsed → checked against the core schema → every plugin table
 * checked against its plugin's schema → normalized and frozen. Every problem
 * found is reported at once, each at its file:line:col, in file order.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parse, TomlError } from 'smol-toml';
import { loadPlugin, PluginLoadError } from '../plugin/registry.js';
import type { JsonSchema, PluginDefinition, PluginKind } from '../plugin/types.js';
import { parseDuration, parseSize } from '../units.js';
import { parseListen, listenersCollide } from './addresses.js';
import { ConfigError, issueAt, issuesFromAjv, pointerSegments, type ConfigIssue } from './issues.js';
import { addConfigKeywords } from './keywords.js';
import { coreSchema, HEALTH_CORE_KEYS } from './schema.js';
import { locateKeys, type SourcePosition } from './toml-locator.js';
import type {
  HealthConfig,
  LbConfig,
  PluginRef,
  PoolConfig,
  RouteConfig,
  ServerConfig,
} from './types.js';

type Table = Record<string, unknown>;

const ajv = addConfigKeywords(new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true }));
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

function isTable(value: unknown): value is Table {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Where the core schema refused a value. A part of the file with no refusal
 * at or inside it is still checked further (its plugin, the pool it names),
 * so one mistake does not hide the others; a refused part is not, so it
 * causes no second, made-up error.
 */
class CoreRefusals {
  readonly #paths: readonly (readonly string[])[];
  constructor(errors: readonly ErrorObject[]) {
    this.#paths = errors.map((e) => pointerSegments(e.instancePath));
  }

  /** The value at `segments` itself was refused (wrong type, a missing key, an unknown key in it…). */
  at(segments: readonly (string | number)[]): boolean {
    return this.#paths.some((path) => path.length === segments.length && segments.every((s, i) => path[i] === String(s)));
  }

  /** The value at `segments`, or something inside it, was refused. */
  within(segments: readonly (string | number)[]): boolean {
    return this.#paths.some((path) => path.length >= segments.length && segments.every((s, i) => path[i] === String(s)));
  }
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

/** A pool's plugins, each undefined when it could not be loaded or its table is invalid. */
interface PoolPlugins {
  readonly strategy: PluginRef | undefined;
  readonly checker: PluginRef | undefined;
}

/** Every plugin the file names, loaded and validated; built before the config itself. */
interface LoadedPlugins {
  readonly pools: ReadonlyMap<string, PoolPlugins>;
  readonly pipeline: readonly PluginRef[];
  readonly routePipelines: readonly (readonly PluginRef[])[];
}

class Loader {
  readonly issues: ConfigIssue[] = [];
  constructor(
    readonly file: string,
    readonly dir: string,
    readonly positions: Map<string, SourcePosition>,
    readonly refused: CoreRefusals,
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

  /** A table the core schema accepted as a plugin table: `nameKey` is a string, and nothing about the table or its name was refused. */
  intactPluginTable(value: unknown, at: (string | number)[], nameKey = 'plugin'): value is Table {
    return isTable(value) && typeof value[nameKey] === 'string' && !this.refused.at(at) && !this.refused.within([...at, nameKey]);
  }

  /** `{ plugin = "x", …options }` → plugin ref for the options without the `plugin` key. */
  async pluginTable(table: Table, kind: PluginKind, at: (string | number)[]): Promise<PluginRef | undefined> {
    const { plugin, ...options } = table;
    return this.plugin(plugin as string, options, kind, at, 'plugin');
  }

  async poolPlugins(name: string, raw: unknown): Promise<PoolPlugins> {
    const at = ['pools', name];
    if (!isTable(raw) || this.refused.at(at)) return { strategy: undefined, checker: undefined };
    const strategyAt = [...at, 'strategy'];
    let strategy: PluginRef | undefined;
    if (typeof raw.strategy === 'string') {
      if (!this.refused.within(strategyAt)) strategy = await this.plugin(raw.strategy, {}, 'strategy', at, 'strategy');
    } else if (this.intactPluginTable(raw.strategy, strategyAt)) {
      strategy = await this.pluginTable(raw.strategy, 'strategy', strategyAt);
    }
    // interval, timeout… belong to the core's scheduler: a mistake in them
    // does not stop the checker's own options from being checked.
    const healthAt = [...at, 'health'];
    let checker: PluginRef | undefined;
    if (this.intactPluginTable(raw.health, healthAt, 'checker')) {
      const options: Table = {};
      for (const key of Object.keys(raw.health)) {
        if (!(HEALTH_CORE_KEYS as readonly string[]).includes(key)) options[key] = raw.health[key];
      }
      checker = await this.plugin(raw.health.checker as string, options, 'health', healthAt, 'checker');
    }
    this.duplicateBackends(raw.backends, at);
    return { strategy, checker };
  }

  duplicateBackends(backends: unknown, at: (string | number)[]): void {
    if (!Array.isArray(backends)) return;
    const seen = new Set<string>();
    backends.forEach((b: unknown, i) => {
      const urlAt = [...at, 'backends', i, 'url'];
      if (!isTable(b) || typeof b.url !== 'string' || this.refused.within(urlAt)) return;
      const url = normalizedUrl(b.url);
      if (seen.has(url)) this.problem(urlAt, `backend ${url} is listed twice in this pool; list each backend once and use weight to give it more traffic`);
      seen.add(url);
    });
  }

  async pipeline(raw: unknown, at: (string | number)[]): Promise<PluginRef[]> {
    const refs: PluginRef[] = [];
    if (!Array.isArray(raw) || this.refused.at(at)) return refs;
    for (let i = 0; i < raw.length; i++) {
      const table: unknown = raw[i];
      if (!this.intactPluginTable(table, [...at, i])) continue;
      const ref = await this.pluginTable(table, 'middleware', [...at, i]);
      if (ref) refs.push(ref);
    }
    return refs;
  }

  /** Each route's pipeline; checks that the pools routes name exist (when [pools] itself is readable). */
  async routePipelines(raw: unknown, pools: unknown): Promise<PluginRef[][]> {
    const out: PluginRef[][] = [];
    const knownPools = isTable(pools) && !this.refused.at(['pools']) ? pools : undefined;
    if (!Array.isArray(raw) || this.refused.at(['routes'])) return out;
    for (let i = 0; i < raw.length; i++) {
      const route: unknown = raw[i];
      if (!isTable(route)) {
        out.push([]);
        continue;
      }
      const pool = route.pool;
      if (knownPools && typeof pool === 'string' && !this.refused.within(['routes', i, 'pool']) && !Object.hasOwn(knownPools, pool)) {
        this.problem(['routes', i, 'pool'], `pool "${pool}" is not defined; defined pools: ${Object.keys(knownPools).join(', ')}`);
      }
      out.push(await this.pipeline(route.pipeline, ['routes', i, 'pipeline']));
    }
    if (raw.length === 0 && knownPools && Object.keys(knownPools).length > 1) {
      this.problem(['pools'], `there are ${Object.keys(knownPools).length} pools but no [[routes]]: add [[routes]] tables that say which requests go to which pool`);
    }
    return out;
  }

  /** Two listeners on one port cannot both start: say so at the admin one. */
  listenersApart(raw: Table): void {
    const server = raw.server;
    const admin = raw.admin;
    const serverAt = ['server', 'listen'];
    const adminAt = ['admin', 'listen'];
    if (!isTable(server) || !isTable(admin) || typeof server.listen !== 'string' || typeof admin.listen !== 'string') return;
    if (this.refused.within(serverAt) || this.refused.within(adminAt)) return;
    if (listenersCollide(parseListen(server.listen), parseListen(admin.listen))) {
      this.problem(adminAt, `"${admin.listen}" takes the port of server.listen ("${server.listen}"): give the admin listener a port of its own`);
    }
  }

  /** Every plugin the file names, each checked against its own schema; problems go to `issues`. */
  async plugins(raw: Table): Promise<LoadedPlugins> {
    const pools = new Map<string, PoolPlugins>();
    if (isTable(raw.pools)) {
      for (const name of Object.keys(raw.pools)) pools.set(name, await this.poolPlugins(name, raw.pools[name]));
    }
    const pipeline = await this.pipeline(raw.pipeline, ['pipeline']);
    const routePipelines = await this.routePipelines(raw.routes, raw.pools);
    return { pools, pipeline, routePipelines };
  }

  // What follows builds the config from a file with no problem left: every value has its schema's type.

  server(raw: Table): ServerConfig {
    const tls = raw.tls as { cert: string; key: string } | undefined;
    return {
      listen: parseListen(raw.listen as string),
      workers: raw.workers as number | 'auto',
      maxConnections: raw.max_connections as number | undefined,
      maxBody: parseSize(raw.max_body as string),
      maxHeaderSize: parseSize(raw.max_header_size as string),
      maxHeadersCount: raw.max_headers_count as number,
      headersTimeout: parseDuration(raw.headers_timeout as string),
      bodyTimeout: parseDuration(raw.body_timeout as string),
      idleTimeout: parseDuration(raw.idle_timeout as string),
      sendTimeout: parseDuration(raw.send_timeout as string),
      shutdownGrace: parseDuration(raw.shutdown_grace as string),
      trustedProxies: raw.trusted_proxies as string[],
      forwardedHeader: raw.forwarded_header as boolean,
      tls: tls ? { cert: resolve(this.dir, tls.cert), key: resolve(this.dir, tls.key) } : undefined,
    };
  }

  health(raw: Table | undefined, checker: PluginRef | undefined): HealthConfig | undefined {
    if (!raw) return undefined;
    return {
      checker: checker!,
      interval: parseDuration(raw.interval as string),
      timeout: parseDuration(raw.timeout as string),
      unhealthyAfter: raw.unhealthy_after as number,
      healthyAfter: raw.healthy_after as number,
    };
  }

  pool(name: string, raw: Table, plugins: PoolPlugins): PoolConfig {
    return {
      name,
      strategy: plugins.strategy!,
      connectTimeout: parseDuration(raw.connect_timeout as string),
      responseTimeout: parseDuration(raw.response_timeout as string),
      maxConnections: raw.max_connections as number,
      maxQueue: raw.max_queue as number,
      passiveFailures: raw.passive_failures as number,
      passiveCooldown: parseDuration(raw.passive_cooldown as string),
      backends: (raw.backends as Table[]).map((b) => ({ url: normalizedUrl(b.url as string), weight: b.weight as number })),
      health: this.health(raw.health as Table | undefined, plugins.checker),
    };
  }

  routes(raw: Table[], pipelines: readonly (readonly PluginRef[])[]): RouteConfig[] {
    return raw.map((route, i) => {
      const match = route.match as Table;
      return {
        name: (route.name as string | undefined) ?? String(i),
        host: (match.host as string | undefined)?.toLowerCase(),
        pathPrefix: match.path_prefix as string | undefined,
        methods: match.methods as string[] | undefined,
        pool: route.pool as string,
        pipeline: pipelines[i]!,
      };
    });
  }
}

/**
 * Backend URLs compare and are used without a trailing slash, in lower case,
 * and each is a string of its own: V8 keeps a substring as a slice of the
 * text it was read from, and a backend's URL lives as long as the backend
 * does, across reloads — each one would keep the whole lb.toml of the
 * reload that added it alive (a 64 KB lb.toml: ~93 KB per backend added).
 */
function normalizedUrl(url: string): string {
  return Buffer.from(url.replace(/\/$/, '').toLowerCase(), 'utf8').toString('utf8');
}

/** Problems sorted as they appear in the file, so they read top to bottom. */
function inFileOrder(issues: readonly ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => a.line - b.line || a.column - b.column);
}

/**
 * Parses and validates TOML text. Throws ConfigError listing every problem
 * that can be found: the core schema's, and those of each plugin table,
 * pool reference and listener that the core schema did not already refuse.
 * Never returns a partly valid config.
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
  const coreValid = validateCore(raw);
  const coreErrors = coreValid ? [] : (validateCore.errors ?? []);
  const loader = new Loader(absolute, dirname(absolute), positions, new CoreRefusals(coreErrors));
  const plugins = await loader.plugins(raw);
  loader.listenersApart(raw);
  const issues = [...issuesFromAjv(coreErrors, absolute, positions), ...loader.issues];
  if (issues.length > 0) throw new ConfigError(inFileOrder(issues));

  const rawPools = raw.pools as Record<string, Table>;
  const pools: Record<string, PoolConfig> = {};
  for (const name of Object.keys(rawPools)) pools[name] = loader.pool(name, rawPools[name]!, plugins.pools.get(name)!);
  const admin = raw.admin as Table | undefined;
  const config: LbConfig = {
    file: absolute,
    dir: loader.dir,
    hash: createHash('sha256').update(source).digest('hex'),
    server: loader.server(raw.server as Table),
    admin: admin ? { listen: parseListen(admin.listen as string) } : undefined,
    pools,
    routes: loader.routes(raw.routes as Table[], plugins.routePipelines),
    pipeline: plugins.pipeline,
  };
  return deepFreeze(config);
}

/** Reads and validates a config file. IO errors are thrown as they are (the CLI maps them to exit 2). */
export async function loadConfigFile(file: string): Promise<LbConfig> {
  const source = await readFile(file, 'utf8');
  return loadConfigText(source, file);
}
