#!/usr/bin/env node
// The package's bin: loads tsx from this package and runs bin/vespid.ts. The .ts file's own
// shebang (`node --import=tsx`) resolves tsx from the current directory, which works only inside
// the checkout; this launcher also works after `npm install -g` and from any directory.
import { register } from "tsx/esm/api";

register();
await import("./vespid.ts");
