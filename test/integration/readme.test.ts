// The README is part of the product: its tables must say what action.yml and the code do, and its
// examples must work. Every fenced block carries an `<!-- example: … -->` marker saying who runs it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { NODE24, checkBundleLoaded, copyShippedAction, runAction } from '../helpers/action.js';
import { inspect, pull, unpack } from '../helpers/image.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { check, cleanupAll, run, tmpDir } from '../helpers/tools.js';
import { diffTrees, snapshotTree } from '../helpers/tree.js';

const README = 'README.md';
const THIS_TEST = 'run by test/integration/readme.test.ts';

interface Block {
  lang: string;
  marker: string;
  text: string;
  line: number;
}

let readme: string;
let blocks: Block[];
let action: { inputs: Record<string, { default?: string }>; outputs: Record<string, unknown> };

beforeAll(async () => {
  readme = await readFile(README, 'utf8');
  action = YAML.parse(await readFile('action.yml', 'utf8'));
  blocks = [];
  const lines = readme.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)$/.exec(lines[i]);
    if (!open) continue;
    const end = lines.indexOf('```', i + 1);
    const marker = /^<!-- example: (.+) -->$/.exec(lines[i - 1] ?? '')?.[1] ?? '';
    blocks.push({ lang: open[1], marker, text: lines.slice(i + 1, end).join('\n'), line: i + 1 });
    i = end;
  }
});
afterAll(cleanupAll);

/** Rows of the first table after `## heading`, as arrays of trimmed cells, header row dropped. */
function table(heading: string): string[][] {
  const section = readme.split(`\n## ${heading}\n`)[1].split('\n## ')[0];
  const rows = section.split('\n').filter((l) => l.startsWith('|'));
  return rows.slice(2).map((r) =>
    r
      .replace(/\\\|/g, '\u0000')
      .split('|')
      .slice(1, -1)
      .map((c) => c.replace(/\u0000/g, '|').trim()),
  );
}

const namesIn = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);

describe('README and action.yml agree', () => {
  it('lists every input, in one table, with action.yml defaults', () => {
    const rows = table('Inputs');
    const documented = rows.flatMap((r) => namesIn(r[0]));
    expect([...documented].sort()).toEqual(Object.keys(action.inputs).sort());
    for (const row of rows) {
      for (const name of namesIn(row[0])) {
        const def = action.inputs[name].default ?? '';
        // A default in action.yml is shown as it is; an empty one may be described in words.
        if (def) expect(row[1], name).toBe(`\`${def}\``);
      }
    }
  });

  it('lists every output', () => {
    const documented = table('Outputs').flatMap((r) => namesIn(r[0]));
    expect([...documented].sort()).toEqual(Object.keys(action.outputs).sort());
  });

  it('documents every environment variable the code reads', async () => {
    const protocol = new Set([
      'GITHUB_ACTIONS', // whether this is Actions at all
      'GITHUB_OUTPUT',
      'GITHUB_STATE',
      'GITHUB_SERVER_URL', // image annotations
      'GITHUB_REPOSITORY',
      'GITHUB_SHA',
      'SUDO_UID', // set by sudo for the run it starts
      'SUDO_GID',
    ]);
    const read = new Set<string>();
    const walk = async (dir: string) => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (p.endsWith('.ts')) {
          const src = await readFile(p, 'utf8');
          for (const m of src.matchAll(/\benv(?:\?)?\.([A-Z][A-Z0-9_]+)/g)) read.add(m[1]);
          for (const m of src.matchAll(/\{ ([A-Z_, ]+) \} = process\.env/g))
            for (const n of m[1].split(',')) read.add(n.trim());
        }
      }
    };
    await walk('src');
    expect(read.size).toBeGreaterThan(5);
    const documented = new Set(table('Environment variables').flatMap((r) => namesIn(r[0])));
    const missing = [...read].filter((n) => !protocol.has(n) && !documented.has(n));
    expect(missing).toEqual([]);
  });

  it('marks every example with who runs it, and every workflow uses real inputs', () => {
    expect(blocks.length).toBeGreaterThan(8);
    for (const b of blocks) {
      expect(b.marker, `README.md:${b.line}`).toMatch(
        /^(needs a Depot account|run by .+|checked against .+|the test command itself)$/,
      );
    }
    // What CI runs is what the README says: every command of those blocks is a line of .ci/run.
    const ci = readFileSync('.ci/run', 'utf8')
      .split('\n')
      .map((l) => l.trim());
    const byCi = blocks.filter((b) => /^(run by \.ci\/run|the test command itself)$/.test(b.marker));
    expect(byCi.length).toBe(2);
    for (const b of byCi)
      for (const command of b.text.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()))
        if (command) expect(ci, `README.md:${b.line}`).toContain(command);
    for (const b of blocks.filter((x) => x.lang === 'yaml')) {
      const steps = Object.values(YAML.parse(b.text).jobs ?? {}).flatMap(
        (job) => (job as { steps?: Array<{ uses?: string; with?: Record<string, unknown> }> }).steps ?? [],
      );
      for (const step of steps.filter((s) => s.uses?.startsWith('depot/snapshot-action@'))) {
        for (const key of Object.keys(step.with ?? {}))
          expect(Object.keys(action.inputs), `README.md:${b.line}: ${key}`).toContain(key);
      }
    }
  });

  it('the metadata example follows metadata.schema.json', async () => {
    const [json] = blocks.filter((b) => b.lang === 'json');
    const schema = JSON.parse(await readFile('metadata.schema.json', 'utf8'));
    const example = JSON.parse(json.text.replace(/sha256:…/g, 'sha256:' + 'a'.repeat(64)));
    const ajv = new Ajv2020({ allErrors: true });
    expect(ajv.validate(schema, example), JSON.stringify(ajv.errors)).toBe(true);
  });
});

describe('README examples', () => {
  let registry: Registry;
  let work: string;

  beforeAll(async () => {
    registry = await startRegistry();
    // A directory holding the action as shipped (action.yml, dist/), where `node dist/index.js` runs.
    work = await tmpDir('readme');
    copyShippedAction(work);
    const rootfs = path.join(work, 'rootfs');
    await mkdir(path.join(rootfs, 'usr/share/doc/jq'), { recursive: true });
    await mkdir(path.join(rootfs, 'usr/bin'), { recursive: true });
    await writeFile(path.join(rootfs, 'usr/bin/jq'), '#!/bin/sh\necho jq\n', { mode: 0o755 });
    await writeFile(path.join(rootfs, 'usr/share/doc/jq/README'), 'docs\n');
    // The command-line baseline example's sandbox: a tree that started as the image pushed from rootfs.
    await check('cp', ['-a', rootfs, path.join(work, 'sandbox')]);
  });

  it('the shell examples run as written, in order, against a local registry', async () => {
    const shell = blocks.filter((b) => b.lang === 'sh' && b.marker === THIS_TEST);
    expect(shell.length).toBeGreaterThanOrEqual(5);
    const stdout = new Map<Block, string>();
    for (const b of shell) {
      const script = b.text
        .replace(/localhost:5000/g, registry.host)
        .replace(/<dir>/g, './rootfs')
        .replace(/<layout-dir>/g, './layout-2');
      const r = await run('bash', ['-euo', 'pipefail', '-c', script], {
        cwd: work,
        // `node` is Node 24, the action's runtime.
        env: { PATH: `${path.dirname(NODE24)}:${process.env.PATH}`, HOME: path.join(work, 'home') },
      });
      expect(r.code, `README.md:${b.line}\n${r.stdout}\n${r.stderr}`).toBe(0);
      stdout.set(b, r.stdout);
      checkBundleLoaded(`${r.stdout}\n${r.stderr}`);
    }
    // What they promise: layouts that unpack to the tree, a pushed image, promoted and pulled unchanged.
    const src = await snapshotTree(path.join(work, 'rootfs'));
    src.delete('.');
    for (const layout of ['layout', 'layout-2']) {
      const got = await snapshotTree(await unpack(path.join(work, layout)));
      got.delete('.');
      expect(diffTrees(src, got), layout).toEqual([]);
    }
    const v1 = await inspect(`${registry.host}/team/ci-image:v1`);
    const stable = await inspect(`${registry.host}/team/ci-image:stable`);
    expect(stable.Digest).toBe(v1.Digest);
    const index = JSON.parse(await readFile(path.join(work, 'pulled', 'index.json'), 'utf8'));
    expect(index.manifests[0].digest).toBe(v1.Digest);

    // The command-line baseline: recorded without a base image because its path was given, then used
    // by main, which pushes the base's layers untouched and only the changes on top.
    const [baselineBlock] = shell.filter((b) => b.text.includes('dist/pre/index.js'));
    const out = stdout.get(baselineBlock)!;
    expect(out).toMatch(/recording the baseline anyway, because its path was given/);
    expect(out).not.toContain('::save-state'); // main is told --baseline; no runner to read it
    expect(out).toMatch(/^changes: baseline: /m);
    expect(out).toMatch(/^changes=baseline$/m);
    const v2 = await inspect(`${registry.host}/team/ci-image:v2`);
    expect(v2.Layers.slice(0, v1.Layers.length)).toEqual(v1.Layers);
    expect(v2.Layers.length).toBe(v1.Layers.length + 1);
    const sandbox = await snapshotTree(path.join(work, 'sandbox'));
    const result = await snapshotTree(await unpack(await pull(`${registry.host}/team/ci-image:v2`)));
    for (const tree of [sandbox, result]) tree.delete('.');
    expect(sandbox.has('usr/bin/tool') && !sandbox.has('usr/share/doc')).toBe(true);
    expect(diffTrees(sandbox, result)).toEqual([]);
  });

  it('the GHCR workflow step pushes with the credentials it names, leaving out what it excludes', async () => {
    const ghcr = await startRegistry({
      auth: 'htpasswd',
      users: [{ user: 'octo', pass: 'ghs_readme_token' }],
    });
    const [workflow] = blocks.filter((b) => b.lang === 'yaml' && b.marker === THIS_TEST);
    const job = Object.values(YAML.parse(workflow.text).jobs)[0] as {
      'runs-on': string;
      steps: Array<{ uses?: string; with?: Record<string, string> }>;
    };
    expect(job['runs-on']).toBe('ubuntu-latest');
    const step = job.steps.find((s) => s.uses?.startsWith('depot/snapshot-action@'))!;
    // The runner's expression contexts, and ghcr.io played by a local registry.
    const contexts: Record<string, string> = {
      'github.repository': 'octo/repo',
      'github.actor': 'octo',
      'secrets.GITHUB_TOKEN': 'ghs_readme_token',
    };
    const inputs = Object.fromEntries(
      Object.entries(step.with!).map(([k, v]) => [
        k,
        String(v)
          .replace(/\$\{\{ ([\w.]+) \}\}/g, (_, expr: string) => contexts[expr] ?? `<${expr}?>`)
          .replace('ghcr.io', ghcr.host),
      ]),
    );
    expect(JSON.stringify(inputs)).not.toContain('?>');
    // A runner captures `/`; here, a small tree stands for it.
    const r = await runAction({ ...inputs, root: path.join(work, 'rootfs') });
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    const ref = `${ghcr.host}/octo/repo/ci-image:latest`;
    expect((await inspect(ref, { user: 'octo', pass: 'ghs_readme_token' })).Digest).toBe(r.outputs.digest);
    const layout = path.join(await tmpDir('ghcr-pull'), 'L');
    await check('skopeo', [
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      'octo:ghs_readme_token',
      `docker://${ref}`,
      `oci:${layout}:latest`,
    ]);
    const rootfs = await unpack(layout);
    expect(existsSync(path.join(rootfs, 'usr/bin/jq'))).toBe(true);
    expect(existsSync(path.join(rootfs, 'usr/share/doc'))).toBe(false);
  });
});
