/**
 * A plain node:http client for tests: lets a test set any header (Host
 * included, which fetch forbids) and see the raw status and headers.
 */
import http from 'node:http';

export interface TestResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: http.OutgoingHttpHeaders;
  readonly body?: string | Buffer;
  readonly agent?: http.Agent | false;
  readonly timeoutMs?: number;
}

export function request(url: string, options: RequestOptions = {}): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: options.method ?? 'GET', headers: options.headers, agent: options.agent ?? false, timeout: options.timeoutMs ?? 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Sends `count` requests one after another and counts the response bodies. */
export async function countBodies(url: string, count: number, options: RequestOptions = {}): Promise<Record<string, number>> {
  const agent = new http.Agent({ keepAlive: true });
  const counts: Record<string, number> = {};
  try {
    for (let i = 0; i < count; i++) {
      const res = await request(url, { ...options, agent });
      counts[res.body] = (counts[res.body] ?? 0) + 1;
    }
  } finally {
    agent.destroy();
  }
  return counts;
}
