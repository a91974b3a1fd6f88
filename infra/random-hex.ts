// Random ids for every request and invocation, from a pool of random bytes refilled 4 KiB at a
// time: one call into the CSPRNG per 256 activation ids instead of one per id, which showed as
// ~30 µs a call in profiles of the invocation path. The bytes are the same CSPRNG's.
import { randomFillSync } from "node:crypto";

const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let used = POOL_BYTES;

/** `bytes` random bytes (at most 256) as lower-case hex. */
export function randomHex(bytes: number): string {
  if (used + bytes > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const hex = pool.toString("hex", used, used + bytes);
  // Never handed out twice: the bytes are overwritten on the next refill only.
  used += bytes;
  return hex;
}
