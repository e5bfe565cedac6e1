import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import picomatch from 'picomatch';
import { show, type Logger } from '../log.js';
import type { EntryTable } from './entries.js';
import { latin1KeyToText } from '../util/paths.js';

/**
 * Credentials a CI sandbox accumulates (logins, tokens, keys) that must not be baked into an image a
 * whole organisation pulls. Left out by default with a warning naming each; `include` keeps one.
 */
interface SecretFile {
  /** Root-relative glob; `~` stands for every home directory (`root`, `home/*`). */
  glob: string;
  what: string;
  /** Only when the content matches: an `.npmrc` without a token is plain configuration. */
  holds?: RegExp;
}

const SECRET_FILES: SecretFile[] = [
  { glob: '~/.docker/config.json', what: 'Docker registry credentials' },
  { glob: '~/.git-credentials', what: 'Git credentials' },
  { glob: '~/.netrc', what: 'netrc credentials' },
  { glob: '~/.npmrc', what: 'npm auth token', holds: /_auth(Token)?\s*=|_password\s*=/ },
  { glob: '~/.yarnrc.yml', what: 'Yarn auth token', holds: /npmAuth(Token|Ident)\s*:/ },
  { glob: '~/.pypirc', what: 'PyPI credentials', holds: /password\s*[=:]/ },
  { glob: '~/.cargo/credentials{,.toml}', what: 'Cargo registry token' },
  { glob: '~/.gem/credentials', what: 'RubyGems API key' },
  { glob: '~/.config/gh/hosts.yml', what: 'GitHub CLI token' },
  { glob: '~/.aws/credentials', what: 'AWS credentials' },
  { glob: '~/.config/gcloud', what: 'Google Cloud credentials' },
  { glob: '~/.azure', what: 'Azure credentials' },
  { glob: '~/.kube/config', what: 'Kubernetes credentials' },
  { glob: '~/.vault-token', what: 'Vault token' },
  { glob: '~/.ssh/id_*', what: 'SSH private key' },
  { glob: 'etc/ssh/ssh_host_*', what: 'SSH host key (each machine makes its own)' },
  { glob: '**/.credentials', what: 'Actions runner credentials' },
  { glob: '**/.credentials_rsaparams', what: 'Actions runner credentials' },
  { glob: '**/.runner', what: 'Actions runner registration' },
];

interface CompiledSecretFile extends SecretFile {
  test: (p: string) => boolean;
}

/** Matches paths against the list above; `home` adds the user's home when it is not under /home. */
export class SecretFiles {
  private readonly rules: CompiledSecretFile[];
  /** Last path components worth testing at all: keeps the cost per entry to one Set lookup. */
  private readonly names: Set<string>;
  private readonly prefixes: string[];

  constructor(
    private readonly root: string,
    home?: string,
  ) {
    const homes = ['root', 'home/*'];
    const rel = home && path.relative(root, home);
    if (rel && !rel.startsWith('..') && !path.isAbsolute(rel) && !/^(root|home\/[^/]+)$/.test(rel))
      homes.push(rel);
    this.rules = SECRET_FILES.map((s) => {
      const glob = s.glob.startsWith('~/') ? `{${homes.join(',')}}/${s.glob.slice(2)}` : s.glob;
      const test = picomatch(glob, { dot: true });
      // Public halves of keys are not secret.
      const isPublic = (p: string) => p.endsWith('.pub');
      return { ...s, test: s.glob.includes('id_*') ? (p) => test(p) && !isPublic(p) : test };
    });
    const last = SECRET_FILES.map((s) => s.glob.slice(s.glob.lastIndexOf('/') + 1));
    this.names = new Set(last.filter((n) => !n.includes('*') && !n.includes('{')));
    // The names a brace pattern stands for (`credentials{,.toml}`).
    this.names.add('credentials').add('credentials.toml');
    this.prefixes = last.filter((n) => n.endsWith('*')).map((n) => n.slice(0, -1));
  }

  /** The secret this path holds, if any. `key` is `/`-rooted, a latin1 string of the path's bytes. */
  match(key: string): string | null {
    // The names are ASCII: matched on the bytes, before the (rarely needed) UTF-8 reading is made.
    const name = key.slice(key.lastIndexOf('/') + 1);
    if (!this.names.has(name) && !this.prefixes.some((p) => name.startsWith(p))) return null;
    const rel = latin1KeyToText(key).slice(1);
    for (const rule of this.rules) {
      if (!rule.test(rel)) continue;
      if (rule.holds && !this.contentMatches(key, rule.holds)) continue;
      return rule.what;
    }
    return null;
  }

  private contentMatches(key: string, holds: RegExp): boolean {
    try {
      const abs = Buffer.concat([Buffer.from(this.root.replace(/\/+$/, '')), Buffer.from(key, 'latin1')]);
      return holds.test(readFileSync(abs, 'utf8'));
    } catch {
      return false; // not a readable file: nothing to leak
    }
  }
}

/** The password part of a URL's userinfo in a git config's `url = scheme://user:password@host…`. */
const URL_PASSWORD = /^([ \t]*(?:push)?url[ \t]*=[ \t]*"?[a-z][a-z0-9+.-]*:\/\/[^:@\/\s]*):([^@\/\s]+)@/gim;

/** Lines of a git config that carry a credential: actions/checkout's `extraheader = AUTHORIZATION: …`. */
const AUTH_HEADER_LINE = /^[ \t]*extraheader[ \t]*=[ \t]*"?[ \t]*authorization:.*(\r?\n|$)/gim;

/**
 * A git config without its persisted authorization headers (actions/checkout leaves the job's token in
 * the workspace's `.git/config`) or passwords in remote URLs, and the secrets removed; null when there
 * were none.
 */
export function scrubGitConfig(text: string): { text: string; secrets: string[] } | null {
  const secrets: string[] = [];
  const scrubbed = text
    .replace(AUTH_HEADER_LINE, (line) => {
      const value = /authorization:\s*(?:\S+\s+)?(\S+?)"?\s*$/i.exec(line)?.[1];
      if (value) secrets.push(value);
      return '';
    })
    // A remote cloned with the token in its URL (https://x-access-token:TOKEN@github.com/…).
    .replace(URL_PASSWORD, (_, head: string, password: string) => {
      secrets.push(password);
      return head + '@';
    });
  return scrubbed === text ? null : { text: scrubbed, secrets };
}

/** `.git/config` of a repository or of a submodule (`.git/modules/<name>/config`). */
function isGitConfig(p: Buffer): boolean {
  const s = p.toString('latin1');
  return s === '.git/config' || s.endsWith('/.git/config') || /(^|\/)\.git\/modules\/.+\/config$/.test(s);
}

const CONFIG = Buffer.from('config');

/**
 * Gives every captured git config that holds a persisted authorization header its scrubbed content
 * (the repository and its history stay; the token does not). `onSecret` hears each removed value
 * before anything is logged, so it can be masked.
 */
export async function scrubGitConfigs(
  entries: EntryTable,
  root: string,
  log: Logger,
  onSecret: (secret: string) => void,
): Promise<void> {
  const rootBuf = Buffer.from(root.replace(/\/+$/, ''));
  for (let i = 0; i < entries.length; i++) {
    if (entries.kind(i) !== 'file') continue;
    const name = entries.name(i);
    if (
      name.length < CONFIG.length ||
      name.compare(CONFIG, 0, CONFIG.length, name.length - CONFIG.length) !== 0
    )
      continue;
    const p = entries.path(i);
    if (!isGitConfig(p)) continue;
    const abs = Buffer.concat([rootBuf, Buffer.from('/'), p]);
    // latin1 both ways: every byte of the file comes back as it was, UTF-8 or not.
    const text = await readFile(abs, 'latin1').catch(() => null);
    const scrubbed = text === null ? null : scrubGitConfig(text);
    if (!scrubbed) continue;
    scrubbed.secrets.forEach(onSecret);
    entries.replaceContent(i, Buffer.from(scrubbed.text, 'latin1'));
    log.warn(
      `${show(abs)}: removed the credentials it holds (actions/checkout's authorization header, passwords in remote URLs) from the captured copy`,
    );
  }
}
