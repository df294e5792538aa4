// Holds N keep-alive client connections open to a proxy, each having made one
// request, and then idle — the "many quiet clients" a real proxy carries while
// it serves load. Run as a child with an IPC channel:
//   parent ← 'ready' when every socket has its answer;  parent → 'count' → { open }.
// Usage: node idle-clients.mjs PORT [N=1000]
import net from 'node:net';

const port = Number(process.argv[2]);
const total = Number(process.argv[3] ?? 1000);
const REQUEST = `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`;
const sockets = new Set();
let answered = 0;
let failed = 0;

function settle() {
  if (answered + failed === total) process.send?.({ ready: true, answered, failed });
}

function open() {
  const socket = net.connect(port, '127.0.0.1');
  let got = false;
  socket.setNoDelay(true);
  socket.on('connect', () => socket.write(REQUEST));
  socket.on('data', () => {
    if (got) return;
    got = true;
    answered++;
    settle();
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    sockets.delete(socket);
    if (!got) {
      got = true;
      failed++;
      settle();
    }
  });
  sockets.add(socket);
}

// Open in small batches so the proxy's accept queue is not the thing measured.
let opened = 0;
(function batch() {
  for (let i = 0; i < 50 && opened < total; i++, opened++) open();
  if (opened < total) setTimeout(batch, 5);
})();

process.on('message', (msg) => {
  if (msg === 'count') process.send?.({ open: sockets.size });
});
process.on('disconnect', () => process.exit(0));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
