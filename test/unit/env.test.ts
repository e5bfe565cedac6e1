import { describe, expect, it } from 'vitest';
import { persistedEnv } from '../../src/image/env.js';

const job = {
  PATH: '/opt/tool/bin:/usr/local/bin:/usr/bin:/bin',
  FOO: 'bar',
  JAVA_HOME: '/opt/java',
  MY_API_TOKEN: 'tok-1234567890',
  GITHUB_TOKEN: 'ghs_abcdefghijklmnop',
  GITHUB_WORKSPACE: '/home/runner/work/r/r',
  RUNNER_OS: 'Linux',
  ACTIONS_RUNTIME_TOKEN: 'runtime-token-value',
  INPUT_IMAGE: 'reg/x:y',
  STATE_baseline: '/tmp/b',
  CI: 'true',
  HOME: '/home/runner',
  PWD: '/home/runner/work',
  HOSTNAME: 'sandbox-1',
  DB_PASSWORD: 'hunter2-hunter2',
  AWS_SECRET_ACCESS_KEY: 'aws-secret-value',
  NPM_CONFIG__AUTH: 'x',
  MIRROR_URL: 'https://user:tok-1234567890@mirror.example',
  UV_THREADPOOL_SIZE: '16',
};

describe('persistedEnv', () => {
  it("keeps the job's PATH and the variables it set, never secrets or runner variables", () => {
    const r = persistedEnv(job, [], [], []);
    expect(r.env).toEqual(['FOO=bar', 'JAVA_HOME=/opt/java', `PATH=${job.PATH}`]);
    expect(r.kept).toEqual(['FOO', 'JAVA_HOME', 'PATH']);
    const masked = Object.fromEntries(r.masked.map((m) => [m.name, m.reason]));
    expect(masked).toEqual({
      MY_API_TOKEN: 'name looks secret',
      DB_PASSWORD: 'name looks secret',
      AWS_SECRET_ACCESS_KEY: 'name looks secret',
      NPM_CONFIG__AUTH: 'name looks secret',
      MIRROR_URL: 'value holds a credential',
    });
    const text = r.env.join('\n');
    for (const secret of ['tok-1234567890', 'ghs_', 'runtime-token', 'hunter2', 'aws-secret'])
      expect(text).not.toContain(secret);
  });

  it("merges over the base's Env: base order kept, changed values replaced, new names appended", () => {
    const base = ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8', 'JAVA_HOME=/opt/java', 'GITHUB_BASE=1'];
    const r = persistedEnv(
      { PATH: '/x/bin:/usr/bin:/bin', LANG: 'C.UTF-8', ZED: '1', ABC: '2' },
      base,
      [],
      [],
    );
    expect(r.env).toEqual([
      'PATH=/x/bin:/usr/bin:/bin',
      'LANG=C.UTF-8',
      'JAVA_HOME=/opt/java',
      'GITHUB_BASE=1',
      'ABC=2',
      'ZED=1',
    ]);
    // Equal to the base: nothing new to say about it.
    expect(r.kept).toEqual(['ABC', 'PATH', 'ZED']);
  });

  it('leaves out env-mask names and globs, and values holding a given secret', () => {
    const r = persistedEnv(
      { FOO: 'bar', MY_A: '1', MY_B: '2', URL: 'x-s3cr3tvalue-x' },
      [],
      ['FOO', 'MY_*'],
      ['s3cr3tvalue'],
    );
    expect(r.env).toEqual([]);
    expect(r.masked).toEqual([
      { name: 'FOO', reason: 'env-mask' },
      { name: 'MY_A', reason: 'env-mask' },
      { name: 'MY_B', reason: 'env-mask' },
      { name: 'URL', reason: 'value holds a credential' },
    ]);
  });
});
