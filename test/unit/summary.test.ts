import { describe, expect, it } from 'vitest';
import type { Package } from '../../src/inventory/inventory.js';
import {
  markdownReport,
  textReport,
  whereTheBytesAre,
  type SetupReport,
  type SnapshotReport,
} from '../../src/summary.js';
import { EntryTable } from '../../src/walk/entries.js';
import { makeEntries } from './entries.js';

const entries = EntryTable.from(
  makeEntries([
    ['usr/lib/x86_64-linux-gnu/libbig.so', 5_000_000],
    ['usr/lib/x86_64-linux-gnu/deep/er/lib.so', 1_000_000],
    ['usr/bin/tool', 2_000_000],
    ['opt/sdk/a', 3_000_000],
    ['etc/passwd', 1000],
    ['top-file', 10],
  ]),
);

function report(over: Partial<SnapshotReport> = {}): SnapshotReport {
  return {
    destination: 'registry.example/team/ci',
    pushed: true,
    digest: 'sha256:' + 'ab'.repeat(32),
    tags: ['latest', 'v2'],
    base: { name: 'registry.example/base:1', digest: 'sha256:' + 'cd'.repeat(32), layers: 3 },
    changes: { method: 'baseline', reason: 'compared with the baseline', changed: 5, deleted: 2 },
    layers: [
      { label: '/usr', entries: 7, bytes: 8_000_000, compressed: 3_000_000, how: 'uploaded' },
      { label: '/opt', entries: 3, bytes: 3_000_000, compressed: 1_000_000, how: 'reused, mounted' },
    ],
    size: 9_000_000,
    uploaded: 3_000_000,
    captured: { entries: entries.length, bytes: 11_001_010 },
    ...whereTheBytesAre(entries),
    excluded: [
      'volatile directory (kept empty): 1 (/tmp)',
      'credentials: AWS credentials: 1 (/root/.aws/credentials)',
    ],
    env: { kept: ['FOO', 'PATH'], masked: [{ name: 'MY_TOKEN', reason: 'name looks secret' }] },
    phases: [
      { name: 'walk and changes', ms: 1500 },
      { name: 'layers', ms: 2000 },
      { name: 'push', ms: 500 },
    ],
    ...over,
  };
}

describe('whereTheBytesAre', () => {
  it('sums file bytes per directory with everything below, three levels deep, largest first', () => {
    const { largest, topLevel } = whereTheBytesAre(entries);
    expect(largest.slice(0, 5)).toEqual([
      { path: '/usr', bytes: 8_000_000 },
      { path: '/usr/lib', bytes: 6_000_000 },
      { path: '/usr/lib/x86_64-linux-gnu', bytes: 6_000_000 },
      { path: '/opt', bytes: 3_000_000 },
      { path: '/opt/sdk', bytes: 3_000_000 },
    ]);
    // Nothing deeper than three levels.
    expect(largest.map((d) => d.path)).not.toContain('/usr/lib/x86_64-linux-gnu/deep');
    expect(topLevel).toEqual([
      { name: '/usr', bytes: 8_000_000 },
      { name: '/opt', bytes: 3_000_000 },
      { name: '/etc', bytes: 1000 },
      { name: '(files in /)', bytes: 10 },
    ]);
  });
});

describe('markdownReport', () => {
  const md = markdownReport(report());
  const tableRows = (heading: string) => {
    const section = md.split(`### ${heading}`)[1].split('###')[0];
    return section.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| ---'));
  };

  it('names the image by digest, the base, and how changes were found', () => {
    expect(md).toContain(`registry.example/team/ci@sha256:${'ab'.repeat(32)}`);
    expect(md).toContain('registry.example/base:1');
    expect(md).toMatch(/\| changes \| baseline \(5 new or changed, 2 deleted\)/);
    expect(md).toMatch(/\| size \| 8\.6 MiB in 5 layers; 2\.9 MiB uploaded \|/);
  });

  it('names the attestations attached, or says none were', () => {
    const digest = `sha256:${'cd'.repeat(32)}`;
    const attached = markdownReport(report({ attestations: [{ kind: 'SBOM', digest }] }));
    expect(attached).toContain(`| attestations | SBOM <code>${digest}</code> |`);
    expect(markdownReport(report({ attestations: [] }))).toContain('| attestations | none attached |');
    expect(md).not.toContain('| attestations |');
  });

  it('has one layers row per layer, numbered after the base', () => {
    const rows = tableRows('Layers');
    expect(rows).toHaveLength(1 + 1 + 2); // header, base, two layers
    expect(rows[1]).toContain('| 1–3 | base image |');
    expect(rows[2]).toMatch(/^\| 4 \| <code>\/usr<\/code> \| 7 \| 7\.6 MiB \| 2\.9 MiB \| uploaded \|$/);
    expect(rows[3]).toMatch(/^\| 5 \| <code>\/opt<\/code> \| 3 \| .* \| reused, mounted \|$/);
  });

  it('draws a pie of the top-level directories and lists the largest', () => {
    expect(md).toContain('```mermaid\npie showData');
    expect(md).toContain('"/usr" : 8.0');
    const largest = tableRows('Where the bytes are');
    expect(largest[1]).toBe('| <code>/usr</code> | 7.6 MiB |');
  });

  it('lists what was left out, the environment kept and masked (names only), and time per phase', () => {
    expect(tableRows('Time').map((r) => r.split('|')[1].trim())).toEqual([
      'phase',
      'walk and changes',
      'layers',
      'push',
      '**total**',
    ]);
    expect(md).toContain('| **total** | 4.0 s |');
    expect(md).toContain('- credentials: AWS credentials: 1 (/root/.aws/credentials)');
    expect(md).toContain('<code>MY_TOKEN</code> (name looks secret)');
    expect(md).toContain('5.5 MB/s while writing layers');
  });

  it('escapes what could break a table or inject HTML', () => {
    const odd = markdownReport(report({ destination: 'a|b<script>' }));
    expect(odd).toContain('a&#124;b&lt;script&gt;');
    expect(odd).not.toContain('<script>');
  });
});

describe('textReport', () => {
  it('says the same in aligned columns', () => {
    const text = textReport(report());
    const lines = text.split('\n');
    const layers = lines.slice(lines.indexOf('Layers:') + 1, lines.indexOf('Layers:') + 5);
    expect(layers[0]).toMatch(/^\s+#\s+subtree\s+entries\s+content\s+compressed$/);
    expect(layers[2]).toMatch(/^\s+4\s+\/usr\s+7\s+7\.6 MiB\s+2\.9 MiB\s+uploaded$/);
    // Right-aligned numbers end in the same column.
    expect(layers[2].indexOf('7.6 MiB')).toBe(layers[3].indexOf('2.9 MiB')); // the content column
    expect(text).toContain('Environment left out: MY_TOKEN (name looks secret)');
    expect(text).toMatch(/total\s+4\.0 s/);
  });
});

describe('What setup changed', () => {
  const deb = (name: string, version: string): Package => ({
    ecosystem: 'deb',
    name,
    version,
    arch: 'amd64',
    location: 'var/lib/dpkg/status',
    purl: `pkg:deb/debian/${name}@${version}?arch=amd64`,
  });
  const many = Array.from({ length: 12 }, (_, i) => deb(`lib${i}`, `1.${i}`));
  const setup: SetupReport = {
    before: 'baseline',
    counts: { deb: 100, npm: 1, toolcache: 1 },
    ecosystems: {
      deb: {
        added: [deb('python3', '3.11.2-1+b1'), ...many],
        removed: [],
        upgraded: [{ from: deb('libc6', '2.36-9'), to: deb('libc6', '2.36-9+deb12u4') }],
      },
      npm: {
        added: [
          {
            ecosystem: 'npm',
            name: '@types/x',
            version: '1.0.0~rc<1>',
            location: 'l',
            purl: 'pkg:npm/%40types/x@1.0.0',
          },
        ],
        removed: [],
        upgraded: [],
      },
      toolcache: {
        added: [
          {
            ecosystem: 'toolcache',
            name: 'node',
            version: '22.1.0',
            arch: 'x64',
            location: 'l',
            purl: 'pkg:generic/node@22.1.0?arch=x64',
          },
        ],
        removed: [],
        upgraded: [],
      },
    },
    path: { gained: ['/opt/mytool/bin'], lost: [] },
  };

  it('gives counts per ecosystem in one line, then the packages, long lists folded in <details>', () => {
    const md = markdownReport(report({ setup }));
    const section = md.split('### What setup changed')[1].split('\n### ')[0];
    expect(section).toContain(
      '13 apt packages added, 1 upgraded; 1 npm global added; node 22.1.0 (x64) added to the tool cache; PATH gained /opt/mytool/bin.',
    );
    // 13 added: folded; the single upgrade and the npm global: shown.
    expect(section).toMatch(
      /<details><summary>13 apt packages added<\/summary>\n\n- <code>python3<\/code> <code>3\.11\.2-1\+b1<\/code>\n/,
    );
    expect(section).toContain(
      '1 apt package upgraded:\n\n- <code>libc6</code> <code>2.36-9 → 2.36-9+deb12u4</code>',
    );
    expect(section).toContain('- <code>@types/x</code> <code>1.0.0~rc&lt;1&gt;</code>');
    expect(section).not.toContain('<details><summary>1 apt package upgraded');
    expect(section).toContain("compared with the inventory the pre step recorded before the job's steps");
  });

  it('without a before-state, says so and counts what the image holds', () => {
    const none: SetupReport = { before: 'none', counts: { deb: 88, pypi: 2 }, ecosystems: null, path: null };
    const md = markdownReport(report({ setup: none }));
    expect(md).toContain('no before-state: the image holds 88 apt packages, 2 Python packages.');
    expect(md).not.toContain('<details>');
    expect(textReport(report({ setup: none }))).toContain(
      '  no before-state: the image holds 88 apt packages, 2 Python packages',
    );
  });

  it('prints the same in the text report, every package listed', () => {
    const text = textReport(report({ setup }));
    expect(text).toContain('What setup changed (');
    const joined = text.replace(/\n\s+/g, ' ');
    expect(joined).toContain('13 apt packages added: python3 3.11.2-1+b1, lib0 1.0, lib1 1.1,');
    expect(joined).toContain('lib11 1.11');
    expect(joined).toContain('1 apt package upgraded: libc6 2.36-9 → 2.36-9+deb12u4');
    expect(text.split('\n').every((l) => l.length <= 110)).toBe(true);
  });
});
