// The process tier's walls, read from the outside (/proc of a live, parked sandbox): new
// namespaces, an unprivileged uid, no capabilities, seccomp, rlimits, no fds but the listener, an
// empty root, and no writable memory outside guest memory (which the host restores every call).
import test from "ava";
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { isolationAvailable, openNativeEngine } from "../runner/engine-native.ts";
import { createImageStore } from "../runner/image-store.ts";
import type { ImageStore } from "../runner/images.ts";

const available = isolationAvailable("process");
const ptest = available.ok ? test.serial : test.skip;
const suffix = available.ok ? "" : ` — skipped: ${available.why}`;

let dir: string;
let images: ImageStore;
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "vespid-sandbox-"));
  images = createImageStore({ dataDir: dir, logger: pino({ level: "silent" }) });
});
test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Sandboxes this test process started (they are its children), parked between calls. */
async function sandboxes(): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    const m = /^\d+ \((.*)\) (\S) (\d+)/.exec(stat);
    if (m && m[1] === "vsp-sandbox" && m[2] !== "Z" && Number(m[3]) === process.pid) found.push(Number(name));
  }
  return found;
}

async function parkedSandbox(t: { fail(msg: string): void }, code: string): Promise<number> {
  const engine = openNativeEngine({ isolation: "process" });
  const built = await images.build("c", code);
  if (!built.ok) throw new Error(built.error);
  const before = new Set(await sandboxes());
  const o = await engine.run({ image: built.image, init: new Uint8Array(), params: "{}", memoryMb: 32, timeoutMs: 5000, snapshotKey: `walls-${built.codeHash}` });
  if (o.status !== "ok") t.fail(`${o.status}: ${o.error}`);
  const pid = (await sandboxes()).find((p) => !before.has(p));
  if (!pid) throw new Error("no parked sandbox found");
  return pid;
}

const ECHO = "#include <vespid.h>\nconst char *vespid_main(const char *p) { return p; }\n";

ptest(`process › a parked sandbox has its own namespaces, no capabilities, seccomp and rlimits${suffix}`, async (t) => {
  const pid = await parkedSandbox(t, ECHO);
  for (const ns of ["user", "mnt", "net", "ipc", "uts", "pid", "cgroup"]) {
    t.not(await readlink(`/proc/${pid}/ns/${ns}`), await readlink(`/proc/self/ns/${ns}`), `${ns} namespace`);
  }
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, "m").exec(status)?.[1]?.trim();
  t.is(field("Uid"), "65534\t65534\t65534\t65534", "runs as nobody on the host");
  t.is(field("CapEff"), "0000000000000000");
  t.is(field("CapPrm"), "0000000000000000");
  t.is(field("NoNewPrivs"), "1");
  t.is(field("Seccomp"), "2", "seccomp filter mode");
  t.is(field("Seccomp_filters"), "2");
  t.is(field("Threads"), "1");
  t.is(await readFile(`/proc/${pid}/uid_map`, "utf8").then((s) => s.trim().split(/\s+/).join(" ")), "1000 65534 1");
  const limits = await readFile(`/proc/${pid}/limits`, "utf8");
  const limit = (name: string) => new RegExp(`^${name}\\s+(\\S+)`, "m").exec(limits)?.[1];
  t.is(limit("Max core file size"), "0");
  t.is(limit("Max file size"), "0");
  t.is(limit("Max processes"), "0");
  t.is(limit("Max open files"), "1");
  t.is(Number(limit("Max address space")), (32 + 16) * 1024 * 1024, "guest memory plus the helper's slack");
  const fds = await readdir(`/proc/${pid}/fd`);
  t.deepEqual(fds, ["0"], "only the seccomp listener");
  t.is(await readlink(`/proc/${pid}/fd/0`), "anon_inode:seccomp notify");
  t.deepEqual(await readdir(`/proc/${pid}/root`), [], "an empty root");
});

ptest(`process › nothing writable outside guest memory, nothing both writable and executable${suffix}`, async (t) => {
  const pid = await parkedSandbox(t, `${ECHO}/* maps */\n`);
  const maps = (await readFile(`/proc/${pid}/maps`, "utf8")).trim().split("\n");
  t.true(maps.length > 3);
  for (const line of maps) {
    const [range, perms, , , , ...rest] = line.split(/\s+/);
    const name = rest.join(" ");
    t.false(perms!.includes("w") && perms!.includes("x"), `W^X: ${line}`);
    if (perms!.includes("w")) t.regex(name, /^\/memfd:vespid-guest/, `writable mapping outside guest memory: ${line}`);
    if (!name.startsWith("/memfd:vespid-guest")) t.regex(name, /vsp-sandbox$|^\[vsyscall\]$/, `unexpected mapping: ${range} ${name}`);
  }
  t.false(maps.some((l) => /\[stack\]|\[heap\]|\[vdso\]|\[vvar\]/.test(l)), "the helper's stack, heap and vDSO are gone");
});

const VSP_RUN = resolve(fileURLToPath(import.meta.url), "../../native/build/vsp-run");

ptest(`process › root of its own user namespace only (a rootless container) still starts sandboxes${suffix}`, async (t) => {
  const built = await images.build("c", `${ECHO}/* nested */\n`);
  if (!built.ok) throw new Error(built.error);
  // `unshare -r`: uid 0 inside a user namespace that maps nothing else, so uid 65534 cannot be
  // used; the engine must take the unprivileged path there, as for any ordinary user.
  const run = spawnSync("unshare", ["-r", VSP_RUN, built.image, '{"nested": true}'], {
    env: { ...process.env, VSP_TIER: "process", VSP_KEY: "nested", VSP_REPEAT: "2" }, encoding: "utf8", timeout: 60_000,
  });
  t.is(run.status, 0, run.stderr);
  t.regex(run.stdout, /status=0 exits=\d+ micros=\d+ result=\{"nested": true\}/);
});
