// The JavaScript side of the JS guest (native/guest/js_main.c embeds this file and evaluates it
// once at boot, before the action's code arrives): console, CommonJS `module`/`exports` for plain
// code, finding main, and calling it. A zip action's loader is guest/modules.js. Everything but
// `run` happens at init, before the snapshot point, so a warm call only runs main.
//
// Its completion value is a function of the host's natives that returns the guest's API.
(function (write, settle, compile, evalModule) {
  'use strict';
  const fmt = (v) => {
    if (typeof v === 'string') return v;
    if (v instanceof Error) return describe(v);
    try { const s = JSON.stringify(v); return s === undefined ? String(v) : s; }
    catch (e) { return String(v); }
  };
  const describe = (e) => e instanceof Error
    ? `${e.name}: ${e.message}` + (e.stack ? `\n${e.stack.replace(/\n$/, '')}` : '')
    : `uncaught ${fmt(e)}`;
  const line = (fd) => (...args) => write(fd, args.map(fmt).join(' ') + '\n');
  globalThis.console = { log: line(1), info: line(1), debug: line(1), warn: line(2), error: line(2) };
  globalThis.module = { exports: {} };
  globalThis.exports = globalThis.module.exports;

  const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
  // OpenWhisk's messages, so clients and docs that quote them still match.
  const NO_CODE = 'Missing main/no code to execute.';
  const notAFunction = (name) => `Initialization has failed due to: Action entrypoint '${name}' is not a function.`;

  let mainFn = null;
  let missing = NO_CODE;

  /** `a.b.c` looked up on a value; undefined where a step is missing. */
  const pick = (value, path) => {
    for (const key of path.split('.')) {
      if (value === null || value === undefined) return undefined;
      value = value[key];
    }
    return value;
  };

  /**
   * Plain code, already evaluated as a global script: main is a global binding (function, var, let
   * or const, as OpenWhisk's `return main` sees it), else `module.exports.main` / `exports.main`,
   * else `module.exports` itself when it is a function.
   */
  function plain(name, empty) {
    if (empty) return;
    const [head, ...rest] = name.split('.');
    let found;
    if (IDENTIFIER.test(head)) {
      let binding;
      try { binding = compile(`typeof ${head} === 'undefined' ? undefined : ${head}`, '<main>'); }
      catch (e) { binding = undefined; } // a reserved word (`default`): only an export can be it
      found = rest.length ? pick(binding, rest.join('.')) : binding;
    }
    const m = globalThis.module && globalThis.module.exports;
    if (typeof found !== 'function') found = pick(m, name);
    if (typeof found !== 'function') found = pick(globalThis.exports, name);
    if (typeof found !== 'function' && typeof m === 'function') found = m;
    accept(found, name);
  }

  function accept(found, name) {
    if (typeof found === 'function') mainFn = found;
    else missing = notAFunction(name);
  }

  function run(params) {
    if (!mainFn) return settle(1, missing);
    const fail = (e) => settle(1, describe(e));
    try {
      Promise.resolve(mainFn(params)).then((r) => {
        let text;
        try { text = JSON.stringify(r === undefined ? {} : r); } catch (e) { return fail(e); }
        if (text === undefined) return settle(1, 'The action did not return a dictionary.');
        settle(0, text);
      }, fail);
    } catch (e) { fail(e); }
  }

  // import() in plain code: there is nothing to import (modules.js replaces this for zips).
  const resolveImport = (base, spec) => {
    const e = new Error(`Cannot find module '${spec}': plain code has no modules to import; give the action as a zip`);
    e.code = 'MODULE_NOT_FOUND';
    throw e;
  };
  const api = { plain, run, resolveImport };
  /**
   * A zip action: guest/modules.js (evaluated only for zips, so plain code boots no larger) adds
   * the module loader to the API, then loads the zip's entry.
   */
  api.loadModules = (factory, envelope) => {
    Object.assign(api, factory({ compile, evalModule, accept, pick }));
    api.modules(envelope);
  };
  return api;
})
