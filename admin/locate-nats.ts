// Finds the NATS server of a Vespid started with its embedded nats-server, from the ports file that
// nats-server keeps in the data directory while it runs (`nats-server_<pid>.ports`).
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

/** The client URL of the embedded nats-server running in `dataDir`, or undefined if none runs. */
export async function findEmbeddedNats(dataDir: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = await readdir(dataDir);
  } catch {
    return undefined;
  }
  for (const name of names) {
    const pid = /^nats-server_(\d+)\.ports$/.exec(name)?.[1];
    // A file left by a server that was killed names a dead pid: skip it.
    if (!pid || !isAlive(Number(pid))) continue;
    try {
      const ports = JSON.parse(await readFile(join(dataDir, name), "utf8")) as { nats?: string[] };
      if (ports.nats?.[0]) return ports.nats[0];
    } catch {
      // being written or unreadable: try the next
    }
  }
  return undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
