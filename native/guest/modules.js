// The module loader of zip actions (native/guest/js_main.c embeds this file and evaluates it only
// when the INIT input is a module map). The map `{"/path": source}` is served to CommonJS
// `require` (Node's resolution: relative paths, extensions, index files, package.json `main` and
// `exports`, node_modules folders up to the root; modules cached) and to QuickJS's ES-module loader
// (js_main.c's normaliser and loader call resolveImport and moduleFor). All of it runs at init,
// before the snapshot point.
//
// Its completion value is a function of the prelude's helpers that returns the loader's API.
(function (helpers) {
  'use strict';
  const { compile, evalModule, accept, pick } = helpers;
  const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

  let files = {}; // path → source, until the module is compiled (then dropped: the cache has it)
  const known = new Set(); // every file path of the map
  const dirs = new Set(['/']); // every folder that holds a file
  const cache = Object.create(null); // CommonJS modules by path
  const packages = Object.create(null); // parsed package.json by path (null: unreadable)
  const cjsKeys = Object.create(null); // named exports an ES module sees of a CommonJS one

  const isFile = (p) => known.has(p);
  const dirname = (p) => p.slice(0, p.lastIndexOf('/')) || '/';
  /** Joins and normalises: `/a/b` + `../c` → `/a/c`; `..` stops at the root, as on a file system. */
  function join(base, rel) {
    const out = [];
    for (const part of (rel.startsWith('/') ? rel : `${base}/${rel}`).split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') out.pop();
      else out.push(part);
    }
    return '/' + out.join('/');
  }

  function notFound(spec, from, why) {
    const e = new Error(`Cannot find module '${spec}' from '${from}'${why ? `: ${why}` : ''}`);
    e.code = 'MODULE_NOT_FOUND';
    return e;
  }

  function packageJson(path) {
    if (!(path in packages)) {
      try { packages[path] = isFile(path) ? JSON.parse(source(path, true)) : null; }
      catch (e) { throw new SyntaxError(`${path}: ${e.message}`); }
    }
    return packages[path];
  }

  /** A module's source; `keep` leaves it in the map (package.json is read more than once). */
  function source(path, keep) {
    const text = files[path];
    if (!keep) delete files[path];
    if (typeof text !== 'string') throw new Error(`${path} was already loaded`);
    return text;
  }

  const asFile = (x) => [x, `${x}.js`, `${x}.json`, `${x}.mjs`, `${x}.cjs`].find(isFile);
  const asIndex = (x) => [`${x}/index.js`, `${x}/index.json`, `${x}/index.mjs`, `${x}/index.cjs`].map((p) => join('/', p)).find(isFile);

  /** A folder: its package.json's `main` (a file or a folder), else its index file. */
  function asDirectory(x, spec, from) {
    if (!dirs.has(x)) return undefined;
    const pkg = packageJson(join(x, 'package.json'));
    if (pkg && typeof pkg.main === 'string' && pkg.main !== '') {
      const m = join(x, pkg.main);
      const found = asFile(m) || asIndex(m) || asIndex(x);
      if (!found) throw notFound(spec, from, `${join(x, 'package.json')} names main ${JSON.stringify(pkg.main)}, which the zip does not contain`);
      return found;
    }
    return asIndex(x);
  }

  /** The `exports` field of a package (conditions in the order the package lists them). */
  function viaExports(dir, exp, sub, conditions, spec, from) {
    if (typeof exp === 'string' || Array.isArray(exp) || !Object.keys(exp).some((k) => k.startsWith('.'))) exp = { '.': exp };
    let target;
    let star;
    if (has(exp, sub)) target = exp[sub];
    else {
      for (const key of Object.keys(exp)) {
        const at = key.indexOf('*');
        if (at < 0) continue;
        const pre = key.slice(0, at);
        const post = key.slice(at + 1);
        if (sub.startsWith(pre) && sub.endsWith(post) && sub.length >= key.length - 1) {
          target = exp[key];
          star = sub.slice(pre.length, sub.length - post.length);
          break;
        }
      }
    }
    const choose = (t) => {
      if (typeof t === 'string') {
        const p = join(dir, star === undefined ? t : t.split('*').join(star));
        return isFile(p) ? p : undefined;
      }
      if (Array.isArray(t)) {
        for (const each of t) { const r = choose(each); if (r) return r; }
        return undefined;
      }
      if (t && typeof t === 'object') {
        for (const key of Object.keys(t)) if (conditions.includes(key)) { const r = choose(t[key]); if (r) return r; }
      }
      return undefined;
    };
    const found = choose(target);
    if (!found) throw notFound(spec, from, `${join(dir, 'package.json')} "exports" has no ${sub} for ${conditions.join('/')}`);
    return found;
  }

  const REQUIRE = ['require', 'node', 'default'];
  const IMPORT = ['import', 'node', 'default'];

  /** Node's resolution: relative and absolute paths, then node_modules folders up to the root. */
  function resolve(from, spec, conditions) {
    if (typeof spec !== 'string' || spec === '') throw new TypeError('the module name must be a non-empty string');
    if (spec.startsWith('./') || spec.startsWith('../') || spec.startsWith('/') || spec === '.' || spec === '..') {
      const x = join(from, spec);
      const found = (spec.endsWith('/') ? undefined : asFile(x)) || asDirectory(x, spec, from);
      if (!found) throw notFound(spec, from);
      return found;
    }
    const name = spec.startsWith('node:') ? spec.slice(5) : spec;
    const parts = name.split('/');
    const pkgName = name.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
    const sub = name.slice(pkgName.length);
    for (let dir = from; ; dir = dirname(dir)) {
      if (!dir.endsWith('/node_modules')) {
        const pkgDir = join(dir, `node_modules/${pkgName}`);
        if (dirs.has(pkgDir)) {
          const pkg = packageJson(join(pkgDir, 'package.json'));
          if (pkg && pkg.exports !== undefined && pkg.exports !== null) return viaExports(pkgDir, pkg.exports, `.${sub}`, conditions, spec, from);
          const x = join(pkgDir, sub || '.');
          const found = (sub ? asFile(x) : undefined) || asDirectory(x, spec, from);
          if (found) return found;
        }
      }
      if (dir === '/') break;
    }
    throw notFound(spec, from, spec.startsWith('node:') || !spec.includes('/')
      ? 'not in the zip\'s node_modules (the runtime is QuickJS, without Node.js\'s built-in modules)'
      : 'not in the zip\'s node_modules');
  }

  /** Whether a file is an ES module: `.mjs`, or `.js` under a package.json of `"type": "module"`. */
  function isModule(path) {
    if (path.endsWith('.mjs')) return true;
    if (!path.endsWith('.js')) return false;
    for (let dir = dirname(path); ; dir = dirname(dir)) {
      const pkg = packageJson(join(dir, 'package.json'));
      if (pkg) return pkg.type === 'module';
      if (dir === '/') return false;
    }
  }

  function requireFrom(dir) {
    const require = (spec) => load(resolve(dir, spec, REQUIRE), spec);
    require.resolve = (spec) => resolve(dir, spec, REQUIRE);
    require.cache = cache;
    return require;
  }

  /** CommonJS: one wrapper function per file, run once; later requires get the cached exports. */
  function load(path, spec) {
    const cached = cache[path];
    if (cached) return cached.exports;
    if (isModule(path)) {
      const e = new Error(`require() of ES module ${path}${spec ? ` ('${spec}')` : ''} is not supported: load it with import`);
      e.code = 'ERR_REQUIRE_ESM';
      throw e;
    }
    const module = { id: path, filename: path, path: dirname(path), exports: {}, loaded: false, children: [] };
    cache[path] = module;
    let text;
    try {
      text = source(path);
      if (path.endsWith('.json')) {
        try { module.exports = JSON.parse(text); }
        catch (e) { throw new SyntaxError(`${path}: ${e.message}`); }
      } else {
        // One line with the file's first: stack traces keep the file's own line numbers.
        const body = text.startsWith('#!') ? `//${text.slice(2)}` : text;
        const fn = compile(`(function (exports, require, module, __filename, __dirname) {${body}\n})`, path);
        fn.call(module.exports, module.exports, requireFrom(dirname(path)), module, path, dirname(path));
      }
    } catch (e) {
      delete cache[path];
      if (text !== undefined) files[path] = text; // a later require meets the same error, not a missing file
      throw e;
    }
    module.loaded = true;
    return module.exports;
  }

  /**
   * A zip's files: `main` is `fn` (the entry is package.json's main, else index.js) or, as
   * OpenWhisk reads it, `file.fn` (the entry is ./file). An ES-module entry is imported, a
   * CommonJS one required.
   */
  function modules(envelope) {
    files = envelope.files;
    for (const path of Object.keys(files)) {
      known.add(path);
      for (let d = dirname(path); !dirs.has(d); d = dirname(d)) dirs.add(d);
    }
    const name = envelope.main;
    const dot = name.indexOf('.');
    const index = dot < 0 ? undefined : name.slice(0, dot);
    const member = dot < 0 ? name : name.slice(dot + 1);
    let entry;
    if (index === undefined) {
      if (!isFile('/package.json') && !isFile('/index.js')) throw new Error('Zipped actions must contain either package.json or index.js at the root.');
      entry = asDirectory('/', '.', '/');
      if (!entry) throw notFound('.', '/', 'package.json names no main and there is no index.js');
    } else {
      entry = resolve('/', `./${index}`, REQUIRE);
    }
    let exported;
    if (isModule(entry)) {
      const slot = '__vespid_entry_namespace';
      evalModule(`import * as namespace from ${JSON.stringify(entry)};\nglobalThis.${slot} = namespace;\n`, '<vespid entry>');
      exported = globalThis[slot];
      delete globalThis[slot];
      let found = pick(exported, member);
      // `export default { main }` or `export default function` stand for the named export.
      if (typeof found !== 'function') found = pick(exported.default, member);
      if (typeof found !== 'function' && member === 'main' && typeof exported.default === 'function') found = exported.default;
      return accept(found, name);
    }
    exported = load(entry);
    let found = pick(exported, member);
    if (typeof found !== 'function' && typeof exported === 'function') found = exported;
    accept(found, name);
  }

  /** For the ES-module normaliser: `base` is the importing module's path (or `<vespid entry>`). */
  function resolveImport(base, spec) {
    return resolve(base.startsWith('/') ? dirname(base) : '/', spec, IMPORT);
  }

  /**
   * For the ES-module loader: an ES module's source, or, for CommonJS and JSON, the names of its
   * exports (js_main.c makes a synthetic module of `default` plus those, from cjsExports).
   */
  function moduleFor(path) {
    if (isModule(path)) return source(path);
    const value = load(path);
    const keys = value !== null && (typeof value === 'object' || typeof value === 'function')
      ? Object.keys(value).filter((k) => k !== 'default') : [];
    cjsKeys[path] = keys;
    return keys;
  }

  function cjsExports(path) {
    return { value: cache[path].exports, keys: cjsKeys[path] };
  }

  return { modules, resolveImport, moduleFor, cjsExports };
})
