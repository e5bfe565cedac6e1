import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The shape of `src/`, read from its import lines: no module depends on itself through others,
 * `registry/` and `layout/` stay strangers (both speak `content/`), and `content/` stays plain data
 * and small interfaces that nothing of the transports or the walk leaks into, and every import goes
 * along the pipeline, never back.
 */

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Relative specifiers of `import … from`, `import type … from`, `export … from`, `import '…'`, `import('…')`. */
function relativeImports(source: string): string[] {
  const code = source
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .split('\n')
    .map((line) => line.replace(/(^|\s)\/\/.*$/, '$1'))
    .join('\n');
  const found: string[] = [];
  for (const m of code.matchAll(/\b(?:from|import)\s*\(?\s*['"](\.\.?\/[^'"]+)['"]/g)) found.push(m[1]);
  return found;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) return tsFiles(p);
    return d.name.endsWith('.ts') && !d.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The file a specifier names: `./x.js` is `./x.ts` (NodeNext), a directory its `index.ts`. */
function resolve(from: string, specifier: string): string | null {
  const target = path.resolve(path.dirname(from), specifier);
  for (const candidate of [target.replace(/\.js$/, '.ts'), target, path.join(target, 'index.ts')]) {
    if (candidate.endsWith('.ts') && existsSync(candidate)) return candidate;
  }
  return null;
}

/** `src/`-relative file → the `src/`-relative files it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of tsFiles(SRC)) {
    const edges = relativeImports(readFileSync(file, 'utf8')).map((s) => {
      const to = resolve(file, s);
      if (!to) throw new Error(`${path.relative(SRC, file)} imports ${s}, which is no file in src/`);
      return path.relative(SRC, to);
    });
    graph.set(path.relative(SRC, file), [...new Set(edges)]);
  }
  return graph;
}

/** Every cycle, one per strongly connected component (Tarjan), spelled `a.ts → b.ts → a.ts`. */
function cycles(graph: Map<string, string[]>): string[] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component = new Set<string>();
    for (let w = ''; w !== v;) {
      w = stack.pop()!;
      onStack.delete(w);
      component.add(w);
    }
    if (component.size > 1 || graph.get(v)?.includes(v)) found.push(cycleThrough(v, component, graph));
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

/** The shortest way from `start` back to itself inside its component. */
function cycleThrough(start: string, component: Set<string>, graph: Map<string, string[]>): string {
  const cameFrom = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    for (const w of graph.get(queue[i]) ?? []) {
      if (!component.has(w)) continue;
      if (w === start) {
        const way = [start];
        for (let at = queue[i]; at !== start; at = cameFrom.get(at)!) way.unshift(at);
        way.unshift(start);
        return way.join(' → ');
      }
      if (!cameFrom.has(w)) {
        cameFrom.set(w, queue[i]);
        queue.push(w);
      }
    }
  }
  return start;
}

function edges(graph: Map<string, string[]>, from: (f: string) => boolean, to: (f: string) => boolean) {
  return [...graph].flatMap(([f, targets]) => (from(f) ? targets.filter(to).map((t) => `${f} → ${t}`) : []));
}

const under =
  (...dirs: string[]) =>
  (f: string) =>
    dirs.some((d) => f.startsWith(d + '/'));

/**
 * The pipeline, in order: a folder imports only from its own step or earlier ones. `util/` and
 * `content/` (OCI descriptors, blob sinks, image sources and targets) are spoken by every step.
 */
const PIPELINE = [
  ['util', 'content'],
  ['walk', 'inventory'],
  ['diff'],
  ['layer'],
  ['image', 'attest'],
  ['layout', 'registry'],
  ['inputs', 'destinations'],
  ['commands'],
];
/** Entry points: nothing imports them (index.ts loads main.ts). */
const ENTRY_POINTS = ['index.ts', 'main.ts', 'pre.ts'];

/**
 * A file's step: its folder's; for a top-level file (log, failure, summary, …), the latest step it
 * imports from, so a folder may use it only if it could import all of that itself.
 */
function step(file: string, graph: Map<string, string[]>, seen = new Set<string>()): number {
  const folder = file.includes('/') ? file.slice(0, file.indexOf('/')) : null;
  if (folder) {
    const index = PIPELINE.findIndex((names) => names.includes(folder));
    if (index < 0) throw new Error(`src/${folder}/ has no place in the pipeline: add it to PIPELINE`);
    return index;
  }
  if (ENTRY_POINTS.includes(file)) return PIPELINE.length;
  if (seen.has(file)) return 0;
  seen.add(file);
  return Math.max(0, ...(graph.get(file) ?? []).map((to) => step(to, graph, seen)));
}

describe('the import structure of src/', () => {
  const graph = importGraph();

  it('reads every form of relative import', () => {
    const sample = [
      "import { a } from './a.js';",
      "import type { B } from '../b/b.js';",
      'import {\n  c,\n  type D,\n} from "./c.js";',
      "export { e } from './e.js';",
      "export * from './f.js';",
      "export type { G } from './g.js';",
      "import './h.js';",
      "const i = await import('./i.js');",
      "import path from 'node:path';",
      "// import { j } from './j.js';",
      "/* export { k } from './k.js'; */",
      "const url = 'https://example.com'; // from './l.js'",
    ].join('\n');
    expect(relativeImports(sample)).toEqual([
      './a.js',
      '../b/b.js',
      './c.js',
      './e.js',
      './f.js',
      './g.js',
      './h.js',
      './i.js',
    ]);
    expect(graph.size).toBeGreaterThan(10);
  });

  it('has no import cycle', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('has no import between registry/ and layout/, in either direction', () => {
    const registry = under('registry');
    const layout = under('layout');
    expect([...edges(graph, registry, layout), ...edges(graph, layout, registry)]).toEqual([]);
  });

  it('imports only along the pipeline walk → diff → layer → image → layout/registry → destinations → commands', () => {
    const backwards = [...graph].flatMap(([from, targets]) =>
      targets.filter((to) => step(to, graph) > step(from, graph)).map((to) => `${from} → ${to}`),
    );
    expect(backwards).toEqual([]);
    // The rule can fail: a layer importing the registry would be a step back.
    expect(step('registry/push.ts', graph)).toBeGreaterThan(step('layer/write.ts', graph));
    expect(step('main.ts', graph)).toBeGreaterThan(step('commands/snapshot.ts', graph));
  });

  it('keeps content/ free of the transports, the walk, the diff, the layers and main', () => {
    const forbidden = (f: string) =>
      under('registry', 'layout', 'walk', 'diff', 'layer', 'main')(f) || f === 'main.ts';
    expect(edges(graph, under('content'), forbidden)).toEqual([]);
  });
});
