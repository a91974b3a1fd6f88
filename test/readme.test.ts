// The README's walkthrough, run as a reader would paste it: every ```sh block between
// `<!-- walkthrough -->` and `<!-- walkthrough end -->`, in order, in one bash with `set -euo
// pipefail`, against `vespid all` started as `npm start` would start it (its own data directory and
// port, which the README's first block reads from VESPID_DATA_DIR and VESPID_PORT). A block right
// after `<!-- skip: reason -->` is left out (it starts the platform itself, needs a tool the machine
// lacks, …). One test per block, so a failure names the block and shows its output.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { CHECKOUT, startVespidProcess, type VespidProcess } from "./vespid-process.ts";

interface Block {
  /** 1-based line of the opening fence in README.md. */
  line: number;
  /** The section heading the block is under. */
  section: string;
  code: string;
  skip?: string;
}

/** The walkthrough's sh blocks, with the reason for each skipped one. */
export function walkthroughBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const blocks: Block[] = [];
  let inside = false;
  let section = "";
  let pendingSkip: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith("#")) section = line.replace(/^#+\s*/, "");
    if (line.trim() === "<!-- walkthrough -->") inside = true;
    if (line.trim() === "<!-- walkthrough end -->") inside = false;
    const skip = /^<!-- skip: (.+) -->$/.exec(line.trim());
    if (skip) pendingSkip = skip[1];
    const fence = /^```(\S*)/.exec(line);
    if (!fence) continue;
    const end = lines.findIndex((l, j) => j > i && l.startsWith("```"));
    if (end < 0) throw new Error(`README.md line ${i + 1}: a code block is never closed`);
    if (inside && fence[1] === "sh") blocks.push({ line: i + 1, section, code: lines.slice(i + 1, end).join("\n"), ...(pendingSkip && { skip: pendingSkip }) });
    pendingSkip = undefined;
    i = end;
  }
  return blocks;
}

const readme = await readFile(join(CHECKOUT, "README.md"), "utf8");
const blocks = walkthroughBlocks(readme);

/** How long one block may take: a C compile, an alarm's poll and npx starting node many times. */
const BLOCK_TIMEOUT_MS = 4 * 60_000;

let vespid: VespidProcess;
let work: string;
let shell: ReturnType<typeof spawn>;
let output = "";
let exited: number | null | undefined;

test.before(async () => {
  vespid = await startVespidProcess();
  work = await mkdtemp(join(tmpdir(), "vespid-readme-"));
  const env: NodeJS.ProcessEnv = { ...process.env };
  // The reader's terminal: no OpenWhisk credentials of their own, and the CLI's properties file
  // in the test's directory rather than the home directory.
  for (const name of ["__OW_API_HOST", "__OW_API_KEY", "__OW_NAMESPACE", "NATS_URL"]) delete env[name];
  Object.assign(env, { VESPID_DATA_DIR: vespid.dataDir, VESPID_PORT: String(vespid.port), VESPID_CONFIG_FILE: join(work, "vespidprops"), TMPDIR: work });
  shell = spawn("bash", ["--noprofile", "--norc"], { cwd: CHECKOUT, env, stdio: ["pipe", "pipe", "pipe"] });
  shell.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  shell.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  shell.once("exit", (code) => (exited = code));
  shell.stdin!.write("set -euo pipefail\n");
});

test.after.always(async () => {
  shell?.stdin?.end();
  shell?.kill();
  await vespid?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test.serial("the README marks a walkthrough of sh blocks, skips only with a reason", (t) => {
  t.true(blocks.length >= 20, `found ${blocks.length} walkthrough blocks`);
  t.true(blocks.filter((b) => !b.skip).length >= 15);
  // The CLI walkthrough is part of it.
  t.true(blocks.some((b) => !b.skip && b.code.includes("npx vespid action invoke")));
  for (const block of blocks) {
    if (!block.skip) continue;
    t.true(block.skip.length > 10, `line ${block.line}: a skip says why`);
    // Not tests of their own (a skipped test would count as missing): named here, with the reason.
    t.log(`README.md line ${block.line} (${block.section}) is not run: ${block.skip}`);
  }
});

for (const [index, block] of blocks.entries()) {
  const title = `README.md line ${block.line} (${block.section})`;
  if (block.skip) continue;
  test.serial(title, async (t) => {
    t.timeout(BLOCK_TIMEOUT_MS + 10_000);
    t.is(exited, undefined, "an earlier block ended the shell");
    const file = join(work, `block-${index}.sh`);
    await writeFile(file, `${block.code}\n`);
    const from = output.length;
    const done = `@@block ${index} done@@`;
    // Sourced, so variables carry over to the next blocks; stdin is not the script, so nothing
    // a command reads can eat the rest of it.
    shell.stdin!.write(`source ${file} </dev/null\necho '${done}'\n`);
    const deadline = Date.now() + BLOCK_TIMEOUT_MS;
    while (!output.includes(done, from) && exited === undefined && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const printed = output.slice(from).replace(done, "");
    t.log(printed.length > 6000 ? `…${printed.slice(-6000)}` : printed);
    t.true(output.includes(done, from), exited !== undefined ? `a command failed (bash exited with ${exited})` : `still running after ${BLOCK_TIMEOUT_MS / 1000} s`);
  });
}
