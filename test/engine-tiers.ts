// The engine's conformance tests run once per isolation tier: each test is registered as
// "kvm › …" and "process › …". A tier this host cannot run is still registered, as a skipped test
// whose title carries the reason ("— skipped: /dev/kvm: No such file or directory"), so that a
// missing tier is visible in every report and never passes silently.
import test, { type ExecutionContext } from "ava";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { isolationAvailable, openNativeEngine } from "../runner/engine-native.ts";
import { ISOLATIONS, type Engine, type EngineOutcome, type EngineRequest, type Isolation } from "../runner/engine.ts";
import { createImageStore } from "../runner/image-store.ts";
import type { ImageStore } from "../runner/images.ts";

/** Longest a single engine test may take before it fails on its own (rather than stall the file). */
export const TEST_TIMEOUT_MS = 90_000;

export type Limits = Partial<Pick<EngineRequest, "memoryMb" | "timeoutMs" | "logLimit">>;
export type Run = (params: unknown, opts?: { snapshot?: boolean }) => Promise<EngineOutcome>;
type Impl = (t: ExecutionContext, tier: Tier) => Promise<void> | void;

export interface Tier {
  readonly isolation: Isolation;
  /** Why this host cannot run the tier; undefined when it can. */
  readonly missing: string | undefined;
  /** The tier's engine, opened on first use (never for a missing tier). */
  engine(): Engine;
  /** Builds `code` (JS checked on this tier) and returns a function that runs it on this tier. */
  action(kind: "c" | "nodejs", code: string, limits?: Limits): Promise<Run>;
  /** Registers `${isolation} › ${title}`, or its skipped twin with the reason. */
  test(title: string, impl: Impl): void;
  serial(title: string, impl: Impl): void;
}

let dir: string | undefined;
/** The file's scratch directory (made in the before hook engineTiers registers). */
export function workDir(): string {
  if (!dir) throw new Error("engineTiers() was not called, or its before hook has not run");
  return dir;
}
const inflight = new Map<number, string>();
let nextCall = 0;

/**
 * The tiers, each with its own engine and image store. Registers the hooks that make and remove the
 * image directory and that fail the file when an engine call never came back.
 */
export function engineTiers(prefix = "vespid-engine-"): Tier[] {
  test.before(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  test.after.always(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    if (inflight.size > 0) {
      // The engine still holds these calls (and the event loop: exit-when-done.ts ends the worker).
      throw new Error(`${inflight.size} engine call(s) never completed: ${[...inflight.values()].join("; ")}`);
    }
  });
  return ISOLATIONS.map((isolation) => makeTier(isolation));
}

function makeTier(isolation: Isolation): Tier {
  const available = isolationAvailable(isolation);
  const missing = available.ok ? undefined : available.why;
  let engine: Engine | undefined;
  let images: ImageStore | undefined;
  const tier: Tier = {
    isolation,
    missing,
    engine() {
      if (missing) throw new Error(`isolation ${isolation} is not available: ${missing}`);
      return (engine ??= openNativeEngine({ isolation }));
    },
    async action(kind, code, limits = {}) {
      images ??= createImageStore({ dataDir: workDir(), logger: pino({ level: "silent" }), engine: tier.engine() });
      const built = await images.build(kind, code);
      if (!built.ok) throw new Error(built.error);
      const init = kind === "nodejs" ? Buffer.from(code) : new Uint8Array();
      return (params, opts = {}) => {
        const id = nextCall++;
        inflight.set(id, `${isolation} ${kind} ${JSON.stringify(params).slice(0, 80)}`);
        return tier.engine().run({
          image: built.image, init, params: JSON.stringify(params),
          memoryMb: limits.memoryMb ?? 64, timeoutMs: limits.timeoutMs ?? 5000,
          ...(limits.logLimit ? { logLimit: limits.logLimit } : {}),
          ...(opts.snapshot === false ? {} : { snapshotKey: built.codeHash }),
        }).finally(() => inflight.delete(id));
      };
    },
    test: (title, impl) => register(test, title, impl),
    serial: (title, impl) => register(test.serial, title, impl),
  };
  function register(kind: typeof test | typeof test.serial, title: string, impl: Impl) {
    const name = `${isolation} › ${title}`;
    if (missing) {
      test.skip(`${name} — skipped: ${missing}`, () => {});
      return;
    }
    kind(name, async (t) => {
      t.timeout(TEST_TIMEOUT_MS, `${name} took longer than ${TEST_TIMEOUT_MS / 1000} s`);
      await impl(t, tier);
    });
  }
  return tier;
}

/** The result of an ok outcome, parsed; any other status fails with the status and the error. */
export function json(o: EngineOutcome): any {
  if (o.status !== "ok") throw new Error(`${o.status}: ${o.error}`);
  return JSON.parse(o.result!);
}

/** A test that fails when no tier at all can run here (everything else would only be skipped). */
export function someTierRuns(tiers: Tier[]) {
  test("at least one isolation tier runs on this host", (t) => {
    t.true(tiers.some((tier) => !tier.missing), tiers.map((tier) => `${tier.isolation}: ${tier.missing}`).join("; "));
  });
}
