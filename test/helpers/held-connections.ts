/**
 * Client connections held open on 127.0.0.1, for tests of the client
 * connection limit: a connection is either admitted (it stays open, and a
 * request on it is answered) or closed by the server without an answer.
 * Every helper is bounded in time; `releaseAll` frees what was opened.
 */
import net from 'node:net';

/** A connection opened by `holdConnection` or `openIdle`. */
export interface HeldConnection {
  readonly socket: net.Socket;
  /** Status of the request sent when it was opened; undefined when none was sent, or the server closed it without an answer. */
  readonly status: number | undefined;
  /** True once it has closed: the server closed or reset it, or it was released. */
  readonly closed: boolean;
  /** Resolves when it has closed. */
  readonly whenClosed: Promise<void>;
}

/** A new connection to `port`, not connected yet, whose `closed` follows the socket. */
function connect(port: number): HeldConnection & { status: number | undefined } {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const whenClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const held = { socket, status: undefined as number | undefined, closed: false, whenClosed };
  void whenClosed.then(() => (held.closed = true));
  return held;
}

/** Status of the response whose head begins `text`, once the whole head is in; undefined before. */
function statusOf(text: string): number | undefined {
  return text.includes('\r\n\r\n') ? Number(text.split(' ')[1]) : undefined;
}

/**
 * Opens a connection to `port` and sends one keep-alive GET on it; resolves
 * once the response head has arrived (the connection stays open and idle)
 * or the server has closed it unanswered. Rejects past `timeoutMs`.
 */
export function holdConnection(port: number, timeoutMs = 5000): Promise<HeldConnection> {
  const held = connect(port);
  held.socket.once('connect', () => held.socket.write('GET / HTTP/1.1\r\nHost: lb.test\r\n\r\n'));
  return answerOn(held, timeoutMs).then((status) => {
    held.status = status;
    return held;
  });
}

/** Sends one more GET on a held connection; resolves with its status, or undefined when the server closed it instead. */
export function requestOn(connection: HeldConnection, timeoutMs = 5000): Promise<number | undefined> {
  const answer = answerOn(connection, timeoutMs);
  connection.socket.write('GET / HTTP/1.1\r\nHost: lb.test\r\n\r\n');
  return answer;
}

/** The status of the next response head on `connection`, or undefined when it closes first. */
function answerOn(connection: HeldConnection, timeoutMs: number): Promise<number | undefined> {
  const { socket } = connection;
  return new Promise<number | undefined>((resolve, reject) => {
    let text = '';
    const done = (status: number | undefined) => {
      clearTimeout(timer);
      socket.off('data', onData);
      resolve(status);
    };
    const timer = setTimeout(() => {
      socket.off('data', onData);
      socket.destroy();
      reject(new Error(`no answer and no close on 127.0.0.1:${socket.remotePort} within ${timeoutMs}ms`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const status = statusOf(text);
      if (status !== undefined) done(status);
    };
    socket.on('data', onData);
    void connection.whenClosed.then(() => done(undefined));
  });
}

/**
 * Opens connections until one is answered, at most `attempts`: right after a
 * held connection is closed the server may not have counted it out yet.
 * Returns it and how many were closed unanswered before it.
 */
export async function holdFirstAdmitted(port: number, attempts = 50): Promise<{ connection: HeldConnection; refused: number }> {
  for (let refused = 0; refused < attempts; refused++) {
    const connection = await holdConnection(port);
    if (connection.status !== undefined) return { connection, refused };
  }
  throw new Error(`${attempts} connections in a row to 127.0.0.1:${port} were closed unanswered`);
}

/**
 * Opens `count` connections that send nothing, each pushed to `into` at
 * once (so the caller can release them whatever happens); resolves once
 * each is connected or already closed again by the server.
 */
export async function openIdle(port: number, count: number, into: HeldConnection[], timeoutMs = 10_000): Promise<void> {
  const settled = Array.from({ length: count }, () => {
    const held = connect(port);
    into.push(held);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`a connection to 127.0.0.1:${port} was neither established nor closed within ${timeoutMs}ms`)), timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      held.socket.once('connect', done);
      void held.whenClosed.then(done);
    });
  });
  await Promise.all(settled);
}

/** Closes every connection and waits until each is closed. */
export async function releaseAll(held: readonly HeldConnection[]): Promise<void> {
  for (const connection of held) connection.socket.destroy();
  await Promise.all(held.map((connection) => connection.whenClosed));
}
