// Acceptance for "What setup changed": a Debian sandbox (a container of a private dockerd, started from
// a base image this action pushed) runs the pre step as the runner would, then a real setup (apt-get
// install from Debian's mirror, npm install -g from the npm registry, a tool put on PATH through
// GITHUB_PATH), then the main step, which pushes the changes. The job summary must list what was
// installed with the versions dpkg-query, npm and Python report inside the pushed image.
import { chmodSync, realpathSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { PackageURL } from 'packageurl-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE24, runAction, shippedAction } from '../helpers/action.js';
import { debianRootfs } from '../helpers/image.js';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { startDocker, type Docker } from '../helpers/runtimes.js';
import { cleanupAll, tmpDir } from '../helpers/tools.js';
import { cyclonedxErrors } from '../helpers/cyclonedx.js';
import { referrersByTag } from '../helpers/referrers.js';

const APT_PACKAGES = ['python3', 'python3-pip', 'nodejs', 'npm', 'postgresql-client', 'python3-requests'];
const NPM_GLOBAL = 'is-number';
const COMMIT = '89abcdef0123456789abcdef0123456789abcdef';

let registry: Registry;
let docker: Docker;

beforeAll(async () => {
  registry = await startRegistry();
  docker = await startDocker();
});
afterAll(async () => {
  await cleanupAll().catch((err: AggregateError) => {
    throw new Error(`cleanup failed: ${err.errors.map(String).join('; ')}`);
  });
});

/**
 * The job inside the container: the pre step, the setup steps, the main step, with the runner's
 * protocol (INPUT_*, GITHUB_OUTPUT, GITHUB_STATE → STATE_*, GITHUB_PATH prepended to later steps'
 * PATH, GITHUB_STEP_SUMMARY). `env` sets the inputs: dash would drop names like INPUT_METADATA-FILE.
 */
const JOB = `#!/bin/sh
set -eu
W=/tmp/work
export GITHUB_ACTIONS=true RUNNER_TEMP=/tmp/runner-temp HOME=/root
export GITHUB_SERVER_URL=https://github.com GITHUB_REPOSITORY=acme/ci GITHUB_SHA=${COMMIT}
: > $W/state; : > $W/path; : > $W/summary.md; : > $W/output
env GITHUB_STATE=$W/state GITHUB_OUTPUT=$W/output /tmp/node24 /tmp/action/dist/pre/index.js

apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${APT_PACKAGES.join(' ')}
npm install -g ${NPM_GLOBAL}
mkdir -p /opt/mytool/bin
printf '#!/bin/sh\\necho mytool\\n' > /opt/mytool/bin/mytool && chmod +x /opt/mytool/bin/mytool
echo /opt/mytool/bin >> $W/path

state() { awk -v name="$1" 'index($0, name "<<") == 1 { getline; print; exit }' $W/state; }
PATH="$(tac $W/path | tr '\\n' ':')$PATH"
env GITHUB_STATE=$W/state GITHUB_OUTPUT=$W/output GITHUB_STEP_SUMMARY=$W/summary.md \\
  STATE_baseline="$(state baseline)" STATE_inventory="$(state inventory)" \\
  "INPUT_IMAGE=$IMAGE" "INPUT_METADATA-FILE=$W/metadata.json" \\
  /tmp/node24 /tmp/action/dist/index.js
`;

/**
 * The `- <code>name</code> <code>version</code>` items of the list titled `N <what>` in a summary
 * section (folded in <details>, or not).
 */
function listed(section: string, what: string): Map<string, string> {
  const lines = section.split('\n');
  const title = new RegExp(`^(<details><summary>)?\\d+ ${what}(</summary>|:)$`);
  const start = lines.findIndex((l) => title.test(l));
  const items = new Map<string, string>();
  if (start < 0) return items;
  const unescape = (s: string) =>
    s
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&#124;/g, '|')
      .replace(/&amp;/g, '&');
  for (const line of lines.slice(start + 1)) {
    if (line === '') continue;
    const m = /^- <code>(.*?)<\/code> <code>(.*?)<\/code>$/.exec(line);
    if (!m) break;
    items.set(unescape(m[1]), unescape(m[2]));
  }
  return items;
}

describe('What setup changed', () => {
  it(
    'lists the apt packages, the npm global and the PATH entry a real setup added, with the versions the pushed image reports',
    { timeout: 1_200_000 },
    async () => {
      // The base: Debian, pushed by this action (so it carries a marker: the pre step finds its base).
      const base = `${registry.host}/setup/debian:bookworm`;
      const pushed = await runAction({
        root: await debianRootfs(),
        image: base,
        exclude: '/.complete',
        'persist-env': 'false',
      });
      expect(pushed.errors, pushed.stdout).toEqual([]);

      const work = await tmpDir('setup-job');
      chmodSync(work, 0o755);
      await writeFile(path.join(work, 'job.sh'), JOB, { mode: 0o755 });
      const image = `${registry.host}/setup/ci:latest`;
      const mounts = [
        ['-v', `${work}:/tmp/work`],
        ['-v', `${shippedAction().dir}:/tmp/action:ro`],
        ['-v', `${realpathSync(NODE24)}:/tmp/node24:ro`],
      ];
      // npm needs the host's TLS trust to reach its registry from here.
      const ca = process.env.NODE_EXTRA_CA_CERTS;
      if (ca)
        mounts.push(['-v', `${ca}:/tmp/host-ca.crt:ro`], ['-e', 'NODE_EXTRA_CA_CERTS=/tmp/host-ca.crt']);
      expect((await docker.docker(['pull', base])).code).toBe(0);
      const job = await docker.docker([
        'run',
        '--rm',
        '--network=host',
        ...mounts.flat(),
        '-e',
        `IMAGE=${image}`,
        base,
        '/tmp/work/job.sh',
      ]);
      const log = `${job.stdout}\n${job.stderr}`;
      expect(job.code, log).toBe(0);
      expect(log).not.toMatch(/^::error/m);
      expect(log).toContain('changes: baseline');

      // What the pushed image itself says it holds, asked of its own tools.
      const inImage = async (script: string) => {
        const r = await docker.docker(['run', '--rm', '--network=none', image, 'sh', '-c', script]);
        expect(r.code, r.stderr).toBe(0);
        return r.stdout;
      };
      const dpkg = new Map(
        (await inImage(`dpkg-query -W ${APT_PACKAGES.join(' ')} 'postgresql-client-[0-9]*'`))
          .trim()
          .split('\n')
          .map((l) => l.split('\t') as [string, string]),
      );
      const pgVersioned = [...dpkg.keys()].find((n) => /^postgresql-client-\d+$/.test(n));
      expect(pgVersioned).toBeDefined();
      const npmVersion = JSON.parse(
        await inImage(`cat /usr/local/lib/node_modules/${NPM_GLOBAL}/package.json`),
      ).version;
      const requestsVersion = (
        await inImage(`python3 -c "import importlib.metadata as m; print(m.version('requests'))"`)
      ).trim();

      const summary = await readFile(path.join(work, 'summary.md'), 'utf8');
      const section = summary.split('### What setup changed')[1]?.split('\n### ')[0] ?? '';
      expect(section, summary).not.toBe('');
      const apt = listed(section, 'apt packages added');
      for (const name of [...APT_PACKAGES, pgVersioned!])
        expect([name, apt.get(name)], section).toEqual([name, dpkg.get(name)]);
      expect(listed(section, 'npm globals? added').get(NPM_GLOBAL), section).toBe(npmVersion);
      expect(listed(section, 'Python packages? added').get('requests'), section).toBe(requestsVersion);
      expect(section).toMatch(/^\d+ apt packages added\b.*; PATH gained \/opt\/mytool\/bin\./m);
      expect(section).toContain("compared with the inventory the pre step recorded before the job's steps");

      // The same in the metadata file, which follows its schema.
      const metadata = JSON.parse(await readFile(path.join(work, 'metadata.json'), 'utf8'));
      const ajv = new Ajv2020({ allErrors: true });
      ajv.validate(JSON.parse(await readFile('metadata.schema.json', 'utf8')), metadata);
      expect(ajv.errors ?? []).toEqual([]);
      expect(metadata.setup.before).toBe('baseline');
      expect(metadata.setup.path.gained).toEqual(['/opt/mytool/bin']);
      const python3 = metadata.setup.ecosystems.deb.added.find((p: { name: string }) => p.name === 'python3');
      expect(python3.version).toBe(dpkg.get('python3'));
      expect(python3.purl).toMatch(/^pkg:deb\/debian\/python3@.*\?arch=[a-z0-9]+&distro=debian-12/);

      // The SBOM and the provenance, found from the registry by the referrers tag schema alone.
      const digest = metadata.digest as string;
      const found = await referrersByTag(registry.host, 'setup/ci', digest);
      const sbom = found.find((f) => f.artifactType === 'application/vnd.cyclonedx+json')?.document;
      const provenance = found.find((f) => f.artifactType === 'application/vnd.in-toto+json')?.document;
      expect(sbom, JSON.stringify(found.map((f) => f.artifactType))).toBeDefined();
      expect(cyclonedxErrors(sbom)).toEqual([]);
      const purls = (sbom!.components as Array<{ purl?: string }>)
        .filter((c) => c.purl)
        .map((c) => PackageURL.fromString(c.purl!));
      const versionOf = (type: string, name: string) =>
        purls.find((p) => p.type === type && p.name === name)?.version;
      for (const name of [...APT_PACKAGES, pgVersioned!])
        expect([name, versionOf('deb', name)]).toEqual([name, dpkg.get(name)]);
      expect(versionOf('npm', NPM_GLOBAL)).toBe(npmVersion);
      expect(versionOf('pypi', 'requests')).toBe(requestsVersion);
      // The provenance: in-toto, this image as its subject, the commit and the base image by digest.
      const statement = provenance as {
        subject: Array<{ digest: { sha256: string } }>;
        predicate: { buildDefinition: { resolvedDependencies: Array<{ digest: Record<string, string> }> } };
      };
      expect(statement.subject.map((s) => s.digest.sha256)).toEqual([digest.slice('sha256:'.length)]);
      const resolved = statement.predicate.buildDefinition.resolvedDependencies.map((d) => d.digest);
      expect(resolved).toContainEqual({ gitCommit: COMMIT });
      expect(metadata.base.digest).toBe(pushed.outputs.digest);
      expect(resolved).toContainEqual({ sha256: pushed.outputs.digest.slice('sha256:'.length) });
    },
  );
});
