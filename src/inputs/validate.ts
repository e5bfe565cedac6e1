import path from 'node:path';
import { accessSync, constants, statSync, type Stats } from 'node:fs';
import picomatch from 'picomatch';
import { parseReference, parseTargets, type Reference, type Target } from '../registry/reference.js';
import { relativePattern } from '../walk/filter.js';
import { InputError } from '../failure.js';
import { parseList } from './parse.js';

// Checks of inputs that name images, paths and globs: each takes the value as given and returns it
// checked (and resolved), or throws an InputError that says what to do, before anything is written.

/** `image` lines: references in one repository, a tag defaulting to latest. */
export function targetsInput(images: string[]): Target[] {
  try {
    return images.length ? parseTargets(images) : [];
  } catch (err) {
    throw new InputError((err as Error).message);
  }
}

/** One image reference, a tag defaulting to latest. */
export function referenceInput(ref: string, name: string): Reference {
  try {
    const r = parseReference(ref);
    if (!r.tag && !r.digest) r.tag = 'latest';
    return r;
  } catch (err) {
    throw new InputError(`${name}: ${(err as Error).message}`);
  }
}

/** A reference kept as written ('' for none), once it is known to parse. */
export function checkedReference(ref: string, name: string): string {
  if (!ref) return '';
  try {
    parseReference(ref);
  } catch (err) {
    throw new InputError(`${name}: ${(err as Error).message}`);
  }
  return ref;
}

/**
 * `exclude`/`include` lines, checked here so that no glob reaches the walk that would fail there or
 * silently match nothing: `/` alone (the whole root), a leading `!` (picomatch would negate it),
 * `.`/`..` components (never in a walked path), and globs picomatch cannot compile.
 */
export function pathPatterns(value: string, name: 'exclude' | 'include'): string[] {
  const patterns = parseList(value);
  for (const p of patterns) {
    const rel = relativePattern(p).replace(/^(\.\/+)+/, '');
    if (rel === '' || rel === '.') {
      throw new InputError(
        name === 'exclude'
          ? `exclude "${p}" would leave out the whole root; name what to leave out below it (e.g. /var/cache)`
          : `include "${p}" would keep everything, credentials and /proc too; name what to keep (e.g. /root/.docker/config.json)`,
      );
    }
    if (rel.split('/').some((c) => c === '..' || c === '.'))
      throw new InputError(
        `${name} "${p}": "." and ".." never match a captured path; write the path without them`,
      );
    checkGlob(rel, name, p);
  }
  return patterns;
}

/** `env-mask` lines: variable names or globs. */
export function globList(value: string, name: string): string[] {
  const patterns = parseList(value);
  for (const p of patterns) checkGlob(p, name, p);
  return patterns;
}

function checkGlob(glob: string, name: string, asWritten: string): void {
  if (picomatch.scan(glob).negated) {
    throw new InputError(
      `${name} "${asWritten}": a leading "!" would match everything else; ${name === 'exclude' ? 'use include to keep paths, or ' : ''}write "\\!" for a name that starts with "!"`,
    );
  }
  try {
    // `debug` makes picomatch throw instead of quietly compiling the glob to match nothing.
    picomatch.makeRe(glob, { dot: true, debug: true });
  } catch {
    throw new InputError(
      `${name} "${asWritten}" is not a valid glob (an unclosed brace or bracket, a range out of order, a trailing backslash, or too long); fix it or escape the character with a backslash`,
    );
  }
}

/** `from: oci:DIR[:TAG]`: an OCI layout that must be there to be read; undefined for any other `from`. */
export function layoutInput(from: string): { dir: string; tag: string } | undefined {
  if (!from.startsWith('oci:')) return undefined;
  const match = /^oci:([^:]+)(?::(.+))?$/.exec(from);
  if (!match) throw new InputError(`from "${from}" must be oci:DIR or oci:DIR:TAG`);
  const dir = path.resolve(match[1]);
  if (!statOf(path.join(dir, 'index.json'), 'from')?.isFile())
    throw new InputError(
      `from ${from}: ${dir} is not an OCI image layout (no index.json); name the output directory of a dry run or a pull`,
    );
  return { dir, tag: match[2] ?? 'latest' };
}

/**
 * `metadata-file`: written at the end, so checked now: not a directory, in a directory that exists
 * (it is not made, like docker buildx's `--metadata-file`) and can be written, not inside the layout
 * that replaces `output` whole.
 */
export function metadataFileInput(value: string, layoutOutput: string): string {
  if (!value) return '';
  const file = path.resolve(value);
  const name = 'metadata-file';
  const st = statOf(file, name);
  if (st?.isDirectory())
    throw new InputError(
      `${name} ${file} is a directory; name a file (e.g. ${path.join(file, 'metadata.json')})`,
    );
  if (st && !st.isFile())
    throw new InputError(`${name} ${file} exists and is not a regular file; choose another path`);
  if (layoutOutput && (file === layoutOutput || file.startsWith(layoutOutput + path.sep)))
    throw new InputError(
      `${name} ${file} is inside output ${layoutOutput}, which is replaced whole; put it elsewhere`,
    );
  const dir = path.dirname(file);
  const parent = statOf(dir, name);
  if (!parent)
    throw new InputError(
      `${name} ${file}: directory ${dir} does not exist; create it first (it is not made for you) or choose another path`,
    );
  if (!parent.isDirectory()) throw new InputError(`${name} ${file}: ${dir} is not a directory`);
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new InputError(
      `${name} ${file}: directory ${dir} cannot be written (${(err as NodeJS.ErrnoException).code}); choose one this step can write to`,
    );
  }
  return file;
}

/** The baseline file: made by the pre step (with its directory), so only what is in the way counts. */
export function baselineInput(file: string): string {
  if (!file) return '';
  const st = statOf(file, 'baseline');
  if (st && !st.isFile())
    throw new InputError(`baseline ${file} exists and is not a regular file; name a file`);
  checkParents(file, 'baseline');
  return file;
}

/** The nearest existing directory above `p` must be a directory (the rest can be made). */
export function checkParents(p: string, name: string): void {
  for (let dir = path.dirname(p); ; dir = path.dirname(dir)) {
    const st = statOf(dir, name);
    if (st?.isDirectory()) return;
    if (st) throw new InputError(`${name} ${p}: ${dir} is not a directory; choose another path`);
    if (dir === path.dirname(dir)) return;
  }
}

/** lstat-free stat (a symlink to a directory is one): undefined when nothing is there. */
function statOf(p: string, name: string): Stats | undefined {
  try {
    return statSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new InputError(`${name} ${p} cannot be checked (${code}); choose another path`);
  }
}

/** Longest `key`: a hash is 64 characters; room for a few joined with a prefix. */
const KEY_LIMIT = 1024;

/**
 * `key`: one line of text, kept as given once trimmed ('' for none). A line break or another control
 * character is refused: an expression that joined several lines is a mistake, and an annotation
 * holding one would not compare as the user reads it.
 */
export function keyInput(value: string): string {
  const key = value.trim();
  if (/[\u0000-\u001f\u007f]/.test(key))
    throw new InputError(
      'key holds a line break or another control character; give one line (e.g. a hash of the files the image is built from)',
    );
  if (key.length > KEY_LIMIT)
    throw new InputError(
      `key is ${key.length} characters long, over ${KEY_LIMIT}; hash what it names instead (e.g. hashFiles)`,
    );
  return key;
}
