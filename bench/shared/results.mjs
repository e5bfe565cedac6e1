// The results section: a header on the machine, build and inputs, the tables, the per-run details
// and the problems; printed, and appended to bench/RESULTS.md.
import { existsSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import { exec } from './exec.mjs';
import { REPO, RESULTS, log } from './paths.mjs';
import { SYNTH_LAYER_SIZE } from './synth-run.mjs';
import { MAIN_HEADER } from './compare.mjs';
import { compositionText } from './composition.mjs';
import { gb, mdTable, sectionMarkdown } from './table.mjs';

/**
 * The markdown of one bench run. `ours`: node, nodeVersion, node24 (the zstd run's, if another),
 * dist, nodeArgs. `input`: the main tree (path, name, bytes, paths, walked entries, tar bytes) or
 * null (with its `composition`), the synthetic trees' notes and other figures' notes on their own trees
 * (`notes`). `figures`: main-table rows, sections, details, problems.
 */
export function resultsMarkdown({ machine: m, load, minutes, runs, ours, input, figures }) {
  const { tree } = input;
  const synthNotes = [
    `- synthetic trees (bench/synth-tree.mjs): ${input.synthTrees.join('; ')}; ours: dry run, \`--compression gzip --compression-level 1 --layer-size ${SYNTH_LAYER_SIZE}\` (one layer), layout deleted after each run; RSS breakdown from process.memoryUsage() sampled every 50 ms (bench/memwatch.mjs)`,
  ];
  const sections = [];
  if (figures.rows.length) sections.push(mdTable(MAIN_HEADER, figures.rows), '');
  for (const s of figures.sections) if (s.rows.length) sections.push(...sectionMarkdown(s));
  return [
    `## ${m.date} — ${m.rev}`,
    '',
    `- machine: ${m.nproc} cores, ${m.model}, ${m.memGiB} GiB; load average ${load.start} at start, ${load.end} at end`,
    `- node ${ours.nodeVersion} (ours: ${ours.node})${ours.node24 && ours.node24 !== ours.nodeVersion ? `, node ${ours.node24} (ours, zstd)` : ''}; dist/index.js sha256 ${ours.dist.hash} (built ${ours.dist.mtime.toISOString()})${ours.nodeArgs.length && !tree ? `; node options ${ours.nodeArgs.join(' ')}` : ''}`,
    ...(tree
      ? [
          `- tree ${tree.name}: ${gb(tree.bytes)} (du -sb), ${tree.paths} paths (find)${tree.entries ? `, ours walked ${tree.entries} entries` : ''}, tar stream ${gb(tree.tarBytes)}`,
          ...(tree.composition
            ? [
                `- tree ${tree.name} by content: ${compositionText(tree.composition)}; compressed share = bytes of files that start as a compressed format does (deb, gzip, xz, zstd, bzip2, zip/jar/whl, png, jpeg, …) over the bytes of all regular files, hard links once`,
              ]
            : []),
          `- ${runs} runs of each side, alternating ours/peer, median wall time; peak RSS = max over our runs (GNU time %M)`,
        ]
      : [
          `- ${runs} runs of each, median wall time; peak RSS = max over the runs (GNU time %M); MB = 10^6 bytes`,
        ]),
    ...(input.synthTrees.length ? synthNotes : []),
    ...input.notes.map((n) => `- ${n}`),
    '- page cache warmed once with `tar -cf - -C TREE . | cat > /dev/null` (not dropped): every run reads from memory',
    ...(tree
      ? [
          '- ours writes its layout to disk and hashes every layer twice (diff ID + digest); the peers write to /dev/null',
        ]
      : []),
    `- whole bench: ${minutes} min`,
    '',
    ...sections,
    'Runs (wall, s):',
    '',
    ...figures.details,
    ...(figures.problems.length ? ['', 'Problems seen:', '', ...figures.problems.map((p) => `- ${p}`)] : []),
    '',
  ].join('\n');
}

/** Appends `md` to bench/RESULTS.md (created with its title if missing), formatted as `npm run lint` wants. */
export async function appendResults(md) {
  const head = existsSync(RESULTS)
    ? ''
    : '# Benchmark results\n\nAppended by `npm run bench` (bench/run.mjs); newest last.\n\n';
  await appendFile(RESULTS, head + md + '\n');
  // `npm run lint` checks bench/ with prettier: align the table the way it wants
  const prettier = path.join(REPO, 'node_modules', '.bin', 'prettier');
  if (existsSync(prettier) && (await exec(prettier, ['--write', RESULTS], { cwd: REPO })).code !== 0) {
    log('prettier could not format RESULTS.md');
  }
  log(`appended to ${path.relative(REPO, RESULTS)}`);
}
