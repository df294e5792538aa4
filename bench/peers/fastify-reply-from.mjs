// fastify + @fastify/reply-from as its README balances several upstreams:
// `base` as an array (an undici BalancedPool), logging off.
// Usage: node fastify-reply-from.mjs PORT http://b1 http://b2 …
import Fastify from 'fastify';
import replyFrom from '@fastify/reply-from';

const [port, ...bases] = process.argv.slice(2);
const app = Fastify({ logger: false, keepAliveTimeout: 65_000, bodyLimit: 16 * 1024 * 1024 });
await app.register(replyFrom, {
  base: bases,
  undici: { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 },
});
// Pass bodies through as streams instead of parsing them.
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', (req, payload, done) => done(null, payload));
app.all('/*', (request, reply) => reply.from(request.url));
await app.listen({ port: Number(port), host: '127.0.0.1' });
process.send?.('ready');
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => app.close().then(() => process.exit(0)));
