import type { Entry } from '../../src/walk/entries.js';

export type Spec = [path: string, size: number, extra?: Partial<Entry>];

/**
 * Entries as the walk yields them, from file paths and sizes: every parent directory made up,
 * depth-first, parents first, siblings sorted by raw name bytes. A path ending in `/` is an empty dir.
 */
export function makeEntries(specs: Spec[]): Entry[] {
  interface Node {
    entry: Entry;
    children: Map<string, Node>;
  }
  const root: Node = { entry: undefined as unknown as Entry, children: new Map() };
  for (const [p, size, extra] of specs) {
    const isDir = p.endsWith('/');
    const parts = p.replace(/\/$/, '').split('/');
    let node = root;
    parts.forEach((name, i) => {
      const path = parts.slice(0, i + 1).join('/');
      const last = i === parts.length - 1;
      let child = node.children.get(name);
      if (!child) {
        child = { entry: entry(path, last && !isDir ? 'file' : 'dir', 0), children: new Map() };
        node.children.set(name, child);
      }
      if (last) Object.assign(child.entry, isDir ? {} : { size, allocated: size }, extra);
      node = child;
    });
  }
  const out: Entry[] = [];
  const visit = (n: Node) => {
    const names = [...n.children.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const child = n.children.get(name)!;
      out.push(child.entry);
      visit(child);
    }
  };
  visit(root);
  return out;
}

function entry(path: string, kind: Entry['kind'], size: number): Entry {
  return {
    path: Buffer.from(path),
    kind,
    mode: kind === 'dir' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    ctimeSec: 0,
    ctimeNsec: 0,
    ino: 0,
    size,
    allocated: size,
    mtimeSec: 1_700_000_000,
    mtimeNsec: 0,
  };
}
