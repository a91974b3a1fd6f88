// Every route of the API, driven with random and malformed input: names (empty, long, `..`,
// unicode, percent-escapes), query values, bodies (wrong types, deep nesting, broken JSON, huge
// strings) and headers. Every answer must be a success or a 4xx JSON error with `error` and
// `code`, never a 5xx or a hang, and afterwards every stored record must still be whole and valid.
// The random sequence is seeded; a failure names the seed and the request so it can be replayed.
import test from "ava";
import { Kvm } from "@nats-io/kv";
import { Action, ACTIONS_BUCKET, EntityName, Package, PACKAGES_BUCKET } from "../contracts/index.ts";
import { OPERATIONS, type Operation } from "../gateway/openapi/document.ts";
import { Admin } from "../admin/namespaces.ts";
import { startPlatform, type Platform } from "./harness.ts";

const SEED = Number(process.env.VESPID_FUZZ_SEED ?? 20261127);
const REQUESTS = Number(process.env.VESPID_FUZZ_REQUESTS ?? 1500);

let platform: Platform;
/** Real entities for the random requests to hit, not only misses; put back now and then. */
async function seedEntities() {
  const put = (path: string, body: unknown) => platform.request("PUT", `/api/v1/namespaces/_/${path}?overwrite=true`, body);
  const echo = { exec: { kind: "nodejs", code: "function main(p) { return p; }" } };
  for (const [path, body] of [["actions/echo", echo], ["packages/pkg", { parameters: [{ key: "p", value: 1 }] }], ["actions/pkg/inner", echo]] as const) {
    const res = await put(path, body);
    if (res.status !== 200) throw new Error(`seeding ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  }
}
/**
 * Another namespace sharing a published `pkg` with an `inner` action (and a private `hidden`), so
 * the random requests naming it by path hit the shared reads and invocations, not only refusals.
 */
async function seedSharingNamespace() {
  const { apiKey } = await (await Admin.open(platform.nc)).createNamespace("sharer");
  const echo = { exec: { kind: "nodejs", code: "function main(p) { return p; }" } };
  for (const [path, body] of [["packages/pkg", { publish: true }], ["actions/pkg/inner", echo], ["packages/hidden", {}]] as const) {
    const res = await platform.request("PUT", `/api/v1/namespaces/_/${path}`, body, {}, { auth: apiKey });
    if (res.status !== 200) throw new Error(`seeding sharer's ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  }
}
test.before(async () => {
  platform = await startPlatform();
  await seedEntities();
  await seedSharingNamespace();
});
test.after.always(async () => {
  await platform?.stop();
});

/** mulberry32: small, seedable, good enough to pick test inputs. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  return { next, pick, int: (n: number) => Math.floor(next() * n) };
}

const NAMES = [
  "echo", "pkg", "inner", "pkg/inner", "_", "", " ", ".", "..", "../echo", "a/../b", "%2e%2e", "%2F", "a%00b", "a b",
  "x".repeat(256), "x".repeat(257), "名前", "🐝", "a@b.c", "-lead", "trail ", "a/b/c", "guest", "0123456789abcdef0123456789abcdef",
];
const VALUES = ["", "true", "false", "0", "-1", "1e999", "NaN", "200", "201", "x", "0.0.1", "9.9.9", "..", "%00", "[]", "{}", "a".repeat(5000)];
const QUERY_KEYS = ["blocking", "result", "overwrite", "code", "limit", "skip", "since", "upto", "name", "docs", "version", "versions", "rollback", "public", "zzz"];

function randomJson(r: ReturnType<typeof rng>, depth = 0): unknown {
  switch (r.int(depth > 4 ? 6 : 9)) {
    case 0: return null;
    case 1: return r.next() < 0.5;
    case 2: return r.pick([0, -1, 1.5, 1e308, Number.MAX_SAFE_INTEGER + 2, 100, 300_000, 300_001, 16, 512, 513]);
    case 3: return r.pick(VALUES);
    case 4: return r.pick(NAMES);
    case 5: return "s".repeat(r.int(3) * 10_000);
    case 6: return Array.from({ length: r.int(4) }, () => randomJson(r, depth + 1));
    case 7: {
      const keys = ["exec", "kind", "code", "components", "limits", "timeout", "memory", "logs", "parameters", "annotations", "key", "value", "publish", "binding", "namespace", "name", "version"];
      return Object.fromEntries(Array.from({ length: r.int(5) }, () => [r.pick(keys), randomJson(r, depth + 1)]));
    }
    default: {
      // Mostly well-formed action or package bodies with one field wrong: the validators' edges.
      const kind = r.pick(["nodejs", "nodejs:20", "c", "sequence", "java", ""]);
      return { exec: { kind, code: r.pick(["function main(){return {}}", "", "int x(", "#include <vespid.h>\nconst char *vespid_main(const char *p){return p;}"]), components: r.next() < 0.5 ? ["/_/echo"] : randomJson(r, depth + 1) }, limits: randomJson(r, depth + 1), parameters: randomJson(r, depth + 1) };
    }
  }
}

function randomBody(r: ReturnType<typeof rng>): { text?: string; contentType?: string } {
  switch (r.int(6)) {
    case 0: return {};
    case 1: return { text: "{ not json", contentType: "application/json" };
    case 2: return { text: "[".repeat(5000) + "]".repeat(5000), contentType: "application/json" };
    case 3: return { text: JSON.stringify(randomJson(r)), contentType: r.pick(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]) };
    case 4: return { text: "\u0000\uffff\ud800", contentType: "application/json" };
    default: return { text: JSON.stringify(randomJson(r)), contentType: "application/json" };
  }
}

function fillPath(op: Operation, r: ReturnType<typeof rng>): string {
  return op.path.replace(/:(\w+)/g, (_, param: string) => {
    if (param === "namespace") return r.pick(["_", "_", "_", "guest", "other", "sharer", "..", "%2F"]);
    const name = param === "activationId" ? r.pick(["0123456789abcdef0123456789abcdef", "xyz", "..", ""]) : r.pick(NAMES);
    // Most names go in escaped, as clients send them; some raw, to test the router's own parsing.
    return r.next() < 0.7 ? name.split("/").map(encodeURIComponent).join("/") : name;
  });
}

test("random and malformed requests on every route: never a 5xx or a hang, nothing half-written", async (t) => {
  const r = rng(SEED);
  const seen = new Map<string, number>();
  for (let i = 0; i < REQUESTS; i++) {
    if (i % 50 === 49) await seedEntities();
    const op = r.pick(OPERATIONS);
    const path = fillPath(op, r);
    const query = new URLSearchParams();
    for (let q = r.int(4); q > 0; q--) query.append(r.pick(QUERY_KEYS), r.pick(VALUES));
    const body = op.method === "get" ? {} : op.method === "delete" && r.next() < 0.9 ? {} : randomBody(r);
    const headers: Record<string, string> = {};
    if (body.contentType) headers["content-type"] = body.contentType;
    if (r.next() < 0.05) headers.authorization = r.pick(["Basic", "Basic !!!", "Bearer x", `Basic ${Buffer.from("a:b").toString("base64")}`, "Basic " + "A".repeat(10_000)]);
    const url = `${path}${query.size ? `?${query}` : ""}`;
    const what = `#${i} (seed ${SEED}) ${op.method.toUpperCase()} ${url.slice(0, 200)} body ${String(body.text).slice(0, 120)}`;
    let res: Response;
    try {
      res = await fetch(new URL(url, platform.url), {
        method: op.method.toUpperCase(),
        headers: { authorization: `Basic ${Buffer.from(platform.apiKey).toString("base64")}`, ...headers },
        body: body.text,
        signal: AbortSignal.timeout(70_000),
      });
    } catch (err) {
      t.fail(`${what}: ${(err as Error).message}`);
      continue;
    }
    const text = await res.text();
    seen.set(`${op.method} ${op.path} ${res.status}`, (seen.get(`${op.method} ${op.path} ${res.status}`) ?? 0) + 1);
    if (res.status >= 500) {
      t.fail(`${what} → ${res.status} ${text.slice(0, 300)}`);
      continue;
    }
    if (res.status >= 400) {
      let parsed: { error?: unknown; code?: unknown } = {};
      try {
        parsed = JSON.parse(text);
      } catch {
        t.fail(`${what} → ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
        continue;
      }
      if (typeof parsed.error !== "string" || typeof parsed.code !== "string")
        t.fail(`${what} → ${res.status} without {error, code}: ${text.slice(0, 200)}`);
    }
  }

  // Nothing half-written: every stored action and package is a whole, valid record.
  const kvm = new Kvm(platform.nc);
  for (const [bucket, schema] of [[ACTIONS_BUCKET, Action], [PACKAGES_BUCKET, Package]] as const) {
    const kv = await kvm.open(bucket);
    for await (const key of await kv.keys()) {
      const entry = await kv.get(key);
      if (!entry || entry.operation !== "PUT") continue;
      const parsed = schema.safeParse(entry.json());
      t.true(parsed.success, `${bucket} ${key}: ${parsed.success ? "" : parsed.error.message}`);
      if (parsed.success) t.true(EntityName.safeParse(parsed.data.name.split("/").at(-1)).success, `${bucket} ${key}: name ${parsed.data.name}`);
    }
  }
  t.true(seen.size > 40, `requests reached ${seen.size} route/status pairs`);
  t.log(`${REQUESTS} requests, ${seen.size} route/status pairs:\n${[...seen].sort().map(([k, n]) => `${k}: ${n}`).join("\n")}`);
});
