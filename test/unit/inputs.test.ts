import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatDuration } from '../../src/util/format.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { zstdAvailable } from '../../src/layer/compress.js';
import {
  getInputs,
  getPreInputs,
  INPUT_SPECS,
  InputError,
  parseDuration,
  parseSize,
  secretValues,
} from '../../src/inputs/index.js';

const IMAGE = 'ghcr.io/org/app:ci';

/** getInputs with an image set, so other inputs can be checked alone. */
const get = (argv: string[], env: Record<string, string> = {}) =>
  getInputs(argv, { INPUT_IMAGE: IMAGE, ...env });

function inputError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).not.toMatch(/\n/);
    return (err as Error).message;
  }
  throw new Error('no InputError');
}

describe('INPUT_SPECS is what action.yml and the README say', () => {
  const root = path.join(import.meta.dirname, '../..');
  const action = parse(readFileSync(path.join(root, 'action.yml'), 'utf8')) as {
    inputs: Record<string, Record<string, unknown>>;
  };

  it('action.yml declares every input, in order, with its description and default, none required', () => {
    const fromYaml = Object.entries(action.inputs).map(([name, fields]) => ({ name, ...fields }));
    const fromSpecs = INPUT_SPECS.map((s) => ({
      name: s.name,
      description: s.description,
      required: false,
      default: s.default,
    }));
    expect(fromYaml).toEqual(fromSpecs);
  });

  it('a choice names each of its values in its description, and defaults to one of them', () => {
    const choices = INPUT_SPECS.filter((s) => s.kind === 'choice');
    expect(choices.map((s) => s.name)).toEqual(['compression', 'changes', 'mode']);
    for (const s of choices) {
      expect(s.values, s.name).toContain(s.default);
      for (const v of s.values ?? []) expect(s.description, s.name).toMatch(new RegExp(`\\b${v}\\b`));
    }
  });

  it("the README's Inputs table lists exactly these inputs, with their defaults", () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const section = readme.split('\n## Inputs\n')[1].split('\n## ')[0];
    // Rows after the header and its rule; the first cell names one input or more, in backticks.
    const rows = section
      .split('\n')
      .filter((l) => l.startsWith('|'))
      .slice(2)
      .map((l) => l.split(' | '));
    const documented = rows.flatMap(([first, def]) =>
      [...first.matchAll(/`([^`]+)`/g)].map((m) => ({ name: m[1], def: def.trim() })),
    );
    expect(documented.map((d) => d.name).sort()).toEqual(INPUT_SPECS.map((s) => s.name).sort());
    for (const { name, def } of documented) {
      const spec = INPUT_SPECS.find((s) => s.name === name);
      // A default is shown as it is; an empty one may be described in words.
      if (spec?.default) expect(def, name).toBe(`\`${spec.default}\``);
    }
  });
});

describe('getInputs', () => {
  it('applies defaults', () => {
    const i = get([]);
    expect(i).toMatchObject({
      root: '/',
      dryRun: false,
      output: path.resolve('snapshot-layout'),
      exclude: [],
      compression: 'gzip',
      compressionLevel: 1,
      layerSize: 512 * 1024 ** 2,
      insecureRegistry: false,
      concurrency: 4,
      maxAge: 0,
    });
    expect(i.mode === 'snapshot' && i.targets.map((t) => [t.registry, t.repository, t.tag])).toEqual([
      ['ghcr.io', 'org/app', 'ci'],
    ]);
  });

  it('reads INPUT_* variables, names with dashes kept', () => {
    const i = getInputs([], {
      'INPUT_DRY-RUN': 'true',
      'INPUT_LAYER-SIZE': '1GiB',
      'INPUT_MAX-AGE': '1h30m',
      INPUT_EXCLUDE: '/var/cache/**\n# a comment\n\n  **/*.pyc  ',
      'INPUT_COMPRESSION-LEVEL': '9',
    });
    expect(i).toMatchObject({
      dryRun: true,
      targets: [],
      layerSize: 1024 ** 3,
      maxAge: 90 * 60_000,
      compressionLevel: 9,
    });
    expect(i.exclude).toEqual(['/var/cache/**', '**/*.pyc']);
  });

  it('an empty or blank variable means the default', () => {
    expect(get([], { INPUT_CONCURRENCY: '  ', INPUT_COMPRESSION: '' })).toMatchObject({
      concurrency: 4,
      compression: 'gzip',
    });
  });

  it('a flag wins over the variable; list flags repeat', () => {
    const i = get(['--concurrency', '8', '--exclude', '/a', '--exclude', '/b', '--root', '/srv/x/'], {
      INPUT_CONCURRENCY: '2',
      INPUT_EXCLUDE: '/c',
    });
    expect(i).toMatchObject({ concurrency: 8, exclude: ['/a', '/b'], root: '/srv/x' });
  });

  it('--dry-run alone means true and needs no image', () => {
    expect(getInputs(['--dry-run'], {})).toMatchObject({ dryRun: true, targets: [] });
  });

  it('--no-<name> turns a boolean off, over its variable', () => {
    const env = { 'INPUT_PERSIST-ENV': 'true', INPUT_QUIET: 'true' };
    expect(getInputs(['--dry-run', '--no-persist-env', '--no-quiet'], env)).toMatchObject({
      persistEnv: false,
      quiet: false,
    });
    expect(getInputs(['--dry-run'], env)).toMatchObject({ persistEnv: true, quiet: true });
  });

  it('attaches an SBOM and provenance unless each is turned off', () => {
    expect(getInputs(['--dry-run'], {})).toMatchObject({ sbom: true, provenance: true });
    expect(getInputs(['--dry-run', '--no-sbom'], {})).toMatchObject({ sbom: false, provenance: true });
    expect(getInputs(['--dry-run'], { INPUT_PROVENANCE: 'false' })).toMatchObject({
      sbom: true,
      provenance: false,
    });
  });

  it('needs an image without dry-run', () => {
    expect(inputError(() => getInputs([], {}))).toMatch(/^image is required/);
  });

  it('rejects an unknown flag', () => {
    expect(inputError(() => get(['--nope']))).toMatch(/nope/);
  });

  it.each<[string, Record<string, string>]>([
    ['compression', { INPUT_COMPRESSION: 'lz4' }],
    ['compression-level', { 'INPUT_COMPRESSION-LEVEL': '10' }],
    ['compression-level', { 'INPUT_COMPRESSION-LEVEL': '0' }],
    ['compression-level', { 'INPUT_COMPRESSION-LEVEL': 'fast' }],
    ['layer-size', { 'INPUT_LAYER-SIZE': '512KiB' }],
    ['layer-size', { 'INPUT_LAYER-SIZE': 'big' }],
    ['concurrency', { INPUT_CONCURRENCY: '0' }],
    ['concurrency', { INPUT_CONCURRENCY: '17' }],
    ['concurrency', { INPUT_CONCURRENCY: '2.5' }],
    ['max-age', { 'INPUT_MAX-AGE': '5x' }],
    ['max-age', { 'INPUT_MAX-AGE': '0m' }],
    ['dry-run', { 'INPUT_DRY-RUN': 'yes' }],
    ['insecure-registry', { 'INPUT_INSECURE-REGISTRY': '1' }],
    ['sbom', { INPUT_SBOM: 'no' }],
    ['provenance', { INPUT_PROVENANCE: 'off' }],
    ['image', { INPUT_IMAGE: 'Bad/Name' }],
  ])('bad %s → InputError naming it', (name, env) => {
    expect(inputError(() => get([], env))).toContain(name === 'image' ? 'Bad/Name' : name);
  });

  it('zstd works where Node has it, else says why', () => {
    if (zstdAvailable())
      expect(get([], { INPUT_COMPRESSION: 'zstd' })).toMatchObject({
        compression: 'zstd',
        compressionLevel: 3,
      });
    else expect(inputError(() => get([], { INPUT_COMPRESSION: 'zstd' }))).toMatch(/zstd/);
  });

  it('compression none ignores the level range', () => {
    expect(get([], { INPUT_COMPRESSION: 'NONE', 'INPUT_COMPRESSION-LEVEL': '7' })).toMatchObject({
      compression: 'none',
      compressionLevel: 7,
    });
  });
});

describe('each mode reads what it needs', () => {
  it('promote needs an image and a source; its targets come with tags, its source as given', () => {
    expect(() => getInputs([], { INPUT_MODE: 'promote', INPUT_FROM: 'ghcr.io/org/app:ci' })).toThrow(
      /^promote needs image/,
    );
    expect(() => getInputs([], { INPUT_MODE: 'promote', INPUT_IMAGE: IMAGE })).toThrow(/^promote needs from/);
    const i = getInputs([], {
      INPUT_MODE: 'promote',
      INPUT_FROM: 'ghcr.io/org/app@sha256:' + 'a'.repeat(64),
      INPUT_IMAGE: 'ghcr.io/org/prod\nghcr.io/org/prod:v1',
    });
    expect(i.mode).toBe('promote');
    if (i.mode !== 'promote') return;
    expect(i.targets.map((t) => t.tag)).toEqual(['latest', 'v1']);
    expect(i.source).toMatchObject({ kind: 'registry', reference: { digest: 'sha256:' + 'a'.repeat(64) } });
  });

  it('pull reads a registry only, and needs no image', () => {
    const i = getInputs([], { INPUT_MODE: 'pull', INPUT_FROM: 'ghcr.io/org/app' });
    expect(i).toMatchObject({ mode: 'pull', source: { kind: 'registry', reference: { tag: 'latest' } } });
    const layout = mkdtempSync(path.join(os.tmpdir(), 'layout-'));
    writeFileSync(path.join(layout, 'index.json'), '{}');
    expect(() => getInputs([], { INPUT_MODE: 'pull', INPUT_FROM: `oci:${layout}` })).toThrow(
      /^pull reads from a registry/,
    );
  });

  it('pull --load writes a layout only when output is set to something else than its default', () => {
    const from = { INPUT_MODE: 'pull', INPUT_FROM: 'ghcr.io/org/app' };
    expect(getInputs([], from)).toMatchObject({ load: false, writeLayout: true });
    expect(getInputs([], { ...from, INPUT_LOAD: 'true' })).toMatchObject({ load: true, writeLayout: false });
    expect(getInputs([], { ...from, INPUT_LOAD: 'true', INPUT_OUTPUT: 'snapshot-layout' })).toMatchObject({
      writeLayout: false,
    });
    expect(getInputs(['pull', '--from', 'ghcr.io/org/app', '--load', '--output', 'x'], {})).toMatchObject({
      load: true,
      writeLayout: true,
      output: path.resolve('x'),
    });
  });

  it('lookup reads the first image and the key; the CLI spells it as a subcommand', () => {
    const i = getInputs(
      ['lookup', '--image', 'ghcr.io/org/app:ci', '--key', '  abc  ', '--max-age', '1d'],
      {},
    );
    expect(i).toMatchObject({ mode: 'lookup', key: 'abc', maxAge: 86_400_000, target: { tag: 'ci' } });
    expect(() => getInputs(['lookup', '--key', 'abc'], {})).toThrow(/^lookup needs image/);
    expect(() => getInputs([], { INPUT_KEY: 'a\rb', INPUT_IMAGE: IMAGE })).toThrow(/^key holds a line break/);
    expect(() => getInputs([], { INPUT_LOAD: 'true', INPUT_IMAGE: IMAGE })).toThrow(/^load is for mode pull/);
  });

  it("the pre step reads a snapshot's inputs, and nothing of promote, pull or lookup, whose layout may not exist yet", () => {
    expect(getPreInputs([], { INPUT_MODE: 'promote', INPUT_FROM: 'oci:/nonexistent/layout' })).toBeNull();
    expect(getPreInputs([], { INPUT_MODE: 'pull' })).toBeNull();
    expect(getPreInputs([], { INPUT_MODE: 'lookup', INPUT_IMAGE: IMAGE, INPUT_KEY: 'abc' })).toBeNull();
    expect(getPreInputs([], { INPUT_ROOT: '/srv/tree' })).toMatchObject({
      root: '/srv/tree',
      changes: 'auto',
    });
    expect(() => getPreInputs([], { INPUT_CHANGES: 'sometimes' })).toThrow(InputError);
  });
});

describe('secretValues', () => {
  it('gives the token and the password, from flags or variables, to mask before the first line', () => {
    expect(
      secretValues(['--password', 'p4ss', 'promote'], { INPUT_TOKEN: 't0ken', INPUT_USERNAME: 'u' }),
    ).toEqual(['t0ken', 'p4ss']);
    expect(secretValues([], {})).toEqual([]);
  });
});

describe('parseSize', () => {
  const KiB = 1024;
  const MiB = 1024 ** 2;
  it.each<[string, number]>([
    ['512MiB', 512 * MiB],
    ['512mib', 512 * MiB],
    ['1.5GB', 1.5e9],
    ['1.5GiB', 1.5 * 1024 ** 3],
    ['1048576', MiB],
    ['1048576b', MiB],
    ['1m', MiB],
    ['1024k', MiB],
    ['1024KiB', MiB],
    ['2000kb', 2e6],
    [' 2 G ', 2 * 1024 ** 3],
    ['1TB', 1e12],
    ['1t', 1024 ** 4],
    ['1.0000001MiB', Math.floor(1.0000001 * MiB)],
  ])('%j = %d bytes', (v, n) => expect(parseSize(v, 'layer-size')).toBe(n));

  it.each(['', '1023KiB', `${MiB - 1}`, '1.5', '-1MiB', '1e9', '10 XB', 'MiB', '1,5GB', '1 0MiB'])(
    'rejects %j',
    (v) => {
      expect(inputError(() => parseSize(v, 'layer-size'))).toContain('layer-size');
    },
  );

  it('1 MiB is the smallest', () => {
    expect(parseSize(`${1024 * KiB}`, 's')).toBe(MiB);
  });
});

describe('parseDuration', () => {
  it.each<[string, number]>([
    ['90s', 90_000],
    ['45m', 45 * 60_000],
    ['1h30m', 90 * 60_000],
    ['5d', 5 * 86_400_000],
    ['2w', 14 * 86_400_000],
    ['1d2h3m4s', 86_400_000 + 2 * 3_600_000 + 3 * 60_000 + 4000],
    [' 10m ', 600_000],
  ])('%j = %d ms', (v, n) => expect(parseDuration(v, 'max-age')).toBe(n));

  it.each(['', '5', '1.5h', 'h', '0s', '0h0m', '1h 30m', '-5m', '5M', '1y'])('rejects %j', (v) => {
    expect(inputError(() => parseDuration(v, 'max-age'))).toContain('max-age');
  });
  it.each(['90s', '45m', '1h30m', '5d', '1d2h3m4s'])('%j is written back as it reads', (v) => {
    expect(formatDuration(parseDuration(v, 'max-age'))).toBe(v === '90s' ? '1m30s' : v);
  });
});

describe('validation before anything is written', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'inputs-test-'));
  const file = path.join(dir, 'a-file');
  writeFileSync(file, 'x\n');
  mkdirSync(path.join(dir, 'a-dir'));

  it.each([
    ['/', /exclude "\/" would leave out the whole root; name what to leave out below it/],
    ['//', /would leave out the whole root/],
    ['/./', /would leave out the whole root/],
    ['.', /would leave out the whole root/],
    ['/var/../etc', /"\." and "\.\." never match a captured path/],
    ['!/var/cache', /a leading "!" would match everything else; use include to keep paths/],
    ['*.{js', /is not a valid glob/],
    ['/[z-a]', /is not a valid glob/],
    ['/trailing\\', /is not a valid glob/],
  ])('exclude %j is refused with a clear line', (pattern, why) => {
    expect(inputError(() => get([], { INPUT_EXCLUDE: `/ok\n${pattern}` }))).toMatch(why);
  });

  it("a glob over picomatch's length limit is refused with a clear line", () => {
    expect(inputError(() => get([], { INPUT_EXCLUDE: `/${'a'.repeat(70_000)}` }))).toMatch(
      /is not a valid glob/,
    );
  });

  it('include "/" is refused: it would keep the credentials too', () => {
    expect(inputError(() => get([], { INPUT_INCLUDE: '/' }))).toMatch(/include "\/" would keep everything/);
  });

  it('keeps globs that are fine, an extglob negation among them', () => {
    const patterns = ['/var/cache', 'var/log/', '**/*.pyc', './srv/x', '/!(keep)', '/\\!bang', '/a/{b,c}/*'];
    expect(get([], { INPUT_EXCLUDE: patterns.join('\n') }).exclude).toEqual(patterns);
  });

  it('env-mask globs are checked too', () => {
    expect(inputError(() => get([], { 'INPUT_ENV-MASK': 'MY_{A' }))).toMatch(
      /env-mask "MY_\{A" is not a valid glob/,
    );
  });

  it.each(['image', 'base-image', 'from'])('%s with a port out of range or a host no URL holds', (name) => {
    const env = (ref: string): Record<string, string> =>
      name === 'from' ? { INPUT_MODE: 'pull', INPUT_FROM: ref } : { [`INPUT_${name.toUpperCase()}`]: ref };
    for (const port of ['70000', '0', '99999999999'])
      expect(inputError(() => get([], env(`127.0.0.1:${port}/team/app:v1`)))).toMatch(
        new RegExp(`port ${port} is out of range \\(1-65535\\)`),
      );
    for (const host of ['[::1::2]:5000', '300.1.1.1:5000', '[1.2.3.4]'])
      expect(inputError(() => get([], env(`${host}/team/app:v1`)))).toMatch(
        /not a (valid host name|registry host)/,
      );
    expect(() => get([], env('127.0.0.1:65535/team/app:v1'))).not.toThrow();
  });

  it('sizes and durations too large to hold are refused', () => {
    expect(inputError(() => get([], { 'INPUT_LAYER-SIZE': `${'9'.repeat(400)}TB` }))).toMatch(
      /layer-size is too large/,
    );
    expect(inputError(() => get([], { 'INPUT_MAX-AGE': `${'9'.repeat(400)}d` }))).toMatch(
      /max-age is too long/,
    );
  });

  it('metadata-file: a directory, a missing directory, or a file in its way are refused', () => {
    const meta = (value: string, extra: Record<string, string> = {}) =>
      inputError(() => get([], { 'INPUT_METADATA-FILE': value, ...extra }));
    expect(meta(path.join(dir, 'a-dir'))).toMatch(/metadata-file .*a-dir is a directory; name a file/);
    expect(meta(path.join(dir, 'missing', 'm.json'))).toMatch(
      /directory .*missing does not exist; create it first \(it is not made for you\)/,
    );
    expect(meta(path.join(file, 'm.json'))).toMatch(/a-file is not a directory/);
    expect(
      meta(path.join(dir, 'layout', 'm.json'), {
        'INPUT_DRY-RUN': 'true',
        INPUT_OUTPUT: path.join(dir, 'layout'),
      }),
    ).toMatch(/is inside output .*layout, which is replaced whole/);
    expect(get([], { 'INPUT_METADATA-FILE': path.join(dir, 'm.json') }).metadataFile).toBe(
      path.join(dir, 'm.json'),
    );
  });

  it('baseline, output and from: oci: are checked for what is in their way', () => {
    expect(inputError(() => get([], { INPUT_BASELINE: path.join(dir, 'a-dir') }))).toMatch(
      /baseline .*a-dir exists and is not a regular file/,
    );
    expect(
      inputError(() => get([], { 'INPUT_DRY-RUN': 'true', INPUT_OUTPUT: path.join(file, 'sub', 'layout') })),
    ).toMatch(/output .*: .*a-file is not a directory/);
    expect(
      inputError(() => get([], { INPUT_MODE: 'promote', INPUT_FROM: `oci:${path.join(dir, 'a-dir')}` })),
    ).toMatch(/is not an OCI image layout \(no index\.json\)/);
    expect(inputError(() => get([], { INPUT_MODE: 'promote', INPUT_FROM: 'oci:' }))).toMatch(
      /must be oci:DIR or oci:DIR:TAG/,
    );
  });

  it('path inputs are trimmed like the others (a YAML block scalar ends in a newline)', () => {
    const i = get([], { INPUT_OUTPUT: ' layout\n', INPUT_ROOT: `${dir}\n` });
    expect([i.output, i.root]).toEqual([path.resolve('layout'), dir]);
  });
});

describe('baseline and upper', () => {
  it('tells a baseline path the user gave from the default one in RUNNER_TEMP', () => {
    const derived = get([], { RUNNER_TEMP: '/runner/tmp' });
    expect(derived).toMatchObject({
      baseline: '/runner/tmp/depot-snapshot-baseline.gz',
      baselineGiven: false,
    });
    expect(get(['--baseline', 'b.gz'], { RUNNER_TEMP: '/runner/tmp' })).toMatchObject({
      baseline: path.resolve('b.gz'),
      baselineGiven: true,
    });
    expect(get([], { INPUT_BASELINE: '/x/b.gz' })).toMatchObject({
      baseline: '/x/b.gz',
      baselineGiven: true,
    });
    // The runner passes an input left at its empty default as an empty variable: not given.
    expect(get([], { INPUT_BASELINE: '', RUNNER_TEMP: '/t' }).baselineGiven).toBe(false);
  });

  it('reads upper from the flag or INPUT_UPPER, as an absolute path; empty when not set', () => {
    expect(get([]).upper).toBe('');
    expect(get(['--upper', 'rw/.snap/upper']).upper).toBe(path.resolve('rw/.snap/upper'));
    expect(get([], { INPUT_UPPER: ' /rw/.snap/upper \n' }).upper).toBe('/rw/.snap/upper');
  });
});
