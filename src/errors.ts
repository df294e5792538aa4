/**
 * Every failure a client can see is declared once here, with a stable code
 * and the status it maps to. Nothing else in the core picks error statuses.
 */
export interface ErrorSpec {
  readonly status: number;
  readonly message: string;
}

export const ERRORS = {
  LB_ERR_NO_ROUTE: { status: 404, message: 'No route matches this request.' },
  LB_ERR_NO_BACKEND: { status: 503, message: 'No healthy backend is available.' },
  LB_ERR_UPSTREAM_CONNECT: { status: 502, message: 'The backend could not be reached.' },
  LB_ERR_UPSTREAM_CONNECT_TIMEOUT: { status: 504, message: 'The backend did not accept a connection in time.' },
  LB_ERR_UPSTREAM_RESET: { status: 502, message: 'The backend closed the connection before answering.' },
  LB_ERR_UPSTREAM_PROTOCOL: { status: 502, message: 'The backend sent an invalid response.' },
  LB_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'The backend did not answer in time.' },
  LB_ERR_UPSTREAM_BUSY: { status: 503, message: 'The backend is at its connection limit.' },
  LB_ERR_BODY_TOO_LARGE: { status: 413, message: 'The request body is too large.' },
  LB_ERR_BAD_REQUEST: { status: 400, message: 'The request is malformed.' },
  LB_ERR_CLIENT_GONE: { status: 499, message: 'The client went away.' },
  LB_ERR_PLUGIN: { status: 500, message: 'A plugin failed while handling this request.' },
} as const satisfies Record<string, ErrorSpec>;

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

/** True for a failure where nothing reached the backend, so any request may be sent elsewhere. */
export function isConnectFailure(err: unknown): boolean {
  return err instanceof LbError && (err.code === 'LB_ERR_UPSTREAM_CONNECT' || err.code === 'LB_ERR_UPSTREAM_CONNECT_TIMEOUT');
}
