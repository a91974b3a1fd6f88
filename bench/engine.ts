// The engine's figures for each isolation tier present on this host (kvm: issue 3's targets;
// process: issue 7's), each next to its target and a baseline or floor measured in the same run:
// warm call latency, CPU-bound overhead against the same QuickJS in-process, throughput on 2
// threads, cold start, deadline overshoot and memory. The floors are a pipe round trip between two
// processes and a fork of a process holding an initialised QuickJS guest. A tier the host cannot
// run is printed as skipped, with the reason. Builds native/build/vsp-bench and a C echo action.
//   node --import=tsx bench/engine.ts [seconds per throughput run = 3] [tiers = kvm,process]
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { createImageStore, JS_IMAGE } from "../runner/image-store.ts";

const [seconds = "3", tiers = "kvm,process"] = process.argv.slice(2);
if (!(Number(seconds) > 0 && Number(seconds) <= 60)) {
  console.error(`bench/engine.ts: seconds per throughput run must be a number in (0, 60], got "${seconds}"`);
  process.exit(2);
}
if (!tiers.split(",").every((t) => t === "kvm" || t === "process")) {
  console.error(`bench/engine.ts: tiers is a comma-separated list of kvm and process, got "${tiers}"`);
  process.exit(2);
}

const native = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../native");
try {
  execFileSync("make", ["-s", "-C", native, "bench"], { stdio: "inherit" });
} catch {
  console.error("bench/engine.ts: building native/build/vsp-bench failed (make's output is above)");
  process.exit(1);
}

const dir = await mkdtemp(path.join(tmpdir(), "vespid-bench-"));
try {
  const echo = await createImageStore({ dataDir: dir, logger: pino({ level: "silent" }) }).build(
    "c",
    "#include <vespid.h>\nconst char *vespid_main(const char *params) { return params; }\n",
  );
  if (!echo.ok) throw new Error(echo.error);
  execFileSync(path.join(native, "build/vsp-bench"), [JS_IMAGE, echo.image, seconds, tiers], { stdio: "inherit" });
} catch (err) {
  // vsp-bench has already said what failed; only its exit status is left to pass on.
  const status = (err as { status?: number }).status;
  if (typeof status !== "number") throw err;
  process.exitCode = status;
} finally {
  await rm(dir, { recursive: true, force: true });
}
