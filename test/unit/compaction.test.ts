import { mkdir, writeFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  layersMadeBySnapshots,
  historyOfFirstLayers,
  planBudget,
  CREATED_BY,
} from '../../src/image/budget.js';
import { recapture, TouchedPaths } from '../../src/diff/recapture.js';
import { listLayer } from '../../src/layer/listing.js';
import { MediaType } from '../../src/content/oci.js';
import { EntryTable, type Entry } from '../../src/walk/entries.js';
import { check, tmpDir } from '../helpers/tools.js';

const ours = { created_by: CREATED_BY.changes };
const ourWholeTree = { created_by: CREATED_BY.wholeTree };
const theirs = { created_by: '/bin/sh -c apt-get install -y curl' };
const empty = { created_by: 'ENV PATH=/x', empty_layer: true };

describe('the layer budget', () => {
  it('counts the top layers earlier snapshots made, and nothing when history does not map onto layers', () => {
    expect(layersMadeBySnapshots(4, [theirs, empty, theirs, ours, ours])).toBe(2);
    expect(layersMadeBySnapshots(2, [theirs, theirs])).toBe(0);
    expect(layersMadeBySnapshots(3, [theirs, ours])).toBe(0); // one layer without history
    expect(layersMadeBySnapshots(3, [ours, theirs, ours])).toBe(1); // only the top run counts
    // A chain that started from a whole-tree capture of this action's: those layers are its base.
    expect(layersMadeBySnapshots(4, [ourWholeTree, ourWholeTree, ours, ours])).toBe(2);
  });

  it('keeps the history of the first layers, with the empty entries among them', () => {
    const history = [theirs, empty, theirs, ours, ours];
    expect(historyOfFirstLayers(history, 2)).toEqual([theirs, empty, theirs]);
    expect(historyOfFirstLayers(history, 0)).toEqual([]);
    expect(historyOfFirstLayers(history, 4)).toEqual(history);
  });

  it('merges nothing while there is room, then enough to free a quarter of the budget', () => {
    expect(planBudget({ baseLayers: 10, madeBySnapshots: 5, maxLayers: 64 })).toEqual({
      merge: 0,
      newLayers: 53,
    });
    expect(planBudget({ baseLayers: 62, madeBySnapshots: 60, maxLayers: 64 })).toEqual({
      merge: 0,
      newLayers: 1,
    });
    // 63 layers leave no room for a new one and the marker: down to 46, a quarter (16) free after.
    const plan = planBudget({ baseLayers: 63, madeBySnapshots: 60, maxLayers: 64 });
    expect(plan.merge).toBe(17);
    expect(63 - plan.merge + 1 + 1).toBeLessThanOrEqual(64 - 16);
    expect(plan.newLayers).toBe(8); // half the quarter freed: the next generations get the rest
  });

  it("never merges the base's own layers: only what snapshots made", () => {
    const plan = planBudget({ baseLayers: 70, madeBySnapshots: 3, maxLayers: 64 });
    expect(plan.merge).toBe(3);
    expect(plan.newLayers).toBe(1);
  });
});

function entry(p: string, kind: Entry['kind'] = 'file'): Entry {
  return {
    path: Buffer.from(p, 'latin1'),
    kind,
    mode: kind === 'dir' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    size: 0,
    allocated: 0,
    mtimeSec: 1,
    mtimeNsec: 0,
    ctimeSec: 1,
    ctimeNsec: 0,
    ino: 0,
  };
}

/** A walk of a live tree: depth first, parents first. */
function tree(...specs: string[]): EntryTable {
  return EntryTable.from(specs.map((s) => (s.endsWith('/') ? entry(s.slice(0, -1), 'dir') : entry(s))));
}

const names = (t: EntryTable) => Array.from({ length: t.length }, (_, i) => t.path(i).toString('latin1'));

describe('recapture', () => {
  const live = tree(
    'etc/',
    'etc/environment',
    'etc/os-release',
    'opt/',
    'opt/a/',
    'opt/a/x',
    'opt/a/y',
    'usr/',
    'usr/bin/',
    'usr/bin/tool',
  );

  it('takes the touched paths as they are now, their parents, and whiteouts for those that are gone', async () => {
    const touched = new TouchedPaths();
    for (const n of ['etc', 'etc/environment', 'usr', 'usr/bin', 'usr/bin/.wh.old', 'gen7', 'gen7/data'])
      touched.addName(Buffer.from(n));
    const set = await recapture(live, touched, { excluded: [], sockets: [] });
    expect(names(set.entries)).toEqual([
      '.wh.gen7',
      'etc',
      'etc/environment',
      'usr',
      'usr/bin',
      'usr/bin/.wh.old',
    ]);
    expect(set.deleted).toBe(2);
  });

  it('captures an opaque directory whole, marker first', async () => {
    const touched = new TouchedPaths();
    touched.addName(Buffer.from('opt/a/.wh..wh..opq'));
    const set = await recapture(live, touched, { excluded: [], sockets: [] });
    expect(names(set.entries)).toEqual(['opt', 'opt/a', 'opt/a/.wh..wh..opq', 'opt/a/x', 'opt/a/y']);
  });

  it('hides what the layers below had in a directory deleted and made again', async () => {
    const touched = new TouchedPaths();
    // One merged layer removed opt/a; a later one made it again with x in it.
    for (const n of ['opt/.wh.a', 'opt', 'opt/a', 'opt/a/x']) touched.addName(Buffer.from(n));
    const set = await recapture(live, touched, { excluded: [], sockets: [] });
    expect(names(set.entries)).toEqual(['opt', 'opt/a', 'opt/a/.wh..wh..opq', 'opt/a/x', 'opt/a/y']);
  });

  it('takes no name that could whiteout the root', async () => {
    const touched = new TouchedPaths();
    for (const n of ['.wh..wh..opq', '.', 'a/../b', '']) touched.addName(Buffer.from(n));
    expect(touched.size).toBe(0);
  });

  it('gives no whiteout to a path the walk left out, or below a gone parent', async () => {
    const touched = new TouchedPaths();
    for (const n of ['tmp/cache', 'gone', 'gone/deeper/file']) touched.addName(Buffer.from(n));
    const set = await recapture(live, touched, {
      excluded: [{ path: Buffer.from('tmp'), reason: 'volatile directory' }],
      sockets: [],
    });
    expect(names(set.entries)).toEqual(['.wh.gone']);
  });

  it('keeps names that are not UTF-8', async () => {
    const odd = Buffer.from([0x66, 0xff, 0x6f]).toString('latin1');
    const touched = new TouchedPaths();
    touched.addName(Buffer.from(`etc/${odd}`, 'latin1'));
    const set = await recapture(tree('etc/', `etc/${odd}`), touched, { excluded: [], sockets: [] });
    expect(set.entries.path(1)).toEqual(Buffer.from([0x65, 0x74, 0x63, 0x2f, 0x66, 0xff, 0x6f]));
  });
});

describe('listLayer', () => {
  it.each(['gnu', 'pax', 'ustar'])(
    'reads every name of a %s archive, long names and whiteouts too',
    async (format) => {
      const dir = await tmpDir('listing');
      const root = path.join(dir, 'root');
      const long = `${'d'.repeat(90)}/${'e'.repeat(60)}`;
      await mkdir(path.join(root, long), { recursive: true });
      await writeFile(path.join(root, long, 'f'.repeat(format === 'ustar' ? 3 : 120)), 'x'.repeat(1000));
      await writeFile(path.join(root, '.wh.removed'), '');
      await mkdir(path.join(root, 'opaque'));
      await writeFile(path.join(root, 'opaque', '.wh..wh..opq'), '');
      const tar = path.join(dir, 'layer.tar.gz');
      await check('sh', ['-c', `tar --format=${format} --sort=name -czf ${tar} -C ${root} .`]);
      const seen: string[] = [];
      await listLayer(createReadStream(tar), MediaType.layerGzip, (n) => seen.push(n.toString()));
      expect(seen).toEqual(
        (await check('tar', ['-tzf', tar])).stdout
          .split('\n')
          .filter((l) => l && l !== './')
          .map((l) => l.replace(/^\.\//, '').replace(/\/$/, '')),
      );
      expect(seen).toContain('.wh.removed');
      expect(seen.some((n) => n.endsWith('f'.repeat(format === 'ustar' ? 3 : 120)))).toBe(true);
    },
  );
});
