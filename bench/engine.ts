// The virtine engine's figures (issue 3's targets): warm call latency, CPU-bound overhead against
// the same QuickJS in-process, throughput on all cores, cold start and memory. Builds
// native/build/vsp-bench and a C echo action, then runs the benchmark, which prints each figure
// next to a baseline measured in the same run.
//   node --import=tsx bench/engine.ts [seconds per throughput run = 3]
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { createImageStore, JS_IMAGE } from "../runner/image-store.ts";

const native = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../native");
execFileSync("make", ["-s", "-C", native, "bench"], { stdio: "inherit" });

const dir = await mkdtemp(path.join(tmpdir(), "vespid-bench-"));
try {
  const echo = await createImageStore({ dataDir: dir, logger: pino({ level: "silent" }) }).build(
    "c",
    "#include <vespid.h>\nconst char *vespid_main(const char *params) { return params; }\n",
  );
  if (!echo.ok) throw new Error(echo.error);
  execFileSync(path.join(native, "build/vsp-bench"), [JS_IMAGE, echo.image, process.argv[2] ?? "3"], { stdio: "inherit" });
} finally {
  await rm(dir, { recursive: true, force: true });
}
