/**
 * Bytes as text, one character per byte (obs-text kept as is): exactly what
 * `buffer.toString('latin1')` returns, for header values and small bodies on
 * every response. `latin1Slice` is the method that call ends in, minus its
 * argument and encoding handling, which costs more than decoding a short
 * value (~1% of a proxied request's instructions, bench/instructions.mjs).
 * It is on Buffer.prototype but undocumented (undici calls its `utf8Slice`
 * sibling the same way), so it is looked up once, with toString as the
 * fallback should a Node version drop it.
 */
type SliceableBuffer = Buffer & { latin1Slice(start: number, end: number): string };

function sliceLatin1(value: Buffer): string {
  return (value as SliceableBuffer).latin1Slice(0, value.length);
}

function decodeLatin1(value: Buffer): string {
  return value.toString('latin1');
}

export const latin1: (value: Buffer) => string =
  typeof (Buffer.prototype as Partial<SliceableBuffer>).latin1Slice === 'function' ? sliceLatin1 : decodeLatin1;
