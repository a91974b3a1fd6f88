// What `vespid all` prints, and where: the banner on stdout, the log on stderr (JSON lines when
// stderr is not a terminal, pino-pretty lines with VESPID_LOG_FORMAT=pretty), one call followed
// across gateway, scheduler and runner by its request and activation ids, and a function's own
// output kept in its activation, never in the platform's log.
import test from "ava";
import { startVespidProcess, type VespidProcess } from "./vespid-process.ts";

/** Each line of stderr parsed; a line that is not a JSON object fails the test that reads it. */
function jsonLines(stderr: string): Array<Record<string, unknown>> {
  return stderr
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => {
      try {
        const value = JSON.parse(line) as unknown;
        if (value && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
      } catch {
        // reported below
      }
      throw new Error(`a stderr line is not a JSON object: ${line}`);
    });
}

async function call(vespid: VespidProcess, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${vespid.url}/api/v1/namespaces/_${path}`, {
    method,
    headers: { authorization: `Basic ${Buffer.from(vespid.apiKey).toString("base64")}`, "content-type": "application/json", ...headers },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

/** Waits until `check` holds for stderr's JSON lines (the log is written as things happen). */
async function logged(vespid: VespidProcess, check: (lines: Array<Record<string, unknown>>) => boolean, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check(jsonLines(vespid.stderr()))) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

const GUEST_SECRET = "guest-output-7f3e9c";

test.serial("stdout has the banner and no log; stderr has JSON lines only, and a call's ids cross the components", async (t) => {
  const vespid = await startVespidProcess({ VESPID_LOG_LEVEL: "debug", VESPID_LOG_FORMAT: "" });
  try {
    const out = vespid.stdout();
    // The banner: what runs, where, where the key is, how to try it.
    t.regex(out, /Vespid is running/);
    t.true(out.includes(`${vespid.url}/api/v1`), out);
    t.true(out.includes(`${vespid.dataDir}/auth.key`), out);
    t.true(out.includes(vespid.apiKey), out);
    t.regex(out, /npx vespid action list/);
    t.regex(out, /curl -u /);
    t.regex(out, /^isolation: (kvm|process) \(/m);
    t.false(out.split("\n").some((line) => line.trimStart().startsWith("{")), `no JSON on stdout:\n${out}`);
    // Started with stderr a pipe: JSON lines, at debug level.
    const startup = jsonLines(vespid.stderr());
    t.true(startup.some((line) => line.msg === "vespid is ready"));
    t.true(startup.every((line) => typeof line.level === "string" && typeof line.time === "string"));

    const code = `function main(p) { console.log("${GUEST_SECRET} stdout " + p.who); console.error("${GUEST_SECRET} stderr"); return { who: p.who }; }`;
    t.is((await call(vespid, "PUT", "/actions/chatty", { exec: { kind: "nodejs", code } })).status, 200);

    const reqId = "walkthrough-req-42";
    const invoked = await call(vespid, "POST", "/actions/chatty?blocking=true", { who: "Ada" }, { "X-Request-Id": reqId });
    t.is(invoked.status, 200, JSON.stringify(invoked.body));
    t.is(invoked.headers.get("x-request-id"), reqId, "the caller's request id is echoed");
    const { activationId } = invoked.body;
    // The function's output is in its activation...
    t.true(invoked.body.logs.some((line: string) => line.includes(`${GUEST_SECRET} stdout Ada`)), JSON.stringify(invoked.body.logs));
    t.true(invoked.body.logs.some((line: string) => line.includes(`${GUEST_SECRET} stderr`)));

    const tagged = (component: string) => (lines: Array<Record<string, unknown>>) =>
      lines.some((line) => line.component === component && line.reqId === reqId && line.activationId === activationId);
    t.true(await logged(vespid, tagged("gateway")), "the gateway's line for the call has its reqId and activationId");
    t.true(await logged(vespid, tagged("runner")), "the runner's lines for the call have both ids");
    // A blocking call may go straight to the runner; a queued one also passes the scheduler.
    const queued = await call(vespid, "POST", "/actions/chatty", { who: "Queue" }, { "X-Request-Id": "queued-call" });
    t.is(queued.status, 202);
    const queuedTagged = (component: string) => (lines: Array<Record<string, unknown>>) =>
      lines.some((line) => line.component === component && line.reqId === "queued-call" && line.activationId === queued.body.activationId);
    t.true(await logged(vespid, queuedTagged("scheduler")), "the scheduler's line for the queued call has both ids");
    t.true(await logged(vespid, queuedTagged("runner")), "the runner's lines for the queued call have both ids");
    const runnerLines = jsonLines(vespid.stderr()).filter((line) => line.component === "runner" && line.activationId === activationId);
    t.true(runnerLines.some((line) => line.msg === "invocation ended" && line.status === "success"));

    // A request id that is not sane (spaces, too long) is replaced, never echoed or logged.
    const odd = await fetch(`${vespid.url}/api/v1/namespaces/_/actions`, {
      headers: { authorization: `Basic ${Buffer.from(vespid.apiKey).toString("base64")}`, "X-Request-Id": "no spaces allowed" },
    });
    await odd.body?.cancel();
    t.regex(odd.headers.get("x-request-id") ?? "", /^[0-9a-f]{16}$/);
    const long = await fetch(`${vespid.url}/health`, { headers: { "X-Request-Id": "x".repeat(129) } });
    await long.body?.cancel();
    t.regex(long.headers.get("x-request-id") ?? "", /^[0-9a-f]{16}$/);

    // A failing call is followed the same way (its error stays in the record too).
    const failing = `function main() { console.log("${GUEST_SECRET} before the throw"); throw new Error("${GUEST_SECRET} thrown"); }`;
    t.is((await call(vespid, "PUT", "/actions/failing", { exec: { kind: "nodejs", code: failing } })).status, 200);
    const failed = await call(vespid, "POST", "/actions/failing?blocking=true", {}, { "X-Request-Id": "failing-call" });
    t.is(failed.status, 502);
    t.true(await logged(vespid, (lines) => lines.some((l) => l.component === "runner" && l.reqId === "failing-call" && l.status === "action developer error")));

    // ...and never in the platform's log, on either stream.
    t.false(vespid.stderr().includes(GUEST_SECRET), "the function's output is not in the platform's log");
    t.false(vespid.stdout().includes(GUEST_SECRET));
    t.notThrows(() => jsonLines(vespid.stderr()), "stderr stayed JSON lines only");
  } finally {
    t.is(await vespid.stop(), 0, "a SIGTERM ends it cleanly");
  }
});

test.serial("VESPID_LOG_FORMAT=pretty writes readable lines, not JSON, to stderr", async (t) => {
  const vespid = await startVespidProcess({ VESPID_LOG_FORMAT: "pretty", VESPID_LOG_LEVEL: "info" });
  try {
    const lines = vespid.stderr().split("\n").filter((line) => line !== "");
    t.true(lines.length > 0);
    t.false(lines.some((line) => line.startsWith("{")), vespid.stderr());
    // pino-pretty's form: [time] LEVEL (name): message, with the bindings on the lines below.
    t.true(lines.some((line) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(vespid\): vespid is ready/.test(line)), vespid.stderr());
    t.false(vespid.stdout().includes("INFO"), "the log stays off stdout");
  } finally {
    await vespid.stop();
  }
});

test.serial("a VESPID_LOG_FORMAT that is neither json nor pretty stops the start with the reason", async (t) => {
  const error = await t.throwsAsync(startVespidProcess({ VESPID_LOG_FORMAT: "xml" }, 30_000));
  t.regex(error!.message, /VESPID_LOG_FORMAT must be one of json, pretty, got "xml"/);
});
