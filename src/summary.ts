import { show } from './log.js';
import { formatBytes } from './util/format.js';
import { showShortened, type Exclusion } from './walk/walk.js';
import type { EntryTable } from './walk/entries.js';
import type { EcosystemChanges, SetupChanges } from './inventory/diff.js';
import type { Ecosystem, Inventory, Package } from './inventory/inventory.js';

/** One new layer of the image, as the summary shows it. */
export interface LayerRow {
  label: string;
  entries: number;
  /** Bytes of file content in it. */
  bytes: number;
  compressed: number;
  /** `uploaded`, `written` (layout), `already there`, `mounted`. */
  how: string;
}

/** Everything the job summary and the CLI's closing report say about one snapshot. */
export interface SnapshotReport {
  /** `registry/repository` or the layout directory. */
  destination: string;
  pushed: boolean;
  digest: string;
  tags: string[];
  base: { name: string; digest: string; layers: number } | null;
  changes: { method: string; reason: string; changed?: number; deleted?: number };
  layers: LayerRow[];
  /** Bytes of the config and every layer (base included), and of those sent this run. */
  size: number;
  uploaded: number;
  captured: { entries: number; bytes: number };
  largest: Array<{ path: string; bytes: number }>;
  topLevel: Array<{ name: string; bytes: number }>;
  /** What the walk left out, one line per reason. */
  excluded: string[];
  /** Null when `persist-env` is off. */
  env: { kept: string[]; masked: Array<{ name: string; reason: string }> } | null;
  phases: Array<{ name: string; ms: number }>;
  /** When layers were merged. */
  compaction?: Compaction;
  /** What the setup steps installed (snapshot only). */
  setup?: SetupReport;
  /** The image's software as read from its tree, read once for the report (and for an SBOM). */
  inventory?: Inventory;
  /** The documents attached to the image as its referrers (SBOM, provenance): kind and manifest digest. */
  attestations?: Array<{ kind: string; digest: string }>;
}

/** What the job's setup steps changed in the tree's software, per ecosystem, and in PATH. */
export interface SetupReport {
  /** The pre step's record (`baseline`), the overlay's lower dirs (`overlay`), or nothing to compare with. */
  before: 'baseline' | 'overlay' | 'none';
  /** Packages per ecosystem the image holds. */
  counts: Partial<Record<Ecosystem, number>>;
  /** What changed per ecosystem (only those that did); null without a before-state. */
  ecosystems: SetupChanges['ecosystems'] | null;
  /** PATH entries gained and lost; null when the PATH before is not known. */
  path: SetupChanges['path'] | null;
}

/** Layers of earlier snapshots merged into this one's, to keep the image within max-layers. */
export interface Compaction {
  /** How many of the base's top layers were merged, and their compressed bytes. */
  merged: number;
  bytes: number;
  /** The base's layers below them, kept as they were. */
  kept: number;
  /** Paths those layers and this run's changes touched, captured again from the tree. */
  paths: number;
  maxLayers: number;
}

/** One line for the log and the summary: what was merged and why. */
export function describeCompaction(c: Compaction): string {
  return `compacted: the top ${c.merged} layers of the base (made by earlier snapshots, ${formatBytes(c.bytes)}) merged into this snapshot's, their ${c.paths} paths captured again from the tree, to stay within max-layers ${c.maxLayers}; the ${c.kept} layers below are kept as they are`;
}

/** How many directories the "where the bytes are" table lists, and how deep it looks. */
const LARGEST = 15;
const DEPTH = 3;

/**
 * File bytes per directory (with everything below it, up to `DEPTH` levels from the root) and per
 * top-level directory: where an image's size comes from, so its owner can slim it.
 */
export function whereTheBytesAre(entries: EntryTable): Pick<SnapshotReport, 'largest' | 'topLevel'> {
  const perDir = new Map<string, number>();
  const add = (key: string, n: number) => perDir.set(key, (perDir.get(key) ?? 0) + n);
  // Walk order keeps a directory's files together: each run of them is counted at once.
  let run: Buffer | null = null;
  let runBytes = 0;
  const flush = () => {
    if (run === null) return;
    if (run.length === 0) add('', runBytes); // files at the top
    for (let slash = -1, depth = 0; run.length && depth < DEPTH; depth++) {
      slash = run.indexOf(0x2f, slash + 1);
      add(run.toString('latin1', 0, slash < 0 ? run.length : slash), runBytes);
      if (slash < 0) break;
    }
  };
  for (let i = 0; i < entries.length; i++) {
    const size = entries.size(i);
    if (size === 0 || entries.kind(i) !== 'file') continue;
    const parent = entries.dirOf(i);
    if (run === null || (parent !== run && !parent.equals(run))) {
      flush();
      run = parent;
      runBytes = 0;
    }
    runBytes += size;
  }
  flush();
  const shown = (key: string) => show(Buffer.from('/' + key, 'latin1'));
  const sorted = [...perDir].filter(([k]) => k !== '').sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const largest = sorted.slice(0, LARGEST).map(([k, bytes]) => ({ path: shown(k), bytes }));
  const topLevel = [...perDir]
    .filter(([k]) => !k.includes('/'))
    .sort((a, b) => b[1] - a[1])
    .map(([k, bytes]) => ({ name: k === '' ? '(files in /)' : shown(k), bytes }));
  return { largest, topLevel };
}

/** The job summary: Markdown (with HTML where tables need it) that GitHub renders on the run page. */
export function markdownReport(r: SnapshotReport): string {
  const out: string[] = [];
  const code = (s: string) => `<code>${html(s)}</code>`;
  out.push(`## Snapshot ${r.pushed ? 'pushed' : 'written'}: ${code(r.destination)}`, '');
  out.push('| | |', '| --- | --- |');
  for (const [k, v] of overview(r, code)) out.push(`| ${k} | ${v} |`);
  out.push('');
  if (r.setup) out.push(...markdownSetup(r.setup));

  out.push('### Layers', '');
  out.push('| # | subtree | entries | content | compressed | |', '| ---: | --- | ---: | ---: | ---: | --- |');
  if (r.base) out.push(`| 1–${r.base.layers} | base image | | | | inherited |`);
  r.layers.forEach((l, i) =>
    out.push(
      `| ${(r.base?.layers ?? 0) + i + 1} | ${code(l.label)} | ${l.entries} | ${formatBytes(l.bytes)} | ${formatBytes(l.compressed)} | ${l.how} |`,
    ),
  );
  out.push('');

  if (r.largest.length) {
    out.push('### Where the bytes are', '');
    const pie = pieSlices(r.topLevel);
    if (pie.length > 1) {
      out.push('```mermaid', `pie showData title Captured file bytes (MB) by top-level directory`);
      for (const s of pie) out.push(`  "${s.name.replace(/"/g, "'")}" : ${(s.bytes / 1e6).toFixed(1)}`);
      out.push('```', '');
    }
    out.push(
      `The ${r.largest.length} largest directories captured, with everything below them (${DEPTH} levels deep):`,
      '',
    );
    out.push('| directory | size |', '| --- | ---: |');
    for (const d of r.largest) out.push(`| ${code(d.path)} | ${formatBytes(d.bytes)} |`);
    out.push('');
  }

  if (r.excluded.length) {
    out.push('### Left out', '');
    for (const line of r.excluded) out.push(`- ${html(line)}`);
    out.push('');
  }

  if (r.env) {
    out.push('### Environment', '');
    out.push(`Kept in the image's \`Env\`: ${r.env.kept.map(code).join(', ') || 'nothing new'}.`, '');
    if (r.env.masked.length)
      out.push(`Left out: ${r.env.masked.map((m) => `${code(m.name)} (${m.reason})`).join(', ')}.`, '');
  }

  out.push('### Time', '');
  out.push('| phase | time |', '| --- | ---: |');
  for (const p of r.phases) out.push(`| ${p.name} | ${seconds(p.ms)} |`);
  out.push(`| **total** | ${seconds(total(r))} |`, '');
  out.push(throughput(r), '');
  return out.join('\n');
}

/** The same report as plain text, for a terminal or a CI log outside GitHub Actions. */
export function textReport(r: SnapshotReport): string {
  const out: string[] = [`Snapshot ${r.pushed ? 'pushed' : 'written'}: ${r.destination}`];
  const rows = overview(r, (s) => s);
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) out.push(`  ${k.padEnd(width)}  ${v}`);
  if (r.setup) out.push('', ...textSetup(r.setup));

  out.push('', 'Layers:');
  const table: string[][] = [['#', 'subtree', 'entries', 'content', 'compressed', '']];
  if (r.base) table.push([`1-${r.base.layers}`, 'base image', '', '', '', 'inherited']);
  r.layers.forEach((l, i) =>
    table.push([
      String((r.base?.layers ?? 0) + i + 1),
      l.label,
      String(l.entries),
      formatBytes(l.bytes),
      formatBytes(l.compressed),
      l.how,
    ]),
  );
  out.push(...columns(table, [true, false, true, true, true, false]));

  if (r.largest.length) {
    out.push('', `Largest directories (with everything below them, ${DEPTH} levels deep):`);
    out.push(
      ...columns(
        r.largest.map((d) => [formatBytes(d.bytes), d.path]),
        [true, false],
      ),
    );
  }
  if (r.excluded.length) out.push('', 'Left out:', ...r.excluded.map((l) => `  ${l}`));
  if (r.env) {
    out.push('', `Environment kept: ${r.env.kept.join(', ') || 'nothing new'}`);
    if (r.env.masked.length)
      out.push(`Environment left out: ${r.env.masked.map((m) => `${m.name} (${m.reason})`).join(', ')}`);
  }
  out.push('', 'Time:');
  out.push(
    ...columns(
      [...r.phases.map((p) => [p.name, seconds(p.ms)]), ['total', seconds(total(r))]],
      [false, true],
    ),
  );
  out.push(throughput(r));
  return out.join('\n');
}

function overview(r: SnapshotReport, code: (s: string) => string): Array<[string, string]> {
  const rows: Array<[string, string]> = [
    ['image', code(`${r.destination}@${r.digest}`)],
    ['tags', r.tags.join(', ')],
    ['base', r.base ? `${code(r.base.name)}${r.base.digest ? ` ${code(r.base.digest)}` : ''}` : 'none'],
  ];
  const counts =
    r.changes.method === 'full'
      ? `${r.captured.entries} entries`
      : `${r.changes.changed ?? 0} new or changed, ${r.changes.deleted ?? 0} deleted`;
  rows.push(['changes', `${r.changes.method} (${counts}): ${r.changes.reason}`]);
  if (r.compaction) rows.push(['compaction', describeCompaction(r.compaction)]);
  if (r.attestations)
    rows.push([
      'attestations',
      r.attestations.map((a) => `${a.kind} ${code(a.digest)}`).join(', ') || 'none attached',
    ]);
  rows.push([
    'size',
    `${formatBytes(r.size)} in ${(r.base?.layers ?? 0) + r.layers.length} layers; ${formatBytes(r.uploaded)} ${r.pushed ? 'uploaded' : 'written'}`,
  ]);
  return rows;
}

/** Top-level directories for a pie: the seven biggest, the rest as one slice. */
function pieSlices(topLevel: SnapshotReport['topLevel']): SnapshotReport['topLevel'] {
  const slices = topLevel.slice(0, 7);
  const rest = topLevel.slice(7).reduce((n, t) => n + t.bytes, 0);
  return rest > 0 ? [...slices, { name: 'other', bytes: rest }] : slices;
}

function throughput(r: SnapshotReport): string {
  const layers = r.phases.find((p) => p.name === 'layers')?.ms ?? 0;
  const rate =
    layers > 0 ? `, ${(r.captured.bytes / 1e6 / (layers / 1000)).toFixed(1)} MB/s while writing layers` : '';
  return `Captured ${r.captured.entries} entries, ${formatBytes(r.captured.bytes)} of file content${rate}.`;
}

function total(r: SnapshotReport): number {
  return r.phases.reduce((n, p) => n + p.ms, 0);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Left- or right-aligned columns, two spaces apart, indented by two. */
function columns(rows: string[][], right: boolean[]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  return rows.map(
    (row) =>
      '  ' +
      row
        .map((cell, c) => (right[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
        .join('  ')
        .trimEnd(),
  );
}

function html(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\|/g, '&#124;');
}

/** What the walk left out, grouped by reason, with the first few paths of each. */
export function describeExclusions(excluded: Exclusion[], sockets: Buffer[]): string[] {
  const byReason = new Map<string, string[]>();
  for (const e of excluded) {
    const list = byReason.get(e.reason) ?? [];
    // Shortened: a path left out for its length is thousands of bytes.
    list.push(showShortened(Buffer.concat([Buffer.from('/'), e.path])));
    byReason.set(e.reason, list);
  }
  if (sockets.length)
    byReason.set(
      'socket (cannot be stored in an image)',
      sockets.map((s) => show(Buffer.concat([Buffer.from('/'), s]))),
    );
  const lines: string[] = [];
  for (const [reason, paths] of byReason) {
    const shown = paths.slice(0, 5).join(', ');
    lines.push(`${reason}: ${paths.length} (${shown}${paths.length > 5 ? ', …' : ''})`);
  }
  return lines;
}

/** How each ecosystem is named in the report, one and many. */
const ECOSYSTEM_NOUNS: Record<Ecosystem, [string, string]> = {
  deb: ['apt package', 'apt packages'],
  apk: ['apk package', 'apk packages'],
  npm: ['npm global', 'npm globals'],
  pypi: ['Python package', 'Python packages'],
  toolcache: ['tool cache version', 'tool cache versions'],
};
const ECOSYSTEMS = Object.keys(ECOSYSTEM_NOUNS) as Ecosystem[];
/** Longer lists are folded in the job summary. */
const FOLD_AFTER = 10;

const noun = (e: Ecosystem, n: number) => `${n} ${ECOSYSTEM_NOUNS[e][n === 1 ? 0 : 1]}`;
const toolName = (p: Package) => `${p.name} ${p.version}${p.arch ? ` (${p.arch})` : ''}`;

const BEFORE: Record<SetupReport['before'], string> = {
  baseline: "compared with the inventory the pre step recorded before the job's steps",
  overlay: "compared with the overlay's lower dirs (the tree before the job's changes)",
  none: 'no record from the pre step and no readable overlay lower dirs to compare with',
};

/**
 * One line: counts per ecosystem, tool cache versions by name, PATH entries gained and lost
 * ("140 apt packages added, 3 upgraded; 1 npm global added; node 22.1.0 (x64) added to the tool cache; PATH gained /opt/mytool/bin").
 */
export function describeSetupCounts(s: SetupReport): string {
  const parts: string[] = [];
  if (!s.ecosystems) {
    const held = ECOSYSTEMS.filter((e) => s.counts[e]).map((e) => noun(e, s.counts[e]!));
    parts.push(`no before-state: the image holds ${held.join(', ') || 'no package these ecosystems list'}`);
  } else {
    for (const e of ECOSYSTEMS) {
      const c = s.ecosystems[e];
      if (c) parts.push(e === 'toolcache' ? describeToolCache(c) : describeEcosystem(e, c));
    }
    if (!parts.length) parts.push('no package added, removed or upgraded');
  }
  if (s.path?.gained.length) parts.push(`PATH gained ${s.path.gained.join(', ')}`);
  if (s.path?.lost.length) parts.push(`PATH lost ${s.path.lost.join(', ')}`);
  return parts.join('; ');
}

function describeEcosystem(e: Ecosystem, c: EcosystemChanges): string {
  const counts = (
    [
      [c.added.length, 'added'],
      [c.upgraded.length, 'upgraded'],
      [c.removed.length, 'removed'],
    ] as const
  ).filter(([n]) => n > 0);
  return counts.map(([n, verb], i) => `${i === 0 ? noun(e, n) : n} ${verb}`).join(', ');
}

function describeToolCache(c: EcosystemChanges): string {
  const named = (list: Package[]) =>
    list.length <= 3 ? list.map(toolName).join(', ') : noun('toolcache', list.length);
  return [
    c.added.length ? `${named(c.added)} added to the tool cache` : '',
    c.removed.length ? `${named(c.removed)} removed from the tool cache` : '',
  ]
    .filter(Boolean)
    .join(', ');
}

/** Each list of the section (ecosystem × added/upgraded/removed): a title and its `name version` items. */
function setupLists(s: SetupReport): Array<{ title: string; items: Array<[string, string]> }> {
  const lists: Array<{ title: string; items: Array<[string, string]> }> = [];
  for (const e of ECOSYSTEMS) {
    const c = s.ecosystems?.[e];
    if (!c) continue;
    const item = (p: Package): [string, string] => [
      p.name,
      e === 'toolcache' ? toolName(p).slice(p.name.length + 1) : p.version,
    ];
    if (c.added.length) lists.push({ title: `${noun(e, c.added.length)} added`, items: c.added.map(item) });
    if (c.upgraded.length)
      lists.push({
        title: `${noun(e, c.upgraded.length)} upgraded`,
        items: c.upgraded.map((u) => [u.to.name, `${u.from.version} → ${u.to.version}`]),
      });
    if (c.removed.length)
      lists.push({ title: `${noun(e, c.removed.length)} removed`, items: c.removed.map(item) });
  }
  return lists;
}

/** The job summary's "What setup changed": the counts line, then each list, folded past FOLD_AFTER items. */
export function markdownSetup(s: SetupReport): string[] {
  const code = (t: string) => `<code>${html(t)}</code>`;
  const out = [
    '### What setup changed',
    '',
    `${html(describeSetupCounts(s))}.`,
    '',
    `<sub>${html(BEFORE[s.before])}</sub>`,
    '',
  ];
  for (const { title, items } of setupLists(s)) {
    const lines = items.map(([name, version]) => `- ${code(name)} ${code(version)}`);
    if (items.length > FOLD_AFTER)
      out.push(`<details><summary>${html(title)}</summary>`, '', ...lines, '', '</details>', '');
    else out.push(`${html(title)}:`, '', ...lines, '');
  }
  return out;
}

/** The same for the plain-text report: every list in full, wrapped. */
export function textSetup(s: SetupReport): string[] {
  const out = [`What setup changed (${BEFORE[s.before]}):`, ...wrap(describeSetupCounts(s), '  ')];
  for (const { title, items } of setupLists(s))
    out.push(...wrap(`${title}: ${items.map(([name, version]) => `${name} ${version}`).join(', ')}`, '  '));
  return out;
}

/** Lines of at most about 100 columns, broken after commas, each indented. */
function wrap(text: string, indent: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/(?<=, )/)) {
    if (line && indent.length + line.length + word.length > 100) {
      lines.push(indent + line.trimEnd());
      line = '  ';
    }
    line += word;
  }
  if (line.trim()) lines.push(indent + line.trimEnd());
  return lines;
}
