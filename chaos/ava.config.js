// AVA settings of the fault-injection suite (`npm run test:chaos`): its tests live outside test/
// so that `npm test` does not run them, and they run one file at a time, each case starting real
// processes on a shared 2-core machine.
export default {
  files: ["chaos/**/*.test.ts"],
  extensions: { ts: "module" },
  nodeArguments: ["--import=tsx"],
  require: ["./test/exit-when-done.ts"],
  workerThreads: false,
  // Inactivity timeout: a case (start, 2,000 calls, the wait for their records) reports within it.
  timeout: "6m",
  // One file at a time; each file runs its cases serially (test.serial).
  concurrency: 1,
};
