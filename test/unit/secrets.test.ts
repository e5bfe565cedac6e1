import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretFiles, scrubGitConfig } from '../../src/walk/secrets.js';

let root: string;
const files: Record<string, string> = {
  'root/.docker/config.json': '{"auths":{"r":{"auth":"eDp5"}}}',
  'home/runner/.git-credentials': 'https://x:tok@github.com',
  'home/runner/.npmrc': '//npm.example.com/:_authToken=npm_abc',
  'home/other/.npmrc': 'registry=https://npm.example.com/',
  'home/runner/.yarnrc.yml': 'npmAuthToken: abc',
  'home/runner/.config/gh/hosts.yml': 'github.com:\n  oauth_token: gho_x',
  'home/runner/.aws/credentials': '[default]',
  'home/runner/.ssh/id_ed25519': 'PRIVATE',
  'home/runner/.ssh/id_ed25519.pub': 'ssh-ed25519 AAAA',
  'home/runner/.ssh/known_hosts': 'github.com ssh-ed25519 AAAA',
  'etc/ssh/ssh_host_rsa_key': 'PRIVATE',
  'etc/ssh/sshd_config': 'Port 22',
  'home/runner/actions-runner/.credentials': '{}',
  'home/runner/actions-runner/.runner': '{}',
  'github/home/.docker/config.json': '{}',
  'srv/app/config.json': '{}',
};

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'secrets-'));
  for (const [p, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, p)), { recursive: true });
    await writeFile(path.join(root, p), text);
  }
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('SecretFiles', () => {
  it('names credential files in every home, by path and (for .npmrc and .yarnrc.yml) by content', () => {
    const secrets = new SecretFiles(root, path.join(root, 'github/home'));
    const found = Object.keys(files)
      .map((p) => [p, secrets.match('/' + p)] as const)
      .filter(([, what]) => what);
    expect(Object.fromEntries(found)).toEqual({
      'root/.docker/config.json': 'Docker registry credentials',
      'home/runner/.git-credentials': 'Git credentials',
      'home/runner/.npmrc': 'npm auth token',
      'home/runner/.yarnrc.yml': 'Yarn auth token',
      'home/runner/.config/gh/hosts.yml': 'GitHub CLI token',
      'home/runner/.aws/credentials': 'AWS credentials',
      'home/runner/.ssh/id_ed25519': 'SSH private key',
      'etc/ssh/ssh_host_rsa_key': 'SSH host key (each machine makes its own)',
      'home/runner/actions-runner/.credentials': 'Actions runner credentials',
      'home/runner/actions-runner/.runner': 'Actions runner registration',
      'github/home/.docker/config.json': 'Docker registry credentials',
    });
  });

  it('matches whole directories of cloud credentials', () => {
    const secrets = new SecretFiles(root);
    expect(secrets.match('/root/.config/gcloud')).toBe('Google Cloud credentials');
    expect(secrets.match('/home/a/.azure')).toBe('Azure credentials');
    expect(secrets.match('/opt/.azure')).toBeNull();
  });
});

describe('scrubGitConfig', () => {
  it("removes actions/checkout's persisted header and nothing else", () => {
    const config = [
      '[core]',
      '\trepositoryformatversion = 0',
      '[remote "origin"]',
      '\turl = https://github.com/o/r',
      '[http "https://github.com/"]',
      '\textraheader = AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46Z2hzX3h5eg==',
      '[branch "main"]',
      '\tremote = origin',
      '',
    ].join('\n');
    const r = scrubGitConfig(config);
    expect(r?.secrets).toEqual(['eC1hY2Nlc3MtdG9rZW46Z2hzX3h5eg==']);
    expect(r?.text).toBe(config.replace(/\textraheader = .*\n/, ''));
    expect(scrubGitConfig(r!.text)).toBeNull();
  });

  it('removes a password from a remote URL, keeping the user', () => {
    const r = scrubGitConfig(
      '[remote "origin"]\n\turl = https://x-access-token:ghs_abc123@github.com/o/r\n\tpushurl = git@github.com:o/r\n',
    );
    expect(r).toEqual({
      text: '[remote "origin"]\n\turl = https://x-access-token@github.com/o/r\n\tpushurl = git@github.com:o/r\n',
      secrets: ['ghs_abc123'],
    });
  });

  it('finds the header in any case and quoting, and leaves other extraheaders alone', () => {
    const r = scrubGitConfig(
      '[http]\n\tExtraHeader = "Authorization: Bearer abc.def"\n\textraheader = X-Trace: 1\n',
    );
    expect(r).toEqual({ text: '[http]\n\textraheader = X-Trace: 1\n', secrets: ['abc.def'] });
  });
});
