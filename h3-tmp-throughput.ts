import { startPlatform } from "./test/harness.ts";
const p = await startPlatform({ runnerCapacity: 4 });
await p.request("PUT", "/api/v1/namespaces/_/actions/load", { exec: { kind: "nodejs", code: "function main(p) { return p; }" } });
for (const round of [1, 2, 3]) {
  const TOTAL = 3000; let next = 0; const t0 = performance.now(); let bad = 0;
  await Promise.all(Array.from({ length: 64 }, async () => { while (next < TOTAL) { next++; const r = await p.request("POST", "/api/v1/namespaces/_/actions/load", { i: next }); if (r.status !== 202) bad++; } }));
  const s = (performance.now() - t0) / 1000;
  console.log(`round ${round}: ${Math.round(TOTAL / s)}/s non-blocking, ${bad} not 202`);
  await new Promise((r) => setTimeout(r, 3000));
}
await p.stop();
process.exit(0);
