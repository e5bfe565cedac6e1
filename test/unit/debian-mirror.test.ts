import { afterAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { debianMirror } from '../helpers/debian-mirror.mjs';

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

/** An /etc/apt holding `files` (paths relative to it). */
async function etcApt(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'etc-apt-'));
  dirs.push(dir);
  await mkdir(path.join(dir, 'sources.list.d'));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  return dir;
}

describe('debianMirror', () => {
  it('takes the main archive of a deb822 file, not a security stanza before it nor a disabled one', async () => {
    const dir = await etcApt({
      'sources.list.d/debian.sources': [
        'Types: deb',
        'URIs: http://security.example.com/debian-security',
        'Suites: bookworm-security',
        'Components: main',
        '',
        'Types: deb-src',
        'URIs: http://src.example.com/debian',
        'Suites: bookworm',
        '',
        'Enabled: no',
        'Types: deb',
        'URIs: http://off.example.com/debian',
        'Suites: bookworm',
        '',
        '# a snapshot, not used: http://old.example.com/debian',
        'Types: deb',
        'URIs:',
        '  http://mirror.example.com/debian',
        '  http://second.example.com/debian',
        'Suites: bookworm bookworm-updates',
        'Components: main',
        '',
      ].join('\n'),
    });
    expect(debianMirror(dir)).toBe('http://mirror.example.com/debian');
  });

  it('takes a deb line of sources.list (options, comments and security lines skipped) before sources.list.d', async () => {
    const dir = await etcApt({
      'sources.list': [
        '# deb http://commented.example.com/debian bookworm main',
        'deb-src http://src.example.com/debian bookworm main',
        'deb http://security.example.com/debian-security bookworm-security main',
        'deb http://security.example.com/debian bookworm/updates main',
        'deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example.com/debian bookworm main',
      ].join('\n'),
      'sources.list.d/a.sources': 'Types: deb\nURIs: http://later.example.com/debian\nSuites: bookworm\n',
    });
    expect(debianMirror(dir)).toBe('http://mirror.example.com/debian');
  });

  it('says what is missing when apt names no Debian archive', async () => {
    const dir = await etcApt({
      'sources.list.d/only-security.list':
        'deb http://security.example.com/debian-security bookworm-security main\n',
      'sources.list.d/off.list.disabled': 'deb http://off.example.com/debian bookworm main\n',
    });
    expect(() => debianMirror(dir)).toThrow(/no Debian archive in apt's configuration/);
  });
});
