// Loaded into every AVA worker (package.json "ava.require"). AVA waits for a test file's process
// to exit by itself once its tests are done. One that leaks a handle (a server, a child process, a
// connection, an engine call that never came back) would sit there until AVA's global timeout,
// which then also stops every file running beside it and leaves their tests pending. Here a
// finished file gets a grace period to exit; after it, the worker ends with a failure that names
// what it left open, and the other files run on.
import { registerCompletionHandler } from "ava";

const GRACE_MS = 10_000;

registerCompletionHandler(() => {
  setTimeout(() => {
    // Pipes and TTYs are stdio and the channel to AVA, always there.
    const open = process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap" && r !== "PipeWrap");
    console.error(`this test file was still holding ${open.join(", ") || "something"} ${GRACE_MS / 1000} s after its tests ended: `
      + "something it started was not stopped (close it in test.after.always or t.teardown)");
    process.exit(1);
  }, GRACE_MS).unref();
});
