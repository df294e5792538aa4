/**
 * Every failure a client can see is declared once here, with a stable code
 * and the status it maps to. Nothing else in the core picks error statuses.
 */
export interface ErrorSpec {
  readonly status: number;
  readonly message: string;
}

/** Every error code with the status a client gets and the default message. Throw `new LbError(code)` to use one. */
export const ERRORS = {
  LB_ERR_NO_ROUTE: { status: 404, message: 'No route matches this request.' },
  LB_ERR_NO_BACKEND: { status: 503, message: 'No healthy backend is available.' },
  LB_ERR_UPSTREAM_CONNECT: { status: 502, message: 'The backend could not be reached.' },
  LB_ERR_UPSTREAM_CONNECT_TIMEOUT: { status: 504, message: 'The backend did not accept a connection in time.' },
  LB_ERR_UPSTREAM_RESET: { status: 502, message: 'The backend closed the connection before answering.' },
  LB_ERR_UPSTREAM_PROTOCOL: { status: 502, message: 'The backend sent an invalid response.' },
  LB_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'The backend did not answer in time.' },
  LB_ERR_UPSTREAM_BUSY: { status: 503, message: 'The backend is at its connection limit.' },
  /**
   * No connection to the backend could be opened for lack of this process's
   * own resources (EMFILE, ENOBUFS…: src/local-resource-error.ts). The
   * detail given where it is raised is for the log (what ran short, what to
   * do); clients get this message, which names no internals.
   */
  LB_ERR_LOCAL_RESOURCES: { status: 503, message: 'The load balancer is short of resources; try again shortly.' },
  LB_ERR_BODY_TOO_LARGE: { status: 413, message: 'The request body is too large.' },
  LB_ERR_BAD_REQUEST: { status: 400, message: 'The request is malformed.' },
  LB_ERR_CLIENT_GONE: { status: 499, message: 'The client went away.' },
  LB_ERR_PLUGIN: { status: 500, message: 'A plugin failed while handling this request.' },
  LB_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'The request header section is too large or has too many fields.' },
  LB_ERR_HTTP_VERSION: { status: 505, message: 'Only HTTP/1.0 and HTTP/1.1 are supported.' },
  LB_ERR_REQUEST_TIMEOUT: { status: 408, message: 'The request was not received in time.' },
  LB_ERR_METHOD_NOT_ALLOWED: { status: 405, message: 'CONNECT is not supported: Switchyard is a reverse proxy.' },
  /** Not raised by the core: the code of the `rate-limit` plugin's 429 in a JSON error body. */
  LB_ERR_RATE_LIMITED: { status: 429, message: 'Too Many Requests' },
} as const satisfies Record<string, ErrorSpec>;

/** A stable error code (`LB_ERR_…`), as it appears in logs and JSON error bodies. */
export type ErrorCode = keyof typeof ERRORS;

/** An error with a stable code; its status comes from ERRORS. */
export class LbError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra response headers (e.g. Retry-After). */
  readonly headers: Record<string, string> | undefined;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown; headers?: Record<string, string> }) {
    super(detail ?? ERRORS[code].message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LbError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.headers = options?.headers;
  }
}

/**
 * Whether an error answer goes out as JSON: the client's Accept names
 * application/json and neither a text type nor a wildcard. A plugin that
 * answers an error itself uses it (with `errorJson`) to answer as the core does.
 */
export function acceptsOnlyJson(accept: string | readonly string[] | undefined): boolean {
  if (accept === undefined) return false;
  const value = typeof accept === 'string' ? accept : accept.join(',');
  return value.includes('application/json') && !value.includes('text/') && !value.includes('*/*');
}

/** The JSON error body: `{"error":"LB_ERR_…","message":"…","status":…}`. */
export function errorJson(code: ErrorCode, message: string = ERRORS[code].message): string {
  return JSON.stringify({ error: code, message, status: ERRORS[code].status });
}

/**
 * True for a failure where nothing reached the backend — it could not be
 * reached, did not accept the connection in time, or this process could not
 * open one for lack of its own resources — so any request may be sent again.
 */
export function isConnectFailure(err: unknown): boolean {
  return (
    err instanceof LbError &&
    (err.code === 'LB_ERR_UPSTREAM_CONNECT' || err.code === 'LB_ERR_UPSTREAM_CONNECT_TIMEOUT' || err.code === 'LB_ERR_LOCAL_RESOURCES')
  );
}
