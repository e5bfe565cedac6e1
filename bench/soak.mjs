#!/usr/bin/env node
// Soak of the property test (test/integration/property.test.ts): thousands of random trees, each
// captured, unpacked with umoci and compared, then changed and captured again on top of its base.
// Not part of the tests: run it by hand (see bench/README.md). Needs what the integration tests need
// (root, docker-registry, skopeo, umoci, attr), and a built dist/.
//
//   SOAK_CASES=3000     cases in all (default 3000)
//   SOAK_ROUND=480      cases per vitest run (one registry, batches of PROPERTY_BATCH)
//   SOAK_SEED=<n>       first seed (default: random); round k starts at SOAK_SEED + k * SOAK_ROUND
//
// Prints every failing seed with the command that replays it; exits 1 if there was any.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CASES = Number(process.env.SOAK_CASES ?? 3000);
const ROUND = Number(process.env.SOAK_ROUND ?? 480);
const SEED = process.env.SOAK_SEED ? Number(process.env.SOAK_SEED) : Math.floor(Math.random() * 2 ** 31);

/** One vitest run of the property test; resolves with its output and exit code. */
function round(seed, cases) {
  return new Promise((resolve) => {
    const child = spawn('npx', ['vitest', 'run', 'test/integration/property.test.ts'], {
      cwd: REPO,
      env: { ...process.env, PROPERTY_SEED: String(seed), PROPERTY_CASES: String(cases) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => resolve({ out, code: code ?? 1 }));
  });
}

const started = Date.now();
const failures = [];
console.log(`soak: ${CASES} cases from seed ${SEED}, ${ROUND} per round`);
for (let done = 0; done < CASES; done += ROUND) {
  const seed = SEED + done;
  const cases = Math.min(ROUND, CASES - done);
  const t0 = Date.now();
  const { out, code } = await round(seed, cases);
  // The test reports each mismatch as "seed N (phase; replay: …)"; anything else (a capture that
  // failed, a tool that broke) is reported by batch.
  const seeds = [...out.matchAll(/seed (\d+) \((capture|changes); replay/g)].map((m) => `${m[1]} (${m[2]})`);
  const batches = [...out.matchAll(/× .*batch \d+: seeds (\d+)\.\.(\d+)/g)].map((m) => `${m[1]}..${m[2]}`);
  const failed = code !== 0;
  if (failed) failures.push({ seed, seeds, batches, tail: out.slice(-4000) });
  console.log(
    `round ${seed}..${seed + cases - 1}: ${failed ? 'FAILED' : 'ok'} in ${((Date.now() - t0) / 1000).toFixed(0)} s` +
      (seeds.length ? `; mismatching seeds: ${[...new Set(seeds)].join(', ')}` : '') +
      (batches.length ? `; failed batches: ${batches.join(', ')}` : ''),
  );
}
console.log(
  `soak: ${CASES} cases in ${((Date.now() - started) / 60000).toFixed(1)} min, ${failures.length} failed round(s)`,
);
for (const f of failures) {
  console.log(`\n--- round from seed ${f.seed}\n${f.tail}`);
  for (const s of f.seeds)
    console.log(
      `replay: PROPERTY_SEED=${s.split(' ')[0]} PROPERTY_CASES=1 npx vitest run test/integration/property.test.ts`,
    );
}
process.exit(failures.length ? 1 : 0);
