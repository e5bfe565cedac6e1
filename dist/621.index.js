export const id = 621;
export const ids = [621];
export const modules = {

/***/ 9621:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

// ESM COMPAT FLAG
__webpack_require__.r(__webpack_exports__);

// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  run: () => (/* binding */ run)
});

// EXTERNAL MODULE: external "node:path"
var external_node_path_ = __webpack_require__(6760);
var external_node_path_default = /*#__PURE__*/__webpack_require__.n(external_node_path_);
// EXTERNAL MODULE: external "node:fs"
var external_node_fs_ = __webpack_require__(3024);
// EXTERNAL MODULE: ./node_modules/picomatch/index.js
var picomatch = __webpack_require__(4006);
var picomatch_default = /*#__PURE__*/__webpack_require__.n(picomatch);
// EXTERNAL MODULE: external "node:fs/promises"
var promises_ = __webpack_require__(1455);
;// CONCATENATED MODULE: ./src/walk/mountinfo.ts

/** Filesystem types whose contents are made up by the kernel or live in memory: never part of an image. */
const VIRTUAL_FS_TYPES = new Set([
    'proc',
    'sysfs',
    'devtmpfs',
    'devpts',
    'tmpfs',
    'cgroup',
    'cgroup2',
    'mqueue',
    'debugfs',
    'tracefs',
    'securityfs',
    'bpf',
    'pstore',
    'configfs',
    'fusectl',
    'hugetlbfs',
    'binfmt_misc',
    'autofs',
    'nsfs',
    'efivarfs',
    'ramfs',
    'rpc_pipefs',
]);
/**
 * Parses /proc/self/mountinfo (proc(5)): field 5 is the mount point, the fields after the lone `-` are
 * the filesystem type, the source and the super options. Mount points escape space, tab, newline and
 * backslash as `\040`, `\011`, `\012`, `\134`.
 */
function parseMountInfo(text) {
    const mounts = [];
    for (const line of text.toString('latin1').split('\n')) {
        if (!line)
            continue;
        const fields = line.split(' ');
        const dash = fields.indexOf('-', 6);
        if (fields.length < 7 || dash < 0)
            continue;
        mounts.push({
            mountPoint: Buffer.from(decodeOctalEscapes(fields[4]), 'latin1'),
            fsType: fields[dash + 1] ?? '',
            superOptions: decodeOctalEscapes(fields[dash + 3] ?? ''),
        });
    }
    return mounts;
}
function decodeOctalEscapes(s) {
    return s.replace(/\\([0-7]{3})/g, (_, oct) => String.fromCharCode(parseInt(oct, 8)));
}
async function readMounts(path = '/proc/self/mountinfo') {
    try {
        return parseMountInfo(await (0,promises_.readFile)(path));
    }
    catch {
        return []; // not Linux, or /proc not mounted: nothing to leave out on that account
    }
}
/** Swap files listed in /proc/swaps (swap partitions are devices, not files in the tree). */
async function readSwapFiles(path = '/proc/swaps') {
    try {
        const lines = (await (0,promises_.readFile)(path)).toString('latin1').split('\n').slice(1);
        return lines
            .map((l) => l.split(/\s+/))
            .filter((f) => f[1] === 'file')
            .map((f) => Buffer.from(decodeOctalEscapes(f[0]), 'latin1'));
    }
    catch {
        return [];
    }
}

;// CONCATENATED MODULE: ./src/util/paths.ts
/** Paths as raw bytes (relative, `/`-separated): names need not be UTF-8. */
/** True when `child` lies below the directory `dir`. */
function isInside(child, dir) {
    return (child.length > dir.length &&
        child[dir.length] === 0x2f &&
        child.compare(dir, 0, dir.length, 0, dir.length) === 0);
}
/**
 * `dir/name`: `name` alone in an empty `dir`, `/name` in `/`. A string name is latin1, one byte per
 * char (as readdir gives it with that encoding).
 */
function joinPath(dir, name) {
    const at = dir.length === 0 ? 0 : dir.length === 1 && dir[0] === 0x2f ? 1 : dir.length + 1;
    const path = Buffer.allocUnsafe(at + name.length);
    dir.copy(path);
    if (at > dir.length)
        path[dir.length] = 0x2f; // '/'
    if (typeof name === 'string')
        path.write(name, at, 'latin1');
    else
        name.copy(path, at);
    return path;
}
/** The parent directory (empty for a top-level entry). */
function parentOf(p) {
    const i = p.lastIndexOf(0x2f);
    return i < 0 ? Buffer.alloc(0) : p.subarray(0, i);
}
/**
 * A path key (a latin1 string of the path's bytes, as the walk keeps them) as text, for globs: the
 * UTF-8 reading of the bytes (invalid bytes become U+FFFD).
 */
function latin1KeyToText(key) {
    return Buffer.from(key, 'latin1').toString('utf8');
}

;// CONCATENATED MODULE: ./src/walk/filter.ts




/** Directories whose contents are volatile in any running system: kept empty. */
const VOLATILE_DIRS = ['/proc', '/sys', '/dev', '/run', '/tmp'];
/** Files a container runtime bind-mounts into a sandbox: they describe the host, not the image. */
const RUNTIME_FILES = ['/etc/hosts', '/etc/hostname', '/etc/resolv.conf'];
class Filter {
    /** Exact paths (as latin1 strings of their bytes, `/`-rooted) with a default rule. */
    exact = new Map();
    excludeMatchers;
    includeTest;
    /** Static directory parts of the include globs: the walk must reach them through excluded parents. */
    includeGlobs;
    secrets;
    constructor(opts) {
        const root = Buffer.from(external_node_path_default().resolve(opts.root));
        const rel = (abs) => relativeKey(root, abs);
        for (const dir of VOLATILE_DIRS)
            this.exact.set(dir, { action: 'empty', reason: 'volatile directory' });
        const mountPoints = new Set();
        for (const m of opts.mounts) {
            const key = rel(m.mountPoint);
            if (key === null || key === '/')
                continue;
            mountPoints.add(key);
            if (VIRTUAL_FS_TYPES.has(m.fsType)) {
                this.exact.set(key, { action: 'empty', reason: `${m.fsType} mount` });
            }
        }
        for (const { path: key, reason } of opts.rewritten ?? [])
            this.exact.set(key, { action: 'drop', reason });
        for (const file of RUNTIME_FILES) {
            if (mountPoints.has(file))
                this.exact.set(file, { action: 'drop', reason: 'bind-mounted by the runtime' });
        }
        for (const swap of opts.swapFiles) {
            const key = rel(swap);
            if (key !== null)
                this.exact.set(key, { action: 'drop', reason: 'swap file' });
        }
        for (const { path: p, reason, warn } of opts.hostPathsToDrop) {
            const key = rel(Buffer.from(external_node_path_default().resolve(p)));
            if (key !== null && key !== '/')
                this.exact.set(key, { action: 'drop', reason, ...(warn ? { warn } : {}) });
        }
        this.secrets = opts.secrets;
        this.excludeMatchers = opts.exclude.map((pattern) => ({
            pattern,
            test: matcher([pattern]),
        }));
        this.includeTest = opts.include.length ? matcher(opts.include) : null;
        this.includeGlobs = opts.include.map((p) => {
            const scan = picomatch_default().scan(relativePattern(p));
            return { base: scan.base ? '/' + scan.base : '/', isGlob: scan.isGlob };
        });
    }
    /** The rule for one entry, `key` being its `/`-rooted path as a latin1 string of its bytes. */
    classify(key) {
        const rule = this.exact.get(key);
        if (rule)
            return rule;
        if (this.excludeMatchers.length) {
            const text = latin1KeyToText(key);
            for (const m of this.excludeMatchers) {
                if (m.test(text))
                    return { action: 'drop', reason: `exclude: ${m.pattern}` };
            }
        }
        const secret = this.secrets?.match(key);
        return secret ? { action: 'drop', reason: `credentials: ${secret}`, warn: true, credential: true } : null;
    }
    included(key) {
        return this.includeTest !== null && this.includeTest(latin1KeyToText(key));
    }
    /**
     * True when some include glob may match below this directory, so it must be walked after all: the
     * directory lies on the way to the glob's fixed part, or inside it when the rest has wildcards.
     */
    leadsToInclude(key) {
        const text = latin1KeyToText(key);
        return this.includeGlobs.some(({ base, isGlob }) => base === text ||
            base.startsWith(text === '/' ? '/' : text + '/') ||
            (isGlob && (base === '/' || text.startsWith(base + '/'))));
    }
}
/** `/`-rooted key of `abs` inside `root`, or null when it lies outside. */
function relativeKey(root, abs) {
    const r = root.toString('latin1').replace(/\/+$/, '');
    const a = abs.toString('latin1');
    if (a === r || (r === '' && a === '/'))
        return '/';
    if (!a.startsWith(r + '/'))
        return null;
    return a.slice(r.length);
}
/** Patterns are relative to the root (`/var/cache` and `var/cache` alike), so `**` also matches at the top. */
function relativePattern(p) {
    return p.trim().replace(/\/+$/, '').replace(/^\/+/, '');
}
/** Matches `/`-rooted paths against root-relative patterns. */
function matcher(patterns) {
    const test = picomatch_default()(patterns.map(relativePattern), { dot: true });
    return (text) => test(text.slice(1));
}

;// CONCATENATED MODULE: ./src/log.ts
const silentLogger = { info() { }, warn() { }, debug() { } };
/**
 * A path fit for one log line: control bytes (a newline in a name could end the line and start a
 * runner command) and bytes that are not UTF-8 are shown as `\xNN`.
 */
function show(p) {
    const bytes = typeof p === 'string' ? Buffer.from(p) : p;
    const text = bytes.toString('utf8');
    const clean = Buffer.from(text).equals(bytes)
        ? text
        : bytes.toString('latin1').replace(/[\x80-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
    return clean.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

;// CONCATENATED MODULE: ./src/walk/secrets.ts






const SECRET_FILES = [
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
/** Matches paths against the list above; `home` adds the user's home when it is not under /home. */
class SecretFiles {
    root;
    rules;
    /** Last path components worth testing at all: keeps the cost per entry to one Set lookup. */
    names;
    prefixes;
    constructor(root, home) {
        this.root = root;
        const homes = ['root', 'home/*'];
        const rel = home && external_node_path_default().relative(root, home);
        if (rel && !rel.startsWith('..') && !external_node_path_default().isAbsolute(rel) && !/^(root|home\/[^/]+)$/.test(rel))
            homes.push(rel);
        this.rules = SECRET_FILES.map((s) => {
            const glob = s.glob.startsWith('~/') ? `{${homes.join(',')}}/${s.glob.slice(2)}` : s.glob;
            const test = picomatch_default()(glob, { dot: true });
            // Public halves of keys are not secret.
            const isPublic = (p) => p.endsWith('.pub');
            return { ...s, test: s.glob.includes('id_*') ? (p) => test(p) && !isPublic(p) : test };
        });
        const last = SECRET_FILES.map((s) => s.glob.slice(s.glob.lastIndexOf('/') + 1));
        this.names = new Set(last.filter((n) => !n.includes('*') && !n.includes('{')));
        // The names a brace pattern stands for (`credentials{,.toml}`).
        this.names.add('credentials').add('credentials.toml');
        this.prefixes = last.filter((n) => n.endsWith('*')).map((n) => n.slice(0, -1));
    }
    /** The secret this path holds, if any. `key` is `/`-rooted, a latin1 string of the path's bytes. */
    match(key) {
        // The names are ASCII: matched on the bytes, before the (rarely needed) UTF-8 reading is made.
        const name = key.slice(key.lastIndexOf('/') + 1);
        if (!this.names.has(name) && !this.prefixes.some((p) => name.startsWith(p)))
            return null;
        const rel = latin1KeyToText(key).slice(1);
        for (const rule of this.rules) {
            if (!rule.test(rel))
                continue;
            if (rule.holds && !this.contentMatches(key, rule.holds))
                continue;
            return rule.what;
        }
        return null;
    }
    contentMatches(key, holds) {
        try {
            const abs = Buffer.concat([Buffer.from(this.root.replace(/\/+$/, '')), Buffer.from(key, 'latin1')]);
            return holds.test((0,external_node_fs_.readFileSync)(abs, 'utf8'));
        }
        catch {
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
function scrubGitConfig(text) {
    const secrets = [];
    const scrubbed = text
        .replace(AUTH_HEADER_LINE, (line) => {
        const value = /authorization:\s*(?:\S+\s+)?(\S+?)"?\s*$/i.exec(line)?.[1];
        if (value)
            secrets.push(value);
        return '';
    })
        // A remote cloned with the token in its URL (https://x-access-token:TOKEN@github.com/…).
        .replace(URL_PASSWORD, (_, head, password) => {
        secrets.push(password);
        return head + '@';
    });
    return scrubbed === text ? null : { text: scrubbed, secrets };
}
/** `.git/config` of a repository or of a submodule (`.git/modules/<name>/config`). */
function isGitConfig(p) {
    const s = p.toString('latin1');
    return s === '.git/config' || s.endsWith('/.git/config') || /(^|\/)\.git\/modules\/.+\/config$/.test(s);
}
const CONFIG = Buffer.from('config');
/**
 * Gives every captured git config that holds a persisted authorization header its scrubbed content
 * (the repository and its history stay; the token does not). `onSecret` hears each removed value
 * before anything is logged, so it can be masked.
 */
async function scrubGitConfigs(entries, root, log, onSecret) {
    const rootBuf = Buffer.from(root.replace(/\/+$/, ''));
    for (let i = 0; i < entries.length; i++) {
        if (entries.kind(i) !== 'file')
            continue;
        const name = entries.name(i);
        if (name.length < CONFIG.length ||
            name.compare(CONFIG, 0, CONFIG.length, name.length - CONFIG.length) !== 0)
            continue;
        const p = entries.path(i);
        if (!isGitConfig(p))
            continue;
        const abs = Buffer.concat([rootBuf, Buffer.from('/'), p]);
        // latin1 both ways: every byte of the file comes back as it was, UTF-8 or not.
        const text = await (0,promises_.readFile)(abs, 'latin1').catch(() => null);
        const scrubbed = text === null ? null : scrubGitConfig(text);
        if (!scrubbed)
            continue;
        scrubbed.secrets.forEach(onSecret);
        entries.replaceContent(i, Buffer.from(scrubbed.text, 'latin1'));
        log.warn(`${show(abs)}: removed the credentials it holds (actions/checkout's authorization header, passwords in remote URLs) from the captured copy`);
    }
}

// EXTERNAL MODULE: external "node:timers/promises"
var external_node_timers_promises_ = __webpack_require__(8500);
;// CONCATENATED MODULE: ./src/walk/entries.ts

const KINDS = ['file', 'dir', 'symlink', 'fifo', 'char', 'block', 'whiteout'];
const KIND_CODE = new Map(KINDS.map((k, i) => [k, i]));
/** Entries per chunk of columns: columns grow a chunk at a time, never copied to a larger array. */
const CHUNK_BITS = 16;
const CHUNK = 1 << CHUNK_BITS;
const SLOT = CHUNK - 1;
/** Names and link targets are packed into slabs this big. */
const SLAB = 1024 * 1024;
/** The parent of an entry kept by its whole path. */
const NO_PARENT = -1;
class Chunk {
    kind = new Uint8Array(CHUNK);
    mode = new Uint16Array(CHUNK);
    uid = new Uint32Array(CHUNK);
    gid = new Uint32Array(CHUNK);
    size = new Float64Array(CHUNK);
    mtimeSec = new Float64Array(CHUNK);
    mtimeNsec = new Uint32Array(CHUNK);
    /** The directory entry this one is named in, or NO_PARENT when the name is the whole path. */
    parent = new Int32Array(CHUNK);
    nameSlab = new Uint32Array(CHUNK);
    nameStart = new Uint32Array(CHUNK);
    /** Of the whole path. */
    pathLength = new Uint32Array(CHUNK);
    identity;
    constructor(identity) {
        this.identity = identity
            ? { ctimeSec: new Float64Array(CHUNK), ctimeNsec: new Uint32Array(CHUNK), ino: new Float64Array(CHUNK) }
            : null;
    }
}
/**
 * A list of entries stored by column: numbers in typed arrays, names packed into shared slabs, the
 * rare fields (link targets, xattrs, devices, hardlink groups) in a side map. A root filesystem has
 * millions of entries; as objects each cost about 400 bytes (the object, a Buffer view for its path,
 * the path's bytes), here about 47 plus the entry's own name. A path is its parent's path and a name,
 * as the walk found it, so the directories' names are not stored again for each of their entries
 * (on a rootfs, names average 16 bytes and paths 83). `get` and `path` build an entry on demand.
 *
 * ctime and inode (20 bytes an entry) are kept only when `keepsIdentity`: a baseline compares them, a
 * capture never reads them. The allocated size is not kept: the walk has used it by then.
 */
class EntryTable {
    keepsIdentity;
    length = 0;
    /** Sum of every entry's size, kept as entries come and change. */
    totalSize = 0;
    chunks = [];
    slabs = [];
    slabUsed = SLAB;
    extras = new Map();
    /** The directory paths last built, outermost first: entries are mostly read in walk order. */
    dirIndices = [];
    dirPaths = [];
    constructor(keepsIdentity = false) {
        this.keepsIdentity = keepsIdentity;
    }
    static from(entries, keepsIdentity = false) {
        const table = new EntryTable(keepsIdentity);
        for (const e of entries)
            table.push(e);
        return table;
    }
    /** `bytes` copied into the table's slabs (a link target kept as long as the table). */
    keep(bytes) {
        const { slab, start } = this.reserve(bytes.length);
        bytes.copy(slab, start);
        return slab.subarray(start, start + bytes.length);
    }
    /**
     * Adds an entry. `parent`, the index of the directory entry whose path `e.path` extends by one name,
     * lets the table keep just that name; without it the whole path is kept.
     */
    push(e, parent = NO_PARENT) {
        let name = e.path;
        if (parent !== NO_PARENT) {
            const at = this.pathLengthOf(parent);
            if (e.path.length > at + 1 && e.path[at] === 0x2f)
                name = e.path.subarray(at + 1);
            else
                throw new Error(`internal: ${e.path.toString('latin1')} is not named in entry ${parent}`);
        }
        const i = this.length++;
        const slot = i & SLOT;
        if (slot === 0)
            this.chunks.push(new Chunk(this.keepsIdentity));
        const c = this.chunks[i >>> CHUNK_BITS];
        c.kind[slot] = KIND_CODE.get(e.kind);
        c.mode[slot] = e.mode;
        c.uid[slot] = e.uid;
        c.gid[slot] = e.gid;
        c.size[slot] = e.size;
        this.totalSize += e.size;
        c.mtimeSec[slot] = e.mtimeSec;
        c.mtimeNsec[slot] = e.mtimeNsec;
        if (c.identity) {
            c.identity.ctimeSec[slot] = e.ctimeSec;
            c.identity.ctimeNsec[slot] = e.ctimeNsec;
            c.identity.ino[slot] = e.ino;
        }
        const { slab, start } = this.reserve(name.length);
        name.copy(slab, start);
        c.parent[slot] = parent;
        c.nameSlab[slot] = this.slabs.length - 1;
        c.nameStart[slot] = start;
        c.pathLength[slot] = e.path.length;
        if (e.linkGroup !== undefined ||
            e.linkTarget !== undefined ||
            e.devMajor !== undefined ||
            e.xattrs !== undefined ||
            e.content !== undefined) {
            const extra = {};
            if (e.linkGroup !== undefined)
                extra.linkGroup = e.linkGroup;
            if (e.linkTarget !== undefined)
                extra.linkTarget = e.linkTarget;
            if (e.devMajor !== undefined)
                [extra.devMajor, extra.devMinor] = [e.devMajor, e.devMinor];
            if (e.xattrs !== undefined)
                extra.xattrs = e.xattrs;
            if (e.content !== undefined)
                extra.content = e.content;
            this.extras.set(i, extra);
        }
    }
    /** A fresh `Entry` for index `i` (changing it does not change the table: see `replaceContent`). */
    get(i) {
        const c = this.chunks[i >>> CHUNK_BITS];
        const slot = i & SLOT;
        const e = {
            path: this.path(i),
            kind: KINDS[c.kind[slot]],
            mode: c.mode[slot],
            uid: c.uid[slot],
            gid: c.gid[slot],
            size: c.size[slot],
            mtimeSec: c.mtimeSec[slot],
            mtimeNsec: c.mtimeNsec[slot],
            ctimeSec: c.identity ? c.identity.ctimeSec[slot] : 0,
            ctimeNsec: c.identity ? c.identity.ctimeNsec[slot] : 0,
            ino: c.identity ? c.identity.ino[slot] : 0,
        };
        const extra = this.extras.get(i);
        return extra ? Object.assign(e, extra) : e;
    }
    /** Entry `i`'s path: a view into a slab for a whole path, else a new Buffer. */
    path(i) {
        const parent = this.chunks[i >>> CHUNK_BITS].parent[i & SLOT];
        const name = this.name(i);
        return parent === NO_PARENT ? name : joinPath(this.dirPath(parent), name);
    }
    /**
     * The bytes the path ends with, without a copy: the entry's own name, or its whole path when it
     * was pushed without a parent.
     */
    name(i) {
        const c = this.chunks[i >>> CHUNK_BITS];
        const slot = i & SLOT;
        const start = c.nameStart[slot];
        const parent = c.parent[slot];
        const length = c.pathLength[slot] - (parent === NO_PARENT ? 0 : this.pathLengthOf(parent) + 1);
        return this.slabs[c.nameSlab[slot]].subarray(start, start + length);
    }
    /** The path of the directory entry `i` is in (empty at the top): from the chain, mostly no copy. */
    dirOf(i) {
        const parent = this.chunks[i >>> CHUNK_BITS].parent[i & SLOT];
        return parent === NO_PARENT ? parentOf(this.name(i)) : this.dirPath(parent);
    }
    mtimeSec(i) {
        return this.chunks[i >>> CHUNK_BITS].mtimeSec[i & SLOT];
    }
    mtimeNsec(i) {
        return this.chunks[i >>> CHUNK_BITS].mtimeNsec[i & SLOT];
    }
    kind(i) {
        return KINDS[this.chunks[i >>> CHUNK_BITS].kind[i & SLOT]];
    }
    size(i) {
        return this.chunks[i >>> CHUNK_BITS].size[i & SLOT];
    }
    linkGroup(i) {
        return this.extras.get(i)?.linkGroup;
    }
    /** Sum of file sizes (content bytes) of all entries, or of those at `indices`. */
    contentBytes(indices) {
        if (!indices)
            return this.totalSize;
        let n = 0;
        for (const i of indices)
            n += this.size(i);
        return n;
    }
    /**
     * Entry `i` is written with `content` instead of the file's bytes (a scrubbed git config): its size
     * becomes theirs, and it is no longer the same file as any hardlink to it.
     */
    replaceContent(i, content) {
        this.totalSize += content.length - this.size(i);
        this.chunks[i >>> CHUNK_BITS].size[i & SLOT] = content.length;
        const extra = { ...this.extras.get(i), content };
        delete extra.linkGroup;
        this.extras.set(i, extra);
    }
    /** A copy without the entries at `drop`, none of which may be the parent of an entry that stays. */
    without(drop) {
        const out = new EntryTable(this.keepsIdentity);
        const newIndex = new Int32Array(this.length);
        for (let i = 0; i < this.length; i++) {
            newIndex[i] = out.length;
            if (drop.has(i))
                continue;
            const parent = this.chunks[i >>> CHUNK_BITS].parent[i & SLOT];
            if (parent !== NO_PARENT && drop.has(parent))
                throw new Error('internal: a parent left out alone');
            const e = this.get(i);
            // Into the copy's own slabs: a view into this table's would keep all of them alive.
            if (e.linkTarget)
                e.linkTarget = out.keep(e.linkTarget);
            out.push(e, parent === NO_PARENT ? NO_PARENT : newIndex[parent]);
        }
        return out;
    }
    setXattrs(i, xattrs) {
        this.extras.set(i, { ...this.extras.get(i), xattrs });
    }
    *[Symbol.iterator]() {
        for (let i = 0; i < this.length; i++)
            yield this.get(i);
    }
    pathLengthOf(i) {
        return this.chunks[i >>> CHUNK_BITS].pathLength[i & SLOT];
    }
    /**
     * A directory's path, from the chain of those last built: reading entries in walk order, the
     * parent is nearly always there, so each directory's path is built once per visit, not per entry.
     */
    dirPath(d) {
        const indices = this.dirIndices;
        const top = indices.length - 1;
        if (top >= 0 && indices[top] === d)
            return this.dirPaths[top];
        for (let k = top - 1; k >= 0; k--) {
            if (indices[k] !== d)
                continue;
            // Deeper ones were left behind (walk order: their subtrees are done).
            indices.length = this.dirPaths.length = k + 1;
            return this.dirPaths[k];
        }
        const path = this.path(d); // leaves d's parent, if any, on top of the chain
        const parent = this.chunks[d >>> CHUNK_BITS].parent[d & SLOT];
        const keep = parent === NO_PARENT ? 0 : indices.lastIndexOf(parent) + 1;
        indices.length = this.dirPaths.length = keep;
        indices.push(d);
        this.dirPaths.push(path);
        return path;
    }
    reserve(length) {
        if (this.slabUsed + length > SLAB) {
            // Slabs own their memory (allocUnsafeSlow), so a path's byteOffset is its offset in the slab.
            this.slabs.push(Buffer.allocUnsafeSlow(Math.max(SLAB, length)));
            this.slabUsed = 0;
        }
        const start = this.slabUsed;
        this.slabUsed += length;
        return { slab: this.slabs[this.slabs.length - 1], start };
    }
}

// EXTERNAL MODULE: external "node:buffer"
var external_node_buffer_ = __webpack_require__(4573);
// EXTERNAL MODULE: external "node:child_process"
var external_node_child_process_ = __webpack_require__(1421);
// EXTERNAL MODULE: external "node:worker_threads"
var external_node_worker_threads_ = __webpack_require__(5919);
// EXTERNAL MODULE: external "node:module"
var external_node_module_ = __webpack_require__(8995);
;// CONCATENATED MODULE: ./src/util/native.ts

/**
 * Loads a native addon the bundle ships in dist/native/: `./native/` from dist/index.js, `../native/`
 * from dist/pre/index.js (resolved against the running file, so it works wherever dist/ is). `fromSource`
 * names where it is found when running from the repository instead (an npm package, or the build's
 * output). Returns null when none loads: the caller falls back or says what is missing.
 */
function loadNative(file, fromSource) {
    const require = (0,external_node_module_.createRequire)(import.meta.url);
    for (const candidate of [`./native/${file}`, `../native/${file}`, fromSource]) {
        try {
            const resolved = require.resolve(candidate);
            return { binding: require(resolved), file: resolved };
        }
        catch {
            // try the next one
        }
    }
    return null;
}

;// CONCATENATED MODULE: ./src/walk/xattrs.ts





/**
 * Labels that belong to the host's security policy, not to the image: a runtime relabels on start.
 */
const SKIPPED = new Set(['security.selinux']);
/** Errors that mean "this filesystem or inode has no xattrs to give": not a reason to fail. */
const TOLERATED_ERRNO = new Set([95 /* EOPNOTSUPP */, 61 /* ENODATA */, 1 /* EPERM */, 13 /* EACCES */]);
/** The path is gone, or a directory on it was replaced by a file since it was listed. */
const VANISHED_ERRNO = new Set([2 /* ENOENT */, 20 /* ENOTDIR */]);
class VanishedError extends Error {
}
/**
 * The binding returns names as JS strings and refuses a name that is not UTF-8 ("Invalid attribute"):
 * such a path is read again with getfattr, which gives the raw bytes.
 */
const NOT_UTF8_NAME = /Invalid attribute/;
class NotUtf8NameError extends Error {
}
/**
 * The native xattr binding (@napi-rs/xattr, Rust's `xattr` crate: llistxattr/lgetxattr, so symlinks
 * are never followed). The bundle carries the glibc builds for x64 and arm64 runners in dist/native/,
 * shared by both entry points; from source, the npm package resolves its own. Loaded by hand because
 * the package's loader cannot find its `.node` file once bundled. scripts/build.sh runs both entry
 * points from a copy of dist/ to check they find it.
 */
function loadBinding() {
    return loadNative(`xattr.linux-${process.arch}-gnu.node`, '@napi-rs/xattr');
}
let loaded;
function getBinding(log) {
    if (loaded === undefined) {
        loaded = loadBinding();
        if (!loaded)
            log.warn(`no xattr support for ${process.platform}-${process.arch} in this build: extended attributes (file capabilities too) are not captured`);
    }
    return loaded;
}
/**
 * Reads every extended attribute of `path` without following a symlink (the native binding uses
 * llistxattr/lgetxattr). Returns undefined when there are none.
 *
 * Node has no xattr API and the binding takes paths as strings; a path that is not valid UTF-8 cannot
 * be passed through it, so those few are read by `getfattr`, its path fed as raw bytes on stdin.
 */
function readXattrs(path, log) {
    if (!(0,external_node_buffer_.isUtf8)(path))
        return tidy(readXattrsWithGetfattr(path), path, log);
    const binding = getBinding(log)?.binding;
    return binding && readUtf8Xattrs(binding, path, log);
}
/**
 * The xattrs of a path the binding can take (valid UTF-8), tidied; failures as `tolerate` says. A
 * name the binding cannot return (not UTF-8) sends the whole path to getfattr.
 */
function readUtf8Xattrs(binding, path, log) {
    let found;
    try {
        found = listAndGet(binding, path.toString('utf8'), tolerate);
    }
    catch (err) {
        if (!(err instanceof NotUtf8NameError))
            throw err;
        found = readXattrsWithGetfattr(path) ?? [];
    }
    return tidy(found, path, log);
}
/**
 * Every name (as a latin1 string of its bytes) and value of `path`'s xattrs; `onError` decides about a
 * failed call (throw, or skip). Runs on the worker too, from its source text: self-contained.
 */
function listAndGet(binding, path, onError) {
    let names;
    try {
        names = binding.listAttributesSync(path);
    }
    catch (err) {
        onError(err);
        return [];
    }
    const out = [];
    for (const name of names) {
        let value;
        try {
            value = binding.getAttributeSync(path, name);
        }
        catch (err) {
            onError(err);
            continue; // removed between list and get
        }
        if (value)
            out.push([Buffer.from(name, 'utf8').toString('latin1'), Buffer.from(value)]);
    }
    return out;
}
/**
 * What an image can carry, sorted by name (the fingerprint and the tar must not depend on the kernel's
 * order). Host-only labels are dropped. So is a name holding `=`, with a warning: a PAX record is
 * `key=value` and every reader (Go's archive/tar: umoci, containerd, docker) splits at the first `=`,
 * so `user.a=b` = `v` would come back as `user.a` = `b=v`. Names that are not UTF-8 are carried: Go
 * reads and sets their bytes verbatim. Every mode reads xattrs through here, so the tar, the layer
 * fingerprint and the baseline's xattr digest all see the same list.
 */
function tidy(xattrs, path, log) {
    const out = (xattrs ?? []).filter(([name]) => {
        if (SKIPPED.has(name))
            return false;
        if (!name.includes('='))
            return true;
        log.warn(`${show(path)}: extended attribute ${showName(name)} left out: its name holds "=", which a tar (PAX) record cannot carry`);
        return false;
    });
    out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return out.length ? out : undefined;
}
/** An xattr name (latin1 string of its bytes) fit for a log line. */
function showName(name) {
    return `"${show(Buffer.from(name, 'latin1'))}"`;
}
/** Paths per message to the xattr worker; a walk smaller than one batch reads them itself. */
const BATCH = 2048;
/**
 * Reads the xattrs of a walk's entries on a worker thread, in batches, while the walk goes on: on the
 * walk's own thread, two llistxattr calls per entry (the binding asks for the size first) were a
 * quarter of a no-change re-snapshot. Results are keyed by entry index. An entry that vanished before
 * its xattrs were read gets none: the writer notices it is gone when it reads it.
 */
class XattrReader {
    log;
    paths = [];
    indices = [];
    worker = null;
    waiting = new Map();
    sent = [];
    failure = null;
    found = new Map();
    constructor(log) {
        this.log = log;
    }
    add(index, path) {
        if (!(0,external_node_buffer_.isUtf8)(path)) {
            this.keep(index, path, () => readXattrsWithGetfattr(path));
            return;
        }
        this.indices.push(index);
        this.paths.push(path);
        if (this.paths.length >= BATCH)
            this.send();
    }
    /** Every entry's xattrs (only those that have any), once all batches are back. */
    async finish() {
        try {
            const loadedBinding = getBinding(this.log);
            if (loadedBinding && this.paths.length && !this.worker) {
                // A small walk: not worth a thread.
                this.paths.forEach((p, k) => {
                    const xattrs = ignoreVanished(() => readUtf8Xattrs(loadedBinding.binding, p, this.log));
                    if (xattrs)
                        this.found.set(this.indices[k], xattrs);
                });
            }
            else if (this.paths.length)
                this.send();
            await Promise.all(this.sent);
            if (this.failure)
                throw this.failure;
            return this.found;
        }
        finally {
            await this.worker?.terminate();
        }
    }
    /** Keeps what `read` finds for entry `index`, as an image can carry it. */
    keep(index, path, read) {
        const xattrs = tidy(ignoreVanished(() => read()), path, this.log);
        if (xattrs)
            this.found.set(index, xattrs);
    }
    send() {
        const paths = this.paths;
        const indices = this.indices;
        this.paths = [];
        this.indices = [];
        const worker = this.worker ?? this.start();
        if (!worker)
            return;
        const id = this.sent.length;
        const reply = new Promise((resolve, reject) => this.waiting.set(id, { indices, paths, resolve, reject }));
        reply.catch(() => { }); // heard in finish(); a walk that failed before it must not crash on it
        this.sent.push(reply);
        worker.postMessage({ id, paths: paths.map((p) => p.toString('utf8')) });
    }
    start() {
        const file = getBinding(this.log)?.file;
        if (!file)
            return null;
        // The worker runs listAndGet itself (its compiled source): one definition of how xattrs are read.
        // A path with a name the binding cannot return comes back in `notUtf8`, for getfattr.
        const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const binding = require(workerData.file);
      const listAndGet = ${listAndGet.toString()};
      parentPort.on('message', ({ id, paths }) => {
        const found = [];
        const failures = [];
        const notUtf8 = [];
        paths.forEach((path, k) => {
          let failed = false;
          const xattrs = listAndGet(binding, path, (err) => {
            const message = String(err && err.message);
            if (new RegExp(workerData.notUtf8).test(message)) {
              if (!failed) notUtf8.push(k);
              failed = true;
              return;
            }
            const errno = Number(/os error (\\d+)/.exec(message)?.[1]);
            if (!workerData.ignored.includes(errno)) failures.push(path + ': ' + message);
          });
          if (xattrs.length && !failed) found.push([k, xattrs]);
        });
        parentPort.postMessage({ id, found, failures, notUtf8 });
      });`;
        const worker = new external_node_worker_threads_.Worker(code, {
            eval: true,
            workerData: {
                file,
                ignored: [...TOLERATED_ERRNO, ...VANISHED_ERRNO],
                notUtf8: NOT_UTF8_NAME.source,
            },
        });
        // Never what keeps the process alive: a failed walk ends without waiting on it.
        worker.unref();
        worker.on('message', (m) => {
            const job = this.waiting.get(m.id);
            this.waiting.delete(m.id);
            try {
                for (const [k, xattrs] of m.found) {
                    const read = xattrs.map(([n, v]) => [
                        n,
                        Buffer.from(v.buffer, v.byteOffset, v.byteLength),
                    ]);
                    this.keep(job.indices[k], job.paths[k], () => read);
                }
                for (const k of m.notUtf8)
                    this.keep(job.indices[k], job.paths[k], () => readXattrsWithGetfattr(job.paths[k]));
            }
            catch (err) {
                this.failure ??= err;
            }
            if (m.failures.length)
                this.failure ??= new Error(`cannot read extended attributes: ${m.failures[0]}`);
            job.resolve();
        });
        worker.on('error', (err) => {
            for (const job of this.waiting.values())
                job.reject(err);
            this.waiting.clear();
        });
        this.worker = worker;
        return worker;
    }
}
function ignoreVanished(read) {
    try {
        return read();
    }
    catch (err) {
        if (err instanceof VanishedError)
            return undefined;
        throw err;
    }
}
function tolerate(err) {
    if (NOT_UTF8_NAME.test(String(err?.message)))
        throw new NotUtf8NameError(String(err));
    const errno = Number(/os error (\d+)/.exec(String(err?.message))?.[1]);
    if (VANISHED_ERRNO.has(errno))
        throw new VanishedError(String(err));
    if (TOLERATED_ERRNO.has(errno))
        return undefined;
    throw err;
}
function readXattrsWithGetfattr(path) {
    const res = (0,external_node_child_process_.spawnSync)('xargs', ['-0', 'getfattr', '-h', '-d', '-m', '-', '-e', 'base64', '--absolute-names', '--'], {
        input: Buffer.concat([path, Buffer.from([0])]),
        encoding: 'latin1',
    });
    if (res.error || (res.status !== 0 && !res.stdout)) {
        const why = res.stderr ?? '';
        if (/No such file|Not a directory/.test(why))
            throw new VanishedError(why);
        if (/Operation not supported/.test(why))
            return undefined;
        throw new Error(`cannot read the extended attributes of ${show(path)} (non-UTF-8 paths and names are read with getfattr, package "attr"): ${why.trim() || res.error?.message}`);
    }
    // getfattr prints a name's bytes as they are, except backslash, `=`, newline and CR, written as
    // `\ooo` (octal): unescaped, the name is a latin1 string of its bytes again.
    const out = [];
    for (const line of res.stdout.split('\n')) {
        const m = /^([^#=][^=]*)=(?:0s(.*))?$/.exec(line);
        if (!m)
            continue;
        const name = m[1].replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
        out.push([name, Buffer.from(m[2] ?? '', 'base64')]);
    }
    return out.length ? out : undefined;
}

// EXTERNAL MODULE: ./src/failure.ts
var failure = __webpack_require__(1633);
// EXTERNAL MODULE: external "node:os"
var external_node_os_ = __webpack_require__(8161);
var external_node_os_default = /*#__PURE__*/__webpack_require__.n(external_node_os_);
;// CONCATENATED MODULE: ./src/walk/directory.ts




// The fields of one entry in the scanner's array, in native/scan.c's order.
const [MODE, UID, GID, NLINK, SIZE, BLOCKS, MTIME_SEC, MTIME_NSEC, CTIME_SEC, CTIME_NSEC] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
];
const [INO_HI, INO_LO, DEV_HI, DEV_LO, RDEV_MAJOR, RDEV_MINOR, ERRNO, NAME_AT, NAME_LEN] = [
    10, 11, 12, 13, 14, 15, 16, 17, 18,
];
const [TARGET_AT, TARGET_LEN, FIELDS] = [19, 20, 21];
let scanner;
/**
 * The native scanner (native/scan.c, built for x64 and arm64 into dist/native/), unless it cannot load
 * here (another platform, a kernel without statx) or SNAPSHOT_ACTION_JS_WALK is set: then the walk
 * lists and lstats from JavaScript, with the same results, at 20-30 % more CPU on a no-change re-snapshot.
 */
function nativeScanner() {
    if (scanner === undefined) {
        const loaded = process.env.SNAPSHOT_ACTION_JS_WALK
            ? null
            : loadNative(`scan.linux-${process.arch}.node`, `../../dist/native/scan.linux-${process.arch}.node`);
        scanner = loaded && works(loaded.binding) ? loaded.binding : null;
    }
    return scanner;
}
/** statx is missing before Linux 4.11, and refused (EPERM) by the seccomp profile of Docker before 18.04. */
function works(native) {
    const result = native.scan(Buffer.from('/'));
    if (typeof result === 'number')
        return false;
    const f = result[1];
    for (let at = 0; at < f.length; at += FIELDS)
        if (f[at + ERRNO] === ENOSYS || f[at + ERRNO] === EPERM)
            return false;
    return true;
}
const { ENOSYS, EPERM } = external_node_os_.constants.errno;
/** Whether directories are listed by the native scanner (for the log). */
function scannerKind() {
    return nativeScanner() ? 'native' : 'javascript';
}
/**
 * Lists the directory at `abs` without following a symlink, throwing like readdirSync (ENOENT,
 * ENOTDIR, EACCES…) when it cannot be listed.
 */
function readDirectory(abs) {
    const native = nativeScanner();
    if (!native)
        return readDirectoryInJs(abs);
    const result = native.scan(abs);
    if (typeof result === 'number')
        throw errnoError(result, 'scandir', abs);
    const [bytes, f, targets] = result;
    const names = [];
    for (let at = 0; at < f.length; at += FIELDS)
        names.push(bytes.toString('latin1', f[at + NAME_AT], f[at + NAME_AT] + f[at + NAME_LEN]));
    return {
        names,
        stat(i) {
            const at = i * FIELDS;
            if (f[at + ERRNO])
                throw errnoError(f[at + ERRNO], 'lstat', joinPath(abs, names[i]));
            const inoHi = f[at + INO_HI];
            const inoLo = f[at + INO_LO];
            const stat = {
                mode: f[at + MODE],
                uid: f[at + UID],
                gid: f[at + GID],
                nlink: f[at + NLINK],
                size: f[at + SIZE],
                blocks: f[at + BLOCKS],
                mtimeSec: f[at + MTIME_SEC],
                mtimeNsec: f[at + MTIME_NSEC],
                ctimeSec: f[at + CTIME_SEC],
                ctimeNsec: f[at + CTIME_NSEC],
                ino: inoHi * 2 ** 32 + inoLo,
                rdevMajor: f[at + RDEV_MAJOR],
                rdevMinor: f[at + RDEV_MINOR],
            };
            if (hasOtherNames(stat))
                stat.fileId = `${u64(f[at + DEV_HI], f[at + DEV_LO])}:${u64(inoHi, inoLo)}`;
            if (f[at + TARGET_LEN] >= 0)
                stat.linkTarget = targets.subarray(f[at + TARGET_AT], f[at + TARGET_AT] + f[at + TARGET_LEN]);
            return stat;
        },
    };
}
function hasOtherNames(st) {
    return st.nlink > 1 && typeOf(st) !== external_node_fs_.constants.S_IFDIR;
}
/** A 64-bit number given as two 32-bit halves, in decimal: exact beyond 2^53 too. */
function u64(hi, lo) {
    return hi < 2 ** 21 ? String(hi * 2 ** 32 + lo) : ((BigInt(hi) << 32n) | BigInt(lo)).toString();
}
const ERRNO_NAMES = new Map(Object.entries(external_node_os_.constants.errno).map(([name, n]) => [n, name]));
/** An error as Node's fs would throw it for `errno`. */
function errnoError(errno, syscall, path) {
    const code = ERRNO_NAMES.get(errno) ?? `E${errno}`;
    const err = new Error(`${code}: ${syscall} '${path.toString()}'`);
    Object.assign(err, { code, errno: -errno, syscall, path: path.toString() });
    return err;
}
/** The JavaScript listing: readdir, then one lstat by whole path per entry the walk asks about. */
function readDirectoryInJs(abs) {
    const names = (0,external_node_fs_.readdirSync)(abs, { encoding: 'latin1' }).sort();
    return { names, stat: (i) => lstatOf(joinPath(abs, names[i])) };
}
/** The lstat of one path (and its target, for a symlink), throwing like lstatSync. */
function lstatOf(abs) {
    const st = (0,external_node_fs_.lstatSync)(abs, { bigint: true });
    const mtime = splitNs(st.mtimeNs);
    const ctime = splitNs(st.ctimeNs);
    const rdev = st.rdev;
    const stat = {
        mode: Number(st.mode),
        uid: Number(st.uid),
        gid: Number(st.gid),
        nlink: Number(st.nlink),
        size: Number(st.size),
        blocks: Number(st.blocks),
        mtimeSec: mtime.sec,
        mtimeNsec: mtime.nsec,
        ctimeSec: ctime.sec,
        ctimeNsec: ctime.nsec,
        ino: Number(st.ino),
        // glibc's gnu_dev_major/minor: the 64-bit dev_t splits major and minor across high and low bits.
        rdevMajor: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
        rdevMinor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)),
        ...(st.isSymbolicLink() ? { linkTarget: (0,external_node_fs_.readlinkSync)(abs, { encoding: 'buffer' }) } : {}),
    };
    if (hasOtherNames(stat))
        stat.fileId = `${st.dev}:${st.ino}`;
    return stat;
}
/** Splits nanoseconds since the epoch into whole seconds (floored) and the nanoseconds past them. */
function splitNs(ns) {
    let sec = ns / 1000000000n;
    let nsec = ns % 1000000000n;
    if (nsec < 0n) {
        sec -= 1n;
        nsec += 1000000000n;
    }
    return { sec: Number(sec), nsec: Number(nsec) };
}
/** An entry's file type: one of fs.constants' S_IF* values. */
const typeOf = (st) => st.mode & external_node_fs_.constants.S_IFMT;
const { S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK } = external_node_fs_.constants;

;// CONCATENATED MODULE: ./src/walk/walk.ts








const WHITEOUT_PREFIX = '.wh.';
class WhiteoutNameError extends failure/* UserError */.yo {
}
/** Entries between two yields to the event loop (timers, progress lines) during the walk. */
const YIELD_EVERY = 4096;
/**
 * Walks `root` depth-first, never following a symlink, reading names as bytes so non-UTF-8 names
 * survive. The filter decides what is left out; `include` globs can reach below an excluded directory,
 * in which case only the included paths and their parents are kept there.
 *
 * The calls are synchronous, like find's: a metadata walk is bound by per-call overhead, and a
 * promise plus a thread-pool hop cost ten times the lstat itself (8.6 s against 0.35 s for find on
 * 79k entries). It yields to the event loop every few thousand entries so timers still run.
 */
async function walk_walk(opts) {
    const entries = new EntryTable(opts.keepIdentity);
    const rootBuf = Buffer.from(opts.root.replace(/\/+$/, '') || '/');
    const excluded = [];
    const sockets = [];
    const unreadable = [];
    const mayRead = readPermission();
    const { filter, log } = opts;
    const xattrs = new XattrReader(log);
    const credentials = new CredentialInodes();
    // Each entry's absolute path is made once; its root-relative path is the tail of it.
    const relStart = rootBuf.length === 1 ? 1 : rootBuf.length + 1;
    const stack = [];
    /**
     * Lists a directory and puts it on the stack (or warns and leaves it empty). Names are latin1
     * strings, one char per byte: any byte sequence survives, sorting them compares bytes, and the
     * filter's key is a string concatenation, not a conversion per entry.
     */
    function openDir(abs, key, mode, index) {
        const isRoot = index === NO_PARENT;
        let listing;
        try {
            // The root may be given through a symlink (`--root /mnt/rootfs` linking elsewhere); nothing
            // below it is followed.
            listing = readDirectory(isRoot ? Buffer.from((0,external_node_fs_.realpathSync)(abs)) : abs);
        }
        catch (err) {
            const code = err.code;
            if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') {
                // Removed, or replaced by a file, between its lstat and this listing.
                if (!isRoot)
                    log.warn(`${show(abs)} changed while it was walked; captured as an empty directory`);
                return;
            }
            if (isRoot)
                throw err;
            if (code === 'EACCES' || code === 'EPERM')
                unreadable.push(abs.subarray(relStart));
            // Not root: the caller stops (or runs again under sudo) over `unreadable`, which says it better.
            if (mayRead === READS_ALL)
                log.warn(`cannot list ${show(abs)}: ${code ?? err}; captured as an empty directory`);
            return;
        }
        stack.push({ abs, key: key === '/' ? '' : key, mode, index, listing, next: 0 });
    }
    /**
     * Adds entry `i` of the directory `dir`; a directory to walk next is opened onto the stack, so
     * parents come before their contents. Synchronous, and no closure or promise per entry: at a
     * million entries those were much of the garbage collector's work.
     */
    function visitEntry(dir, i) {
        if (opts.counters)
            opts.counters.entries++;
        const name = dir.listing.names[i];
        const key = dir.key + '/' + name;
        const { mode } = dir;
        const included = filter.included(key);
        const rule = included ? null : filter.classify(key);
        if (mode === 'includeOnly' && !included && !filter.leadsToInclude(key))
            return;
        const abs = joinPath(dir.abs, name);
        const rel = abs.subarray(relStart);
        // A long root: the host path reaches PATH_MAX before the image path is too long, and the writer
        // reads files by their host path.
        if (rel.length + 1 > MAX_IMAGE_PATH || abs.length >= HOST_PATH_MAX) {
            leaveOutLong(rel);
            return;
        }
        let st;
        try {
            st = dir.listing.stat(i);
        }
        catch (err) {
            if (!isGone(err))
                throw err;
            log.warn(`${show(abs)} vanished while it was walked; left out`);
            return;
        }
        const isDir = typeOf(st) === S_IFDIR;
        let childMode = mode === 'includeOnly' && !included ? 'includeOnly' : 'normal';
        if (rule) {
            const reaches = isDir && filter.leadsToInclude(key);
            if (rule.action === 'drop' && rule.credential)
                credentials.add(abs, rel, st, rule.reason);
            if (rule.action === 'drop' && !reaches) {
                excluded.push({ path: rel, reason: rule.reason, ...(rule.warn ? { warn: true } : {}) });
                return;
            }
            if (rule.action === 'empty' || rule.action === 'drop') {
                excluded.push({ path: rel, reason: rule.reason + (rule.action === 'empty' ? ' (kept empty)' : '') });
                childMode = reaches ? 'includeOnly' : null;
            }
        }
        if (typeOf(st) === S_IFSOCK) {
            sockets.push(rel);
            return;
        }
        if (name.startsWith(WHITEOUT_PREFIX)) {
            throw new WhiteoutNameError(`${show(abs)} is named like a whiteout (.wh.*): image tools would read it as a deletion; rename it or exclude it`);
        }
        const entry = entryOf(rel, st);
        if (entry.linkTarget)
            entry.linkTarget = entries.keep(entry.linkTarget);
        if (isHugeSparse(entry)) {
            const holes = (holesIn(entry) / 1024 ** 3).toFixed(1);
            log.warn(`${show(abs)} is a sparse file with ${holes} GiB of holes; left out (see README, "Sparse files")`);
            excluded.push({ path: rel, reason: 'sparse file (holes over 1 GiB)' });
            return;
        }
        if (entry.kind === 'file' && !mayRead(entry))
            unreadable.push(rel);
        entries.push(entry, dir.index);
        const index = entries.length - 1;
        if (!opts.deferXattrs)
            xattrs.add(index, abs);
        if (isDir && childMode)
            openDir(abs, key, childMode, index);
    }
    /** An entry whose path no extractor could create, left out with whatever is below it. */
    function leaveOutLong(rel) {
        log.warn(`left out /${showShortened(rel)} and anything below it: its path is ${rel.length + 1} bytes, longer than image tools can unpack (${MAX_IMAGE_PATH}; see README, "Limits")`);
        excluded.push({ path: rel, reason: `path over ${MAX_IMAGE_PATH} bytes` });
    }
    log.debug(scannerKind() === 'native'
        ? 'walk: directories listed by the native scanner'
        : 'walk: directories listed from JavaScript (the native scanner cannot run here)');
    openDir(rootBuf, '/', 'normal', NO_PARENT);
    let sinceYield = 0;
    while (stack.length) {
        const dir = stack[stack.length - 1];
        if (dir.next === dir.listing.names.length)
            stack.pop();
        else
            visitEntry(dir, dir.next++);
        if (++sinceYield >= YIELD_EVERY) {
            sinceYield = 0;
            await (0,external_node_timers_promises_.setImmediate)();
        }
    }
    for (const [i, found] of await xattrs.finish())
        entries.setXattrs(i, found);
    const kept = credentials.size ? withoutCredentialLinks(entries, credentials, excluded, log) : entries;
    return { entries: kept, excluded, sockets, unreadable, xattrsRead: !opts.deferXattrs };
}
/**
 * Reads the xattrs of the entries at `indices` (a walk made with `deferXattrs`) into the table: on the
 * xattr worker, as the walk would have.
 */
async function readXattrsOf(root, entries, indices, log) {
    const rootBuf = Buffer.from(root.replace(/\/+$/, '') || '/');
    const reader = new XattrReader(log);
    for (const i of indices)
        reader.add(i, joinPath(rootBuf, entries.path(i)));
    for (const [i, found] of await reader.finish())
        entries.setXattrs(i, found);
}
/**
 * The inodes of files left out as credentials that have other names (hardlinks): `dev:ino`, as an
 * entry's `linkGroup`, to the credential's path and what it holds. A credential directory
 * (`~/.config/gcloud`) gives the inodes of every file below it.
 */
class CredentialInodes extends Map {
    add(abs, rel, st, reason) {
        const what = reason.replace(/^credentials: /, '');
        if (typeOf(st) !== S_IFDIR) {
            if (st.fileId)
                this.set(st.fileId, { path: Buffer.from(rel), what });
            return this;
        }
        let listing;
        try {
            listing = readDirectory(abs);
        }
        catch {
            return this; // unreadable: nothing of it is captured under another name either
        }
        for (const [i, name] of listing.names.entries()) {
            try {
                this.add(joinPath(abs, name), joinPath(rel, name), listing.stat(i), reason);
            }
            catch {
                // gone, or a path too long to look at: not captured elsewhere through this name
            }
        }
        return this;
    }
}
/**
 * A credential is left out under every name: the entries that are hardlinks of one (same device and
 * inode), wherever the walk met them, before or after the credential's own path, are taken out of the
 * table, each with a warning. Directories are never hardlinks, so every parent stays.
 */
function withoutCredentialLinks(entries, credentials, excluded, log) {
    const drop = new Set();
    for (let i = 0; i < entries.length; i++) {
        const group = entries.linkGroup(i);
        const credential = group === undefined ? undefined : credentials.get(group);
        if (!credential)
            continue;
        const path = entries.path(i);
        drop.add(i);
        excluded.push({ path, reason: `same file as /${show(credential.path)} (credentials)` });
        log.warn(`left out /${show(path)}: the same file (a hardlink) as /${show(credential.path)}, left out as ${credential.what}; add /${show(credential.path)} to include to keep both`);
    }
    return drop.size ? entries.without(drop) : entries;
}
/**
 * The longest path (with its leading `/`) an entry of the image may have. Extractors create entries
 * by their whole path (umoci, containerd and docker in Go; tar too, without openat), so one past the
 * kernel's PATH_MAX (4096 bytes with its NUL) fails every unpack, and the path is prefixed by the
 * directory the runtime unpacks into (containerd's and docker's are 80 to 100 bytes): 256 bytes are
 * left for it. Deeper entries are left out, with a warning, rather than make an image none can use.
 */
const MAX_IMAGE_PATH = 4096 - 256;
/** PATH_MAX with its NUL: a longer host path cannot be opened by name. */
const HOST_PATH_MAX = 4096;
/** A path of any length for one log line: its start and end, with the middle left out. */
function showShortened(p, keep = 60) {
    if (p.length <= 2 * keep + 3)
        return show(p);
    return `${show(p.subarray(0, keep))}…${show(p.subarray(p.length - keep))}`;
}
const READS_ALL = () => true;
/** Whether this process may read a file, by its mode bits (root reads everything). */
function readPermission() {
    const uid = process.geteuid?.() ?? 0;
    if (uid === 0)
        return READS_ALL;
    const gids = new Set([process.getegid?.(), ...(process.getgroups?.() ?? [])]);
    return (e) => e.uid === uid
        ? (e.mode & 0o400) !== 0
        : gids.has(e.gid)
            ? (e.mode & 0o040) !== 0
            : (e.mode & 0o004) !== 0;
}
/**
 * Holes read back as zeros and a tar has no room for them (ustar has no sparse entries that every
 * extractor understands). Up to 1 GiB of holes are written as zeros, which compress to almost nothing;
 * beyond that (`lastlog` after `useradd` with a large uid reaches hundreds of GB) the file is left out.
 */
const SPARSE_HOLE_LIMIT = 1024 ** 3;
function isHugeSparse(e) {
    return e.kind === 'file' && holesIn(e) > SPARSE_HOLE_LIMIT;
}
/** Bytes of a file that are not allocated on disk (none known: none). */
function holesIn(e) {
    return e.size - (e.allocated ?? e.size);
}
/** The entry vanished or was replaced by another kind between two calls: not an error. */
function isGone(err) {
    return ['ENOENT', 'ENOTDIR', 'ELOOP', 'EINVAL'].includes(err.code ?? '');
}
/** An entry of the table from its path in the image and its lstat. */
function entryOf(path, st) {
    const kind = kindOf(st);
    const entry = {
        path,
        kind,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        size: kind === 'file' ? st.size : 0,
        allocated: st.blocks * 512,
        mtimeSec: st.mtimeSec,
        mtimeNsec: st.mtimeNsec,
        ctimeSec: st.ctimeSec,
        ctimeNsec: st.ctimeNsec,
        ino: st.ino,
    };
    if (kind === 'file' && st.fileId)
        entry.linkGroup = st.fileId;
    if (st.linkTarget)
        entry.linkTarget = st.linkTarget;
    if (kind === 'char' || kind === 'block') {
        entry.devMajor = st.rdevMajor;
        entry.devMinor = st.rdevMinor;
    }
    return entry;
}
const walk_KINDS = new Map([
    [S_IFREG, 'file'],
    [S_IFDIR, 'dir'],
    [S_IFLNK, 'symlink'],
    [S_IFIFO, 'fifo'],
    [S_IFCHR, 'char'],
    [S_IFBLK, 'block'],
]);
function kindOf(st) {
    const kind = walk_KINDS.get(typeOf(st));
    if (!kind)
        throw new Error(`unexpected file type ${st.mode}`);
    return kind;
}

;// CONCATENATED MODULE: ./src/walk/scan.ts





/**
 * The default exclusions (virtual mounts, swap, the runner's own directories, credentials) plus the
 * user's.
 */
async function buildFilter(opts) {
    const mounts = await readMounts();
    const { RUNNER_TEMP, RUNNER_WORKSPACE, HOME } = process.env;
    const filter = new Filter({
        root: opts.root,
        mounts,
        swapFiles: await readSwapFiles(),
        hostPathsToDrop: [
            ...opts.ownPaths.map((p) => ({ path: p, reason: 'written by this action' })),
            // The workspace (`_work/<repo>/<repo>`) and the tool cache (`_work/_tool`) stay: they are the point.
            ...(RUNNER_TEMP ? [{ path: RUNNER_TEMP, reason: "the runner's temp directory", warn: true }] : []),
            ...(RUNNER_WORKSPACE
                ? [
                    {
                        path: external_node_path_default().join(external_node_path_default().dirname(RUNNER_WORKSPACE), '_actions'),
                        reason: "the runner's downloaded actions",
                        warn: true,
                    },
                ]
                : []),
        ],
        exclude: opts.exclude,
        include: opts.include,
        secrets: new SecretFiles(opts.root, HOME),
        rewritten: opts.rewritten,
    });
    return { filter, mounts };
}
/** Walks the whole root with those exclusions, keeping what a baseline records. */
async function scanRoot(opts) {
    const { filter } = await buildFilter(opts);
    return walk({ root: opts.root, filter, log: opts.log, keepIdentity: true, counters: opts.counters });
}

// EXTERNAL MODULE: external "node:crypto"
var external_node_crypto_ = __webpack_require__(7598);
// EXTERNAL MODULE: external "node:stream"
var external_node_stream_ = __webpack_require__(7075);
// EXTERNAL MODULE: external "node:stream/promises"
var external_node_stream_promises_ = __webpack_require__(6466);
// EXTERNAL MODULE: external "node:zlib"
var external_node_zlib_ = __webpack_require__(8522);
var external_node_zlib_default = /*#__PURE__*/__webpack_require__.n(external_node_zlib_);
;// CONCATENATED MODULE: ./src/diff/whiteouts.ts


const WH = Buffer.from('.wh.');
const OPAQUE = Buffer.from('.wh..wh..opq');
function baseName(p) {
    return p.subarray(p.lastIndexOf(0x2f) + 1);
}
/**
 * The entry of a whiteout named `p`: an empty regular file, every field fixed, so the same deletion
 * always gives the same bytes.
 */
function whiteoutEntry(p) {
    return {
        path: p,
        kind: 'whiteout',
        mode: 0,
        uid: 0,
        gid: 0,
        size: 0,
        allocated: 0,
        mtimeSec: 0,
        mtimeNsec: 0,
        ctimeSec: 0,
        ctimeNsec: 0,
        ino: 0,
    };
}
/**
 * Places whiteouts (image-spec "Whiteouts"): right after their parent directory's entry, before its
 * other contents, sorted; an opaque directory's `.wh..wh..opq` first of all. Deletions at the top of
 * the tree come before everything. Each whiteout's parent directory must be among `entries`.
 */
function groupWhiteouts(entries, deletions, opaque) {
    const byParent = new Map();
    const add = (parent, e) => {
        const key = parent.toString('latin1');
        const siblings = byParent.get(key);
        if (siblings)
            siblings.push(e);
        else
            byParent.set(key, [e]);
    };
    for (const dir of opaque)
        add(dir, whiteoutEntry(joinPath(dir, OPAQUE)));
    const sorted = [...deletions].sort((a, b) => Buffer.compare(baseName(a), baseName(b)));
    for (const d of sorted)
        add(parentOf(d), whiteoutEntry(joinPath(parentOf(d), Buffer.concat([WH, baseName(d)]))));
    const out = EntryTable.from(byParent.get('') ?? []);
    for (const e of entries) {
        out.push(e);
        if (e.kind === 'dir')
            for (const w of byParent.get(e.path.toString('latin1')) ?? [])
                out.push(w);
    }
    return out;
}
/**
 * Whether a path is, or lies below, one the walk left out (excluded, or a socket): such a path is
 * not captured, so it is not deleted either, and gets no whiteout.
 */
function leftOutBy(excluded, sockets) {
    const leftOut = new Set([...excluded.map((e) => e.path), ...sockets].map((p) => p.toString('latin1')));
    return (p) => {
        for (let q = p; q.length; q = parentOf(q))
            if (leftOut.has(q.toString('latin1')))
                return true;
        return false;
    };
}
/**
 * The change set of the entries marked 1 in `include` (walk order) and of `deletions`: the parent
 * directories of each come along, so every entry and whiteout has its directory in the layer.
 * `complete` is given the indices taken before they are read (a walk that left xattrs unread reads
 * theirs there).
 */
async function changeSet(opts) {
    const { entries, include, deletions } = opts;
    const dirs = new Map();
    for (let i = 0; i < entries.length; i++)
        if (entries.kind(i) === 'dir')
            dirs.set(entries.path(i).toString('latin1'), i);
    const needParents = (p) => {
        for (let q = parentOf(p); q.length; q = parentOf(q)) {
            const i = dirs.get(q.toString('latin1'));
            if (i === undefined || include[i] === 2)
                break;
            include[i] ||= 2;
        }
    };
    for (let i = 0; i < entries.length; i++)
        if (include[i] === 1)
            needParents(entries.path(i));
    for (const d of deletions) {
        const parent = parentOf(d);
        if (parent.length === 0)
            continue;
        const i = dirs.get(parent.toString('latin1'));
        if (i !== undefined)
            include[i] ||= 2;
        needParents(parent);
    }
    const taken = [];
    for (let i = 0; i < entries.length; i++)
        if (include[i])
            taken.push(i);
    await opts.complete(taken);
    function* selected() {
        for (const i of taken)
            yield entries.get(i);
    }
    return {
        entries: groupWhiteouts(selected(), deletions, opts.opaque),
        changed: opts.changed,
        deleted: deletions.length,
    };
}

// EXTERNAL MODULE: ./src/interrupt.ts
var interrupt = __webpack_require__(8476);
;// CONCATENATED MODULE: ./src/util/atomic.ts




/**
 * Writes `file` through a temporary file beside it, renamed into place once whole: a reader finds the
 * earlier file or the new one, never part of one. A failure, or an interrupt while writing, removes the
 * temporary file and leaves the earlier one. The directory is made for its owner alone when missing
 * (what is written here lists the machine's files or software).
 */
async function atomic_writeAtomically(file, what, write) {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    const forget = onInterrupt(() => {
        rmSync(tmp, { force: true });
        return `no new ${what} was written at ${file}`;
    });
    try {
        await write(tmp);
        await rename(tmp, file);
    }
    catch (err) {
        await rm(tmp, { force: true });
        throw err;
    }
    finally {
        forget();
    }
}

;// CONCATENATED MODULE: ./src/diff/baseline.ts










/**
 * The baseline: what the tree looked like when the job started, recorded by the `pre` step and
 * compared by the main step. One gzipped text line per entry, in walk order (depth first, children by
 * raw name bytes), so both sides are read as streams and merged without holding the index in memory.
 */
const MAGIC = 'depot-snapshot-baseline 1';
class BaselineError extends failure/* UserError */.yo {
}
/** What to do about a baseline that cannot be used. */
const RECORD_AGAIN = 'record it again (the pre step, with the same inputs) or set changes: full';
function stateOf(e) {
    return `${statusOf(e)} ${xattrDigest(e)}`;
}
/**
 * A line's state but its xattr digest: what lstat tells. Any change of an xattr moves ctime (as chmod,
 * chown and writes do), so an entry whose status is as recorded has its recorded xattrs too, and the
 * comparison never reads them.
 */
function statusOf(e) {
    const link = e.linkTarget ? e.linkTarget.toString('base64') : '-';
    const dev = e.devMajor !== undefined ? `${e.devMajor}:${e.devMinor}` : '-';
    return `${e.mode} ${e.uid} ${e.gid} ${e.size} ${e.mtimeSec}.${e.mtimeNsec} ${e.ctimeSec}.${e.ctimeNsec} ${e.ino} ${link} ${dev}`;
}
/** The status part of a line's state (see statusOf). */
function recordedStatus(state) {
    return state.slice(0, state.lastIndexOf(' '));
}
/** A baseline line holds ctime and inode: a table walked without them would differ everywhere. */
function requireIdentity(entries) {
    if (!entries.keepsIdentity)
        throw new Error('a baseline needs entries walked with keepIdentity');
}
function xattrDigest(e) {
    if (!e.xattrs?.length)
        return '-';
    const h = createHash('sha256');
    // Names are latin1 strings of their bytes: hashed as those bytes.
    for (const [name, value] of e.xattrs)
        h.update(`${name}=${value.length}:`, 'latin1').update(value);
    return h.digest('base64url').slice(0, 22);
}
/** Writes the baseline of `entries` atomically (a half-written file never passes for a baseline). */
async function writeBaseline(file, root, entries) {
    requireIdentity(entries);
    // It lists the whole filesystem (names, owners, inodes): for its owner's eyes only, whatever the umask.
    async function* lines() {
        yield `${MAGIC} ${Buffer.from(root).toString('base64')}\n`;
        let batch = '';
        for (const e of entries) {
            batch += `${e.path.toString('base64')} ${e.kind} ${stateOf(e)}\n`;
            if (batch.length > 1 << 16) {
                yield batch;
                batch = '';
            }
        }
        yield batch + 'end\n';
    }
    // Interrupted while writing: the partial file goes, whatever baseline was there stays.
    await writeAtomically(file, 'baseline', (tmp) => pipeline(Readable.from(lines()), zlib.createGzip({ level: 1 }), createWriteStream(tmp, { mode: 0o600 })));
}
/**
 * Reads a baseline back as a stream of records, a chunk's worth at a time (a promise per line was a
 * tenth of a no-change re-snapshot), refusing a corrupt, truncated or foreign file.
 */
async function* readBaseline(file, root) {
    // Errors of the file and of gunzip are kept here, never left unheard on a stream: a damaged
    // baseline must end as one clear line, not an uncaught 'error' event.
    let streamError;
    const source = (0,external_node_fs_.createReadStream)(file);
    const gunzip = external_node_zlib_default().createGunzip();
    source.on('error', (err) => gunzip.destroy(err));
    gunzip.on('error', (err) => (streamError ??= err));
    let header = true;
    let ended = false;
    let rest = '';
    try {
        for await (const chunk of source.pipe(gunzip)) {
            // The file is ASCII (base64 paths, numbers): latin1 decodes it fastest.
            const lines = (rest + chunk.toString('latin1')).split('\n');
            rest = lines.pop();
            const records = [];
            for (const line of lines) {
                if (header) {
                    const [magic, rootB64] = [line.slice(0, MAGIC.length), line.slice(MAGIC.length + 1)];
                    if (magic !== MAGIC)
                        throw new BaselineError(`${file} is not a baseline written by this action; ${RECORD_AGAIN}`);
                    const recorded = Buffer.from(rootB64, 'base64').toString();
                    if (recorded !== root)
                        throw new BaselineError(`${file} records ${recorded}, not ${root}; record the baseline of the same root`);
                    header = false;
                    continue;
                }
                if (line === 'end') {
                    ended = true;
                    continue;
                }
                const space1 = line.indexOf(' ');
                const space2 = line.indexOf(' ', space1 + 1);
                if (ended || space1 <= 0 || space2 < 0)
                    throw new BaselineError(`${file} is corrupt (a malformed line); ${RECORD_AGAIN}`);
                records.push({
                    path: Buffer.from(line.slice(0, space1), 'base64'),
                    kind: line.slice(space1 + 1, space2),
                    state: line.slice(space2 + 1),
                });
            }
            yield records;
        }
    }
    catch (err) {
        throw err instanceof BaselineError ? err : baselineReadError(file, streamError ?? err);
    }
    finally {
        source.destroy();
        gunzip.destroy();
    }
    if (streamError)
        throw baselineReadError(file, streamError);
    if (header || !ended || rest !== '')
        throw new BaselineError(`${file} is truncated: the baseline was not written completely; ${RECORD_AGAIN}`);
}
function baselineReadError(file, err) {
    const code = err.code;
    if (code === 'ENOENT')
        return new BaselineError(`no baseline at ${file}: the pre step did not record one`);
    return new BaselineError(`${file} is unreadable or corrupt (${code ?? err.message}); ${RECORD_AGAIN}`);
}
/** Walk order: depth first with children sorted by raw bytes, i.e. bytes compared with `/` lowest. */
function compareWalkOrder(a, b) {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
        if (a[i] === b[i])
            continue;
        const x = a[i] === 0x2f ? -1 : a[i];
        const y = b[i] === 0x2f ? -1 : b[i];
        return x - y;
    }
    return a.length - b.length;
}
/**
 * The walk of the root compared with the baseline at `file`: what differs, and whiteouts for what is
 * gone. The walk keeps ctime and inode, which the baseline's lines hold, and reads no xattrs: only
 * those of the entries captured are read, after the comparison (see statusOf).
 */
function baselineSource(file) {
    return {
        async read({ root, filter, log, counters }) {
            const scan = await walk_walk({ root, filter, log, keepIdentity: true, deferXattrs: true, counters });
            const set = await diffAgainstBaseline(file, root, scan.entries, scan.excluded, scan.sockets, log);
            return { ...set, scan, excluded: scan.excluded, unreadable: scan.unreadable };
        },
    };
}
/**
 * Compares the tree now with its baseline: new or different entries are captured (with their parent
 * directories, so each change lands with the right metadata around it), vanished ones become
 * whiteouts: one per deleted subtree, none under a deleted parent, none for paths left out of the
 * capture, and written right after their parent directory, before its other entries. An entry whose
 * type changed gets a whiteout too, then its new self.
 */
async function diffAgainstBaseline(file, root, entries, excluded, sockets, log) {
    requireIdentity(entries);
    const isLeftOut = leftOutBy(excluded, sockets);
    const include = new Uint8Array(entries.length);
    const deletions = [];
    let changed = 0;
    const addWhiteout = (p) => deletions.push(p);
    let i = 0;
    let gone = null; // a deleted directory: its old contents need no whiteouts of their own
    for await (const batch of readBaseline(file, root)) {
        for (const rec of batch) {
            if (gone && isInside(rec.path, gone))
                continue;
            gone = null;
            while (i < entries.length && compareWalkOrder(entries.path(i), rec.path) < 0) {
                include[i++] = 1; // new since the baseline
                changed++;
            }
            const e = i < entries.length ? entries.get(i) : undefined;
            if (e && e.path.equals(rec.path)) {
                if (e.kind !== rec.kind) {
                    addWhiteout(rec.path);
                    if (rec.kind === 'dir')
                        gone = rec.path;
                    include[i] = 1;
                    changed++;
                }
                else if (statusOf(e) !== recordedStatus(rec.state)) {
                    include[i] = 1;
                    changed++;
                }
                i++;
            }
            else if (!isLeftOut(rec.path)) {
                addWhiteout(rec.path);
                if (rec.kind === 'dir')
                    gone = rec.path;
            }
        }
    }
    for (; i < entries.length; i++, changed++)
        include[i] = 1;
    // Parent directories of every change and of every whiteout come along; only the entries taken
    // have their xattrs read.
    return changeSet({
        entries,
        include,
        deletions,
        opaque: [],
        changed,
        complete: (taken) => readXattrsOf(root, entries, taken, log),
    });
}

;// CONCATENATED MODULE: ./src/diff/overlay.ts









class OverlayError extends failure/* UserError */.yo {
}
/** overlayfs's own bookkeeping xattrs, in the trusted (root) and user (unprivileged) namespaces. */
const OVERLAY_XATTR = /^(trusted|user)\.overlay\./;
/**
 * The overlay of `root`: the one mountinfo shows mounted exactly there, with its upper dir read at
 * `given` (the `upper` input) when set, else at the path mountinfo names when this process can read it.
 * `given` alone is enough: mountinfo may not show the overlay at all (a root that was pivoted into).
 */
async function findOverlay(root, mounts, given = '') {
    const resolved = external_node_path_default().resolve(root);
    // The last mount at a path is the one in effect.
    const mount = [...mounts].reverse().find((m) => m.mountPoint.toString() === resolved);
    const options = mount?.fsType === 'overlay' ? splitOptions(mount.superOptions) : null;
    const mounted = options !== null;
    const upper = options?.get('upperdir');
    const work = options?.get('workdir');
    const lowerDirs = options
        ?.get('lowerdir')
        ?.split(/(?<!\\):/)
        .map((d) => d.replace(/\\:/g, ':'));
    const lower = lowerDirs?.length && lowerDirs.every(isReadableDir) ? { lower: lowerDirs } : {};
    if (given) {
        // mountinfo's paths are from the mounter's view; the work dir usually sits beside the upper dir.
        const beside = upper && work && external_node_path_default().dirname(upper) === external_node_path_default().dirname(work)
            ? external_node_path_default().join(external_node_path_default().dirname(given), external_node_path_default().basename(work))
            : undefined;
        const found = [beside, work].find((d) => d !== undefined && isReadableDir(d));
        // The lower dirs' paths are as trustworthy as the upper's: only when mountinfo's upper is the one given.
        const sameUpper = upper !== undefined && sameDir(upper, given);
        return {
            upper: given,
            ...(found ? { work: found } : {}),
            mounted,
            given: true,
            ...(sameUpper ? lower : {}),
        };
    }
    if (!upper || !isReadableDir(upper))
        return null; // not visible from here: set upper, or use the baseline
    return { upper, ...(work && isReadableDir(work) ? { work } : {}), mounted, given: false, ...lower };
}
/**
 * The overlay's own storage (upper and work dirs) when it lies inside root, as with `/rw/.snap/upper`
 * under `/`: never part of the capture, which would otherwise hold every change twice.
 */
function overlayStorage(overlay) {
    return overlay ? [overlay.upper, overlay.work ?? ''].filter(Boolean) : [];
}
/** Refuses an `upper` input that cannot be the upper dir of root, with one line saying why. */
async function checkUpper(upper, root) {
    const st = await (0,promises_.stat)(upper).catch((err) => {
        const why = err.code === 'ENOENT' ? 'does not exist' : `cannot be read: ${err.code ?? err.message}`;
        throw new failure/* InputError */.dz(`upper ${upper} ${why}; give the overlay's upper dir as this job sees it (e.g. /rw/.snap/upper)`);
    });
    if (!st.isDirectory())
        throw new failure/* InputError */.dz(`upper ${upper} is not a directory; give the overlay's upper dir as this job sees it`);
    if (external_node_path_default().resolve(upper) === external_node_path_default().resolve(root))
        throw new failure/* InputError */.dz(`upper ${upper} is root itself; give the overlay's upper dir, not its merged view`);
    await (0,promises_.access)(upper, external_node_fs_.constants.R_OK | external_node_fs_.constants.X_OK).catch(() => {
        throw new failure/* InputError */.dz(`upper ${upper} cannot be read: permission denied; run the step as root or with sudo`);
    });
}
function sameDir(a, b) {
    try {
        const [x, y] = [(0,external_node_fs_.statSync)(a), (0,external_node_fs_.statSync)(b)];
        return x.dev === y.dev && x.ino === y.ino;
    }
    catch {
        return false;
    }
}
function isReadableDir(dir) {
    try {
        (0,external_node_fs_.accessSync)(dir, external_node_fs_.constants.R_OK | external_node_fs_.constants.X_OK);
        return (0,external_node_fs_.statSync)(dir).isDirectory();
    }
    catch {
        return false;
    }
}
/** Mount options are comma-separated; a comma inside a value is escaped with a backslash. */
function splitOptions(s) {
    const out = new Map();
    for (const part of s.split(/(?<!\\),/)) {
        const eq = part.indexOf('=');
        if (eq > 0)
            out.set(part.slice(0, eq), part.slice(eq + 1).replace(/\\,/g, ','));
    }
    return out;
}
/** The overlay's upper dir as the change set (see overlayChanges). */
function overlaySource(overlay) {
    return {
        read({ root, filter, log }) {
            if (overlay.given && !overlay.mounted)
                log.warn(`mountinfo shows no overlay mounted at ${root}: taking upper ${overlay.upper} as its upper dir, as given`);
            return overlayChanges(root, overlay, filter, log);
        },
    };
}
/**
 * The overlay's upper dir *is* the change set: an entry there was added or changed (its metadata is
 * read through the merged `root`, which is what the sandbox sees), a character device 0/0 is a
 * deletion, and a directory marked opaque hides everything below it in the lower layers
 * (`.wh..wh..opq`). Renamed directories (`redirect_dir`) are refused: their merged content lives
 * elsewhere in the lower layers.
 */
async function overlayChanges(root, overlay, filter, log) {
    const upper = await walk_walk({ root: overlay.upper, filter, log, keepIdentity: false });
    const rootBuf = Buffer.from(external_node_path_default().resolve(root));
    const entries = [];
    const deletions = [];
    const opaque = [];
    let changed = 0;
    for (const e of upper.entries) {
        const names = e.xattrs?.map(([n]) => n) ?? [];
        if (names.some((n) => /^(trusted|user)\.overlay\.redirect$/.test(n))) {
            throw new OverlayError(`overlay: /${show(e.path)} was renamed (redirect_dir); use changes: baseline or full`);
        }
        if (e.kind === 'char' && e.devMajor === 0 && e.devMinor === 0) {
            deletions.push(e.path);
            continue;
        }
        const isOpaque = e.kind === 'dir' &&
            e.xattrs?.some(([n, v]) => /^(trusted|user)\.overlay\.opaque$/.test(n) && v.toString() === 'y');
        const merged = await mergedEntry(rootBuf, e, log);
        if (!merged)
            continue;
        entries.push(merged);
        changed++;
        if (isOpaque)
            opaque.push(e.path);
    }
    const out = groupWhiteouts(entries, deletions, opaque);
    return {
        entries: out,
        changed,
        deleted: deletions.length,
        excluded: upper.excluded,
        unreadable: upper.unreadable,
    };
}
/** The entry as the merged view shows it (metacopy uppers hold only metadata; the data is below). */
async function mergedEntry(rootBuf, upperEntry, log) {
    const abs = Buffer.concat([rootBuf, Buffer.from('/'), upperEntry.path]);
    try {
        const st = await (0,promises_.lstat)(abs, { bigint: true });
        const entry = {
            ...upperEntry,
            size: st.isFile() ? Number(st.size) : 0,
            allocated: Number(st.blocks) * 512,
        };
        const xattrs = readXattrs(abs, log)?.filter(([n]) => !OVERLAY_XATTR.test(n));
        if (xattrs?.length)
            entry.xattrs = xattrs;
        else
            delete entry.xattrs;
        return entry;
    }
    catch (err) {
        if (err.code === 'ENOENT')
            return null;
        throw err;
    }
}

;// CONCATENATED MODULE: ./src/diff/source.ts

/** Everything under the root: what a snapshot takes without a base image, or with `changes: full`. */
const wholeTree = {
    async read({ root, filter, log, counters }) {
        const scan = await walk_walk({ root, filter, log, keepIdentity: false, counters });
        return { entries: scan.entries, scan, excluded: scan.excluded, unreadable: scan.unreadable };
    },
};

;// CONCATENATED MODULE: ./src/diff/changes.ts







/** How changes can be found. */
const CHANGE_METHODS = ['overlay', 'baseline', 'full'];
/** What the `changes` input may ask for: one method, or `auto` to pick one. */
const CHANGE_MODES = ['auto', ...CHANGE_METHODS];
/**
 * Finds what changed under `root`: the overlay's upper dir, else the walk compared with the baseline
 * the pre step recorded, else the whole walk (see `chooseMethod`).
 */
async function findChanges(opts) {
    const { root } = opts.scan;
    const overlay = await findOverlay(root, await readMounts(), opts.upper);
    const storage = overlayStorage(overlay).filter((d) => !external_node_path_default().relative(root, d).startsWith('..'));
    if (storage.length)
        opts.log.info(`left out: the overlay's own storage inside ${root} (${storage.join(', ')})`);
    const { filter } = await buildFilter({
        ...opts.scan,
        ownPaths: [...opts.scan.ownPaths, ...storage],
    });
    const choice = chooseMethod(opts, overlay, external_node_fs_.existsSync);
    const ctx = { root, filter, log: opts.log, counters: opts.scan.counters };
    const found = await sourceOf(choice).read(ctx);
    if (opts.wholeWalk && !found.scan) {
        const whole = await wholeTree.read(ctx);
        found.scan = whole.scan;
        // What the whole walk could not read may be taken again (a recapture): it needs root too.
        found.unreadable = [
            ...new Map([...found.unreadable, ...whole.unreadable].map((p) => [p.toString('latin1'), p])).values(),
        ];
    }
    const overlayUsed = choice.method === 'overlay' ? { overlay: choice.overlay } : {};
    return { ...found, method: choice.method, reason: choice.reason, ...overlayUsed };
}
function sourceOf(choice) {
    switch (choice.method) {
        case 'overlay':
            return overlaySource(choice.overlay);
        case 'baseline':
            return baselineSource(choice.baseline);
        case 'full':
            return wholeTree;
    }
}
/**
 * The one place that decides how changes are found: an overlay's upper dir when `root` is an overlay
 * mount (or `upper` names its upper dir), else the baseline the pre step recorded, else the whole
 * tree. A change set needs a base image (the layers it applies to): without one, everything is taken.
 * Throws when the `changes` input asks for a method that cannot be used.
 */
function chooseMethod(opts, overlay, exists) {
    const { root } = opts.scan;
    const { mode } = opts;
    if (mode === 'full')
        return { method: 'full', reason: 'changes: full' };
    if (!opts.hasBase) {
        if (mode !== 'auto')
            throw new BaselineError(`changes: ${mode} needs base-image (or SNAPSHOT_BASE_IMAGE): the image the changes apply to`);
        return { method: 'full', reason: noBaseReason(opts, overlay, exists) };
    }
    if (mode !== 'baseline') {
        if (overlay)
            return {
                method: 'overlay',
                overlay,
                reason: overlay.given
                    ? `the overlay upper dir given as upper (${overlay.upper}) holds the changes to ${root}`
                    : `${root} is an overlay mount: its upper dir ${overlay.upper} holds the changes`,
            };
        if (mode === 'overlay')
            throw new OverlayError(`changes: overlay, but ${root} is not an overlay mount with a readable upper dir; if its upper dir is elsewhere in this job's view, set upper`);
    }
    if (opts.baseline && exists(opts.baseline))
        return {
            method: 'baseline',
            baseline: opts.baseline,
            reason: `compared with the baseline recorded by the pre step (${opts.baseline})`,
        };
    if (mode === 'baseline')
        throw new BaselineError(`changes: baseline, but no baseline at ${opts.baseline || '(no path: set baseline)'}: did the pre step run?`);
    return {
        method: 'full',
        reason: 'no baseline was recorded (the pre step did not run): the whole tree is captured on top of the base image',
    };
}
/**
 * Why the whole tree is captured without a base image, naming the change set that went unused: the
 * changes alone, without the base image's layers below them, would not be a usable image.
 */
function noBaseReason(opts, overlay, exists) {
    const unused = overlay !== null
        ? `the overlay upper dir ${overlay.upper} is not used`
        : opts.baseline && exists(opts.baseline)
            ? `the baseline at ${opts.baseline} is not used`
            : '';
    return unused
        ? `no base image: the whole tree is captured (${unused}: changes need the base image's layers below them; set base-image to push only the changes)`
        : 'no base image: the whole tree is captured';
}

// EXTERNAL MODULE: external "node:util"
var external_node_util_ = __webpack_require__(7975);
;// CONCATENATED MODULE: ./src/content/oci.ts
/** OCI image-spec v1.1 types and media types: plain data, no IO. */
const MediaType = {
    manifest: 'application/vnd.oci.image.manifest.v1+json',
    index: 'application/vnd.oci.image.index.v1+json',
    config: 'application/vnd.oci.image.config.v1+json',
    layerTar: 'application/vnd.oci.image.layer.v1.tar',
    layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
    layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
    dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
    dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
    /** The config of an artifact that has none (image-spec 1.1): the two bytes `{}`. */
    empty: 'application/vnd.oci.empty.v1+json',
};
const Annotation = {
    created: 'org.opencontainers.image.created',
    source: 'org.opencontainers.image.source',
    revision: 'org.opencontainers.image.revision',
    refName: 'org.opencontainers.image.ref.name',
    baseName: 'org.opencontainers.image.base.name',
    baseDigest: 'org.opencontainers.image.base.digest',
    /** What the image was built from, as the user's `key` input names it (this action's namespace). */
    key: 'dev.depot.snapshot.key',
};
/** A referrers-list descriptor for a stored artifact manifest: its `artifactType` and annotations. */
function referrerDescriptor(digest, bytes, mediaType) {
    const m = JSON.parse(bytes.toString('utf8'));
    // image-spec: artifactType, else the config's media type.
    const artifactType = m.artifactType ?? m.config?.mediaType;
    return {
        mediaType,
        digest,
        size: bytes.length,
        ...(artifactType ? { artifactType } : {}),
        ...(m.annotations ? { annotations: m.annotations } : {}),
    };
}

;// CONCATENATED MODULE: ./src/util/limit.ts
/** Runs at most `n` of the given async jobs at once (a minimal p-limit). */
function limiter(n) {
    let active = 0;
    // A queue read from `head`: Array#shift copies the array, which is quadratic over a long queue.
    let queue = [];
    let head = 0;
    const next = () => {
        if (active >= n || head >= queue.length)
            return;
        const start = queue[head];
        // Let go of it now: a started job's closure holds what the job works on (a 1 MiB block, say).
        queue[head++] = null;
        if (head > 1024 && head * 2 > queue.length) {
            queue = queue.slice(head);
            head = 0;
        }
        active++;
        start();
    };
    return (job) => new Promise((resolve, reject) => {
        queue.push(() => {
            job()
                .then(resolve, reject)
                .finally(() => {
                active--;
                next();
            });
        });
        next();
    });
}
/** A job that did not start because an earlier one failed. */
const CANCELLED = new Error('cancelled after another job failed');
/**
 * Runs `job(i)` for every item, `concurrency` at a time, heaviest first, and returns the results in
 * item order. Heaviest first (the longest-processing-time rule): the last jobs to start are the small
 * ones, so every worker stays busy to the end instead of one big job running alone. After a failure no
 * new job starts, and the ones under way finish before the first error is thrown, so nothing still
 * writes into what the caller then cleans up.
 */
async function allHeaviestFirst(weights, concurrency, job) {
    const parallel = limiter(concurrency);
    let failed = false;
    const order = weights.map((_, i) => i).sort((a, b) => weights[b] - weights[a] || a - b);
    const started = new Map(order.map((i) => [
        i,
        parallel(async () => {
            if (failed)
                throw CANCELLED;
            try {
                return await job(i);
            }
            catch (err) {
                failed = true;
                throw err;
            }
        }),
    ]));
    const outcomes = await Promise.allSettled(weights.map((_, i) => started.get(i)));
    const failure = outcomes.find((o) => o.status === 'rejected' && o.reason !== CANCELLED);
    if (failure)
        throw failure.reason;
    return outcomes.map((o) => o.value);
}

;// CONCATENATED MODULE: ./src/layer/compress.ts






/** The layer compressions, in the order help and errors list them. */
const COMPRESSIONS = ['gzip', 'zstd', 'none'];
const LEVELS = {
    // gzip level 1: compression bounds a full capture. Measured on a 1.7 GB rootfs (bench/RESULTS.md):
    // level 6 took 1.7x as long for layers only 7 % smaller; every later pull reads either quickly.
    gzip: { min: 1, max: 9, default: 1 },
    zstd: { min: 1, max: 19, default: 3 },
    none: { min: 0, max: 0, default: 0 },
};
const LAYER_MEDIA_TYPE = {
    gzip: MediaType.layerGzip,
    zstd: MediaType.layerZstd,
    none: MediaType.layerTar,
};
/** Zstandard needs Node's zlib with zstd (Node 22.15+/24): the action's own runtime has it. */
function zstdAvailable() {
    return typeof (external_node_zlib_default()).zstdCompress === 'function';
}
/**
 * A compressing stream. gzip and zstd cut the stream into blocks compressed side by side on the libuv
 * pool (two per core at most, across every layer), so a single layer keeps every core busy.
 */
function compressor(kind, level) {
    switch (kind) {
        case 'gzip':
            return new BlockCompressor(gzipBlocks(level));
        case 'zstd':
            if (!zstdAvailable())
                throw new Error('zstd compression needs Node.js 22.15 or newer (the action runs on node24)');
            return new BlockCompressor(zstdFrames(level));
        case 'none':
            return new external_node_stream_.PassThrough({ highWaterMark: 1024 * 1024 });
    }
}
const deflateRaw = (0,external_node_util_.promisify)((external_node_zlib_default()).deflateRaw);
/** Deflate looks back at most 32 KiB: each block is primed with that much of the one before it. */
const WINDOW = 32 * 1024;
/**
 * gzip as pigz writes it: 2 MiB blocks, each deflated with the 32 KiB before it as its dictionary
 * and ended by a sync flush, so the raw deflate outputs concatenate into one stream that the last
 * block finishes; one ordinary gzip member that every reader reads. On a 0.7 GB tar: 9.1 s against
 * 15.2 s for one zlib stream and 9.5 s for `pigz -p2`, at the same size and less CPU than either.
 */
function gzipBlocks(level) {
    // 2 MiB: each block also hashes the 32 KiB before it, 1.5 % more input (3 % at 1 MiB).
    const blockSize = 2 * 1024 * 1024;
    let crc = 0;
    let length = 0;
    return {
        blockSize,
        // RFC 1952 header as zlib writes it: no name, no mtime; XFL says "fastest" or "best"; OS Unix.
        header: Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, level === 1 ? 4 : level === 9 ? 2 : 0, 3]),
        observe(block) {
            crc = external_node_zlib_default().crc32(block, crc);
            length += block.length;
        },
        window: WINDOW,
        async compress(block, before, last) {
            if (await incompressible(block))
                return storedBlocks(block, last);
            return deflateRaw(block, {
                level,
                ...(before.length ? { dictionary: before } : {}),
                finishFlush: last ? (external_node_zlib_default()).constants.Z_FINISH : (external_node_zlib_default()).constants.Z_SYNC_FLUSH,
                // Room for the whole output even when nothing compresses: one pool round trip per block
                // (16 KiB outputs made 30 of them, and cost a fifth more CPU).
                chunkSize: blockSize + 64 * 1024,
            });
        },
        trailer() {
            const t = Buffer.alloc(8);
            t.writeUInt32LE(crc >>> 0, 0);
            t.writeUInt32LE(length % 2 ** 32, 4);
            return t;
        },
    };
}
/** Slices of a block deflated to judge it, and their size: 32 KiB, evenly spread over the block. */
const SAMPLE_SLICES = 8;
const SAMPLE_SLICE = 4 * 1024;
/** A block whose sample deflates to more than this share of its size is stored, not deflated. */
const STORE_ABOVE = 0.98;
/**
 * Whether a block is not worth deflating (already compressed: packages, wheels, archives, images),
 * judged by deflating a sample of it at level 1: slices at fixed places, so the decision depends on
 * the block's bytes alone and the same tree gives the same layer. Deflate at level 1 runs at about
 * 32 MB/s over such data (against 54 over a rootfs's), to save nothing; the sample costs 1.7 % of a
 * block's deflate. On a tree half of .debs, 107 of 197 blocks were stored, for a layer 0.2 % larger.
 */
async function incompressible(block) {
    if (block.length < SAMPLE_SLICES * SAMPLE_SLICE * 2)
        return false;
    const sample = Buffer.allocUnsafe(SAMPLE_SLICES * SAMPLE_SLICE);
    for (let k = 0; k < SAMPLE_SLICES; k++) {
        const from = Math.floor((k * block.length) / SAMPLE_SLICES);
        block.copy(sample, k * SAMPLE_SLICE, from, from + SAMPLE_SLICE);
    }
    const deflated = await deflateRaw(sample, { level: 1 });
    return deflated.length > STORE_ABOVE * sample.length;
}
/** The most bytes one deflate stored block holds (its LEN field is 16 bits). */
const STORED_MAX = 0xffff;
/**
 * `block` as deflate stored blocks (RFC 1951, 3.2.4): a header byte (BFINAL only on the stream's last
 * block, BTYPE 00), LEN and its complement, then the bytes as they are. The block before ended
 * byte-aligned (a sync flush, or stored blocks), as a stored block's header must start; and like a
 * sync flush, stored blocks end byte-aligned, so the next block follows as usual.
 */
function storedBlocks(block, last) {
    const count = Math.max(1, Math.ceil(block.length / STORED_MAX));
    const out = Buffer.allocUnsafe(block.length + 5 * count);
    let at = 0;
    for (let k = 0; k < count; k++) {
        const start = k * STORED_MAX;
        const len = Math.min(STORED_MAX, block.length - start);
        out[at] = last && k === count - 1 ? 1 : 0;
        out.writeUInt16LE(len, at + 1);
        out.writeUInt16LE(~len & 0xffff, at + 3);
        at += 5 + block.copy(out, at + 5, start, start + len);
    }
    return out;
}
/**
 * zstd as independent 4 MiB frames, one after another: a stream of several frames is a valid zstd
 * stream (RFC 8878, 3.1) that every decoder reads, containerd's and `zstd -d` alike. On 300 MB of a
 * rootfs tar (Node 24): 2.6 s against 4.8 s for one stream, 0.3 % larger.
 */
function zstdFrames(level) {
    const z = (external_node_zlib_default());
    const zstdCompress = (0,external_node_util_.promisify)(z.zstdCompress);
    const blockSize = 4 * 1024 * 1024;
    return {
        blockSize,
        header: Buffer.alloc(0),
        window: 0,
        compress: (block) => zstdCompress(block, {
            params: { [z.constants.ZSTD_c_compressionLevel]: level },
            chunkSize: blockSize + 64 * 1024,
        }),
        trailer: () => Buffer.alloc(0),
    };
}
/**
 * Blocks compressed at once across every layer: two per core. With one per core, a core idled
 * whenever the main thread was busy (reading small files, hashing) as a block finished, since only
 * the main thread starts the next one: a 4.1 GB capture took 55.8 s instead of 52.0.
 */
const compressing = limiter(2 * external_node_os_default().availableParallelism());
/** Blocks of one stream queued or in flight at once. */
const PER_STREAM = external_node_os_default().availableParallelism() + 1;
/**
 * Cuts a stream into the codec's blocks, compresses several at a time, and passes the
 * results on in order. The bytes depend only on the input, the codec and the level (never on how the
 * input arrived or which block finished first), so layers stay reproducible.
 *
 * Input is copied into blocks kept for reuse: a new block per 4 MiB (Buffer.concat) made the
 * main thread spend a quarter of a zstd capture collecting garbage, since every large buffer freed
 * counts towards V8's next full collection.
 */
class BlockCompressor extends external_node_stream_.Transform {
    codec;
    /** The block being filled, and how much of it is. */
    block;
    filled = 0;
    /** Blocks whose compression has finished, free to fill again. */
    spare = [];
    before = Buffer.alloc(0);
    inFlight = [];
    constructor(codec) {
        super({ readableHighWaterMark: codec.blockSize });
        this.codec = codec;
        this.block = Buffer.allocUnsafeSlow(codec.blockSize);
        if (codec.header.length)
            this.push(codec.header);
    }
    _transform(chunk, _enc, done) {
        this.fill(chunk).then(() => done(), done);
    }
    _flush(done) {
        this.finish().then(() => {
            this.push(this.codec.trailer());
            done();
        }, done);
    }
    /** Copies `chunk` into blocks, starting each one as it fills. */
    async fill(chunk) {
        for (let at = 0; at < chunk.length;) {
            const copied = chunk.copy(this.block, this.filled, at);
            at += copied;
            this.filled += copied;
            if (this.filled < this.codec.blockSize)
                continue;
            const full = this.block;
            this.block = this.spare.pop() ?? Buffer.allocUnsafeSlow(this.codec.blockSize);
            this.filled = 0;
            await this.start(full, full, false);
        }
    }
    /** Starts what is left as the last block (even if empty: gzip ends its stream there). */
    async finish() {
        await this.start(this.block.subarray(0, this.filled), this.block, true);
        while (this.inFlight.length)
            this.push(await this.inFlight.shift());
    }
    /**
     * Queues `data` (in `block`, given back to the spare ones once compressed); once PER_STREAM are
     * in flight, waits for the oldest and passes it on.
     */
    async start(data, block, last) {
        this.codec.observe?.(data);
        const before = this.before;
        // A copy: the block is filled again once compressed.
        if (this.codec.window)
            this.before = Buffer.from(data.subarray(-this.codec.window));
        const job = compressing(() => this.codec.compress(data, before, last));
        job.then(() => this.spare.push(block), () => { });
        this.inFlight.push(job);
        if (this.inFlight.length >= PER_STREAM)
            this.push(await this.inFlight.shift());
    }
}

;// CONCATENATED MODULE: ./src/image/budget.ts
/**
 * Layers an image may have at most: Docker (overlay2) refuses to run an image past 125 layers ("max
 * depth exceeded"), podman past about as many, containerd's overlayfs stacks one lower directory per
 * layer.
 */
const LAYER_LIMIT = 127;
/** Past about this many layers Docker 20.10 (overlay2) failed to run an image, podman too. */
const DOCKER_LAYERS = 125;
/**
 * Who made a layer, in its history entry. A capture of the whole tree is where a chain starts: its
 * layers are never merged. Layers of changes on top of a base are what later snapshots may merge.
 */
const CREATED_BY = { wholeTree: 'snapshot-action', changes: 'snapshot-action: changes' };
/**
 * How many of the image's top layers earlier snapshots made on top of a base (above the image the
 * chain started from, whoever made it), from the history: one entry per layer, `empty_layer` ones
 * aside. 0 when the history does not map onto the layers one to one: then nothing is known to be
 * ours, and nothing is merged.
 */
function layersMadeBySnapshots(layerCount, history) {
    const layered = history.filter((h) => !h.empty_layer);
    if (layered.length !== layerCount)
        return 0;
    let n = 0;
    while (n < layered.length && layered[layered.length - 1 - n].created_by === CREATED_BY.changes)
        n++;
    return n;
}
/** The history of the image's first `keep` layers: their entries and the empty ones among them. */
function historyOfFirstLayers(history, keep) {
    const kept = [];
    let layers = 0;
    for (const h of history) {
        if (!h.empty_layer && layers === keep)
            break;
        kept.push(h);
        if (!h.empty_layer)
            layers++;
    }
    return kept;
}
/**
 * Keeps base + new layers + the marker within `maxLayers`. While the base leaves room for a new layer
 * and the marker, nothing is merged and the new content takes at most the room left. When it does
 * not, the top layers earlier snapshots made are merged (recaptured from the live tree) so that a
 * quarter of the budget is free again: compaction then comes once every `maxLayers / 4` generations
 * or so, merges the most recent layers, and never the base the chain started from.
 */
function planBudget(opts) {
    const { baseLayers, madeBySnapshots, maxLayers } = opts;
    const marker = 1;
    if (baseLayers + 1 + marker <= maxLayers)
        return { merge: 0, newLayers: maxLayers - baseLayers - marker };
    const free = Math.max(1, Math.floor(maxLayers / 4));
    // After merging, the merged layers and this generation's changes are one set of new layers.
    const merge = Math.min(madeBySnapshots, baseLayers - (maxLayers - free - marker - 1));
    const left = baseLayers - merge;
    // The merged paths and the changes take at most half the room freed, so the next generations have
    // the rest, and compaction does not come again at once.
    const room = Math.min(maxLayers - left - marker, Math.floor(free / 2));
    return { merge: Math.max(0, merge), newLayers: Math.max(1, room) };
}

;// CONCATENATED MODULE: ./src/inputs/spec.ts



/** What a run does; `promote`, `pull` and `lookup` are also subcommands on the command line. */
const spec_MODES = ['snapshot', 'promote', 'pull', 'lookup'];
/** Where a dry run or a pull writes its layout when `output` is not set. */
const OUTPUT_DEFAULT = 'snapshot-layout';
/** Layers compressed and uploaded at once. */
const CONCURRENCY = { min: 1, max: 16 };
/** Docker and podman refuse to run an image of more than about 125 layers: see image/budget.ts. */
const MAX_LAYERS = { min: 3, max: LAYER_LIMIT, default: 64 };
const { gzip, zstd } = LEVELS;
/**
 * Every input, in action.yml's order: an action input (`INPUT_<NAME>`) and a `--<name>` flag. None is
 * required by the runner (action.yml says `required: false`): what a mode needs is checked by getInputs.
 */
const INPUT_SPECS = [
    {
        name: 'image',
        description: 'Image reference(s) to push to, one per line, in any repositories and registries; tag defaults to latest (e.g. <org-id>.registry.depot.dev/my-ci-image:latest)',
        default: '',
        kind: 'list',
    },
    { name: 'root', description: 'Root of the filesystem to capture', default: '/', kind: 'text' },
    {
        name: 'dry-run',
        description: 'Write an OCI image layout to `output` instead of pushing',
        default: 'false',
        kind: 'boolean',
    },
    {
        name: 'output',
        description: 'Directory of the OCI image layout written by a dry run',
        default: OUTPUT_DEFAULT,
        kind: 'text',
    },
    {
        name: 'exclude',
        description: 'Paths or globs to leave out, one per line, as if root were /',
        default: '',
        kind: 'list',
    },
    {
        name: 'include',
        description: 'Paths or globs to keep even where an exclusion (default or yours) would leave them out',
        default: '',
        kind: 'list',
    },
    {
        name: 'compression',
        description: 'Layer compression: gzip, zstd or none',
        default: 'gzip',
        kind: 'choice',
        values: COMPRESSIONS,
    },
    {
        name: 'compression-level',
        description: `Compression level (gzip ${gzip.min}-${gzip.max}, default ${gzip.default}; zstd ${zstd.min}-${zstd.max}, default ${zstd.default})`,
        default: '',
        kind: 'text',
    },
    {
        name: 'layer-size',
        description: 'Target uncompressed size of one layer, e.g. 512MiB; the tree is split by subtree',
        default: '512MiB',
        kind: 'text',
    },
    {
        name: 'max-layers',
        description: `Most layers the image may have, base image and marker included (${MAX_LAYERS.min}-${MAX_LAYERS.max}): past it, layers earlier snapshots made are merged`,
        default: String(MAX_LAYERS.default),
        kind: 'text',
    },
    {
        name: 'base-image',
        description: 'The image the sandbox started from (optionally @digest): its layers are reused and only changes captured. Default: SNAPSHOT_BASE_IMAGE',
        default: '',
        kind: 'text',
    },
    {
        name: 'changes',
        description: 'How changes are found: auto (overlay upper dir, else the baseline when one was recorded, else full), overlay, baseline, or full',
        default: 'auto',
        kind: 'choice',
        values: CHANGE_MODES,
    },
    {
        name: 'baseline',
        description: 'Baseline index written by the pre step and read by the main step (default: in RUNNER_TEMP)',
        default: '',
        kind: 'text',
    },
    {
        name: 'upper',
        description: "The overlay upper dir of root as this job sees it, when mountinfo's upperdir is not reachable (e.g. /rw/.snap/upper after a pivot_root): changes are read from it",
        default: '',
        kind: 'text',
    },
    {
        name: 'metadata-file',
        description: 'Write a JSON file describing the result (schema: metadata.schema.json)',
        default: '',
        kind: 'text',
    },
    {
        name: 'mode',
        description: 'snapshot (capture root), promote (copy `from` to `image` without recapturing), pull (fetch `from` into `output`, or into Docker or podman with `load`) or lookup (whether `image` holds an image with this `key`, young enough for `max-age`: outputs hit, digest, created, key)',
        default: 'snapshot',
        kind: 'choice',
        values: spec_MODES,
    },
    {
        name: 'from',
        description: 'The source image (tag or @digest) of promote and pull; for promote also oci:DIR[:TAG], an OCI layout',
        default: '',
        kind: 'text',
    },
    {
        name: 'token',
        description: 'Registry token, sent as Basic x-token:<token> (Depot registry) to the registry of the first image; DEPOT_SNAPSHOT_TOKEN or DEPOT_TOKEN when empty',
        default: '',
        kind: 'text',
        secret: true,
    },
    {
        name: 'username',
        description: 'Registry username (with password), for the registry of the first image',
        default: '',
        kind: 'text',
    },
    {
        name: 'password',
        description: 'Registry password (with username), for the registry of the first image',
        default: '',
        kind: 'text',
        secret: true,
    },
    {
        name: 'insecure-registry',
        description: 'Talk plain HTTP to the registries pushed to (automatic for localhost and 127.0.0.0/8)',
        default: 'false',
        kind: 'boolean',
    },
    {
        name: 'concurrency',
        description: `Layers compressed and uploaded at once (${CONCURRENCY.min}-${CONCURRENCY.max})`,
        default: '4',
        kind: 'text',
    },
    {
        name: 'max-age',
        description: 'Skip the snapshot when every tag holds one image younger than this (e.g. 45m, 1h30m, 5d); for lookup, a hit must be younger than this',
        default: '',
        kind: 'text',
    },
    {
        name: 'key',
        description: 'What the image is built from (e.g. a hash of the setup files), stored in its manifest: a snapshot whose every tag already holds an image with this key (and young enough for max-age) captures nothing',
        default: '',
        kind: 'text',
    },
    {
        name: 'load',
        description: 'pull: load the image into the local Docker (or podman where Docker does not answer), tagged with `from`; a layout is then written only when `output` is set',
        default: 'false',
        kind: 'boolean',
    },
    {
        name: 'persist-env',
        description: "Keep the job's PATH and the variables its steps set in the image's Env (never runner variables or secret-looking names)",
        default: 'true',
        kind: 'boolean',
    },
    {
        name: 'env-mask',
        description: 'Variable names or globs never to keep in the image, one per line (e.g. MY_*)',
        default: '',
        kind: 'list',
    },
    {
        name: 'sbom',
        description: 'Attach a CycloneDX SBOM of every package in the image to it, as an OCI 1.1 referrer (false: none)',
        default: 'true',
        kind: 'boolean',
    },
    {
        name: 'provenance',
        description: 'Attach SLSA v1 provenance (the workflow run, commit and base image) to the image, as an OCI 1.1 referrer (false: none)',
        default: 'true',
        kind: 'boolean',
    },
    {
        name: 'quiet',
        description: 'Log only warnings, errors and the result (no progress, no report)',
        default: 'false',
        kind: 'boolean',
    },
];

;// CONCATENATED MODULE: ./src/inputs/cli.ts



/** The modes that are also subcommands: `promote …` is `--mode promote …`. */
const SUBCOMMANDS = spec_MODES.filter((m) => m !== 'snapshot');
/** Reads flags (outside Actions) over `INPUT_*` variables over defaults; an unknown flag is an error. */
function cli_readRawInputs(argv, env) {
    return readRaw(subcommandArgs(argv), env, true);
}
/** Values of the secret inputs, to mask before the first log line: read leniently, as nothing is checked yet. */
function secretValues(argv, env = process.env) {
    const raw = readRaw(argv, env, false);
    return INPUT_SPECS.filter((s) => s.secret)
        .map((s) => raw[s.name])
        .filter(Boolean);
}
function wantsHelp(argv) {
    return argv.includes('--help') || argv.includes('-h');
}
function helpText() {
    const flags = INPUT_SPECS.map(flagSyntax);
    const width = Math.max(30, ...flags.map((f) => f.length + 1));
    const rows = INPUT_SPECS.map((s, i) => {
        const def = s.default ? ` (default: ${s.default})` : '';
        return `  ${flags[i].padEnd(width)} ${s.description}${def}`;
    });
    return [
        'Usage: node dist/index.js [options]',
        '       node dist/index.js promote --from REF[@DIGEST] --to REF [--to REF ...]',
        '       node dist/index.js pull --from REF [--output DIR] [--load]',
        '       node dist/index.js lookup --image REF [--key KEY] [--max-age DURATION]',
        '',
        'Captures a directory tree as an OCI image. Every option can also be given as the',
        'environment variable INPUT_<NAME> (e.g. INPUT_DRY-RUN=true), as the Actions runner does.',
        '',
        ...rows,
        `  ${'--help'.padEnd(width)} Show this help`,
    ].join('\n');
}
function flagSyntax(s) {
    if (s.kind === 'boolean')
        return `--[no-]${s.name}`;
    return `--${s.name} ${s.values ? `<${s.values.join('|')}>` : '<value>'}`;
}
/** The variable the runner sets for an input: `INPUT_` and the name in upper case, dashes kept. */
function variableName(name) {
    return `INPUT_${name.replace(/ /g, '_').toUpperCase()}`;
}
function readRaw(argv, env, strict) {
    const options = {};
    for (const s of INPUT_SPECS)
        options[s.name] = { type: s.kind === 'boolean' ? 'boolean' : 'string', multiple: s.kind === 'list' };
    let values;
    try {
        // `--no-persist-env` turns a boolean off (`--persist-env false` would read `false` as a stray word).
        ({ values } = (0,external_node_util_.parseArgs)({ args: argv, options, strict, allowPositionals: !strict, allowNegative: true }));
    }
    catch (err) {
        throw new failure/* InputError */.dz(`${err.message.split('\n')[0]}; see --help`);
    }
    const raw = {};
    for (const s of INPUT_SPECS) {
        const flag = values[s.name];
        const fromEnv = env[variableName(s.name)];
        if (Array.isArray(flag))
            raw[s.name] = flag.join('\n');
        else if (typeof flag === 'boolean')
            raw[s.name] = String(flag);
        else if (typeof flag === 'string')
            raw[s.name] = flag;
        else
            raw[s.name] = fromEnv?.trim() ? fromEnv : s.default;
    }
    return raw;
}
/**
 * `promote --from REF --to REF…`, `pull --from REF --output DIR` and `lookup --image REF` are the
 * CLI's spelling of `--mode promote|pull|lookup`, with `--to` for `--image`.
 */
function subcommandArgs(argv) {
    const [first, ...rest] = argv;
    if (!SUBCOMMANDS.includes(first))
        return argv;
    return [
        '--mode',
        first,
        ...rest.map((a) => (a === '--to' ? '--image' : a.startsWith('--to=') ? `--image=${a.slice(5)}` : a)),
    ];
}

;// CONCATENATED MODULE: ./src/inputs/parse.ts

// Generic parsers of one input's value as given (a string); `name` is the input, for the error.
/** One item a line, trimmed; blank lines and `#` comments dropped. */
function parseList(value) {
    return value
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'));
}
/** The YAML 1.2 core schema's booleans, as the Actions toolkit reads them; blank is false. */
function parseBoolean(value, name) {
    const v = value.trim();
    if (['true', 'True', 'TRUE'].includes(v))
        return true;
    if (['false', 'False', 'FALSE', ''].includes(v))
        return false;
    throw new failure/* InputError */.dz(`${name} must be true or false, got "${v}"`);
}
/** A whole number, within `range` when given. */
function parseInteger(value, name, range) {
    const v = value.trim();
    if (!/^-?\d+$/.test(v))
        throw new failure/* InputError */.dz(`${name} must be a whole number, got "${v}"`);
    const n = Number(v);
    if (range && (n < range.min || n > range.max))
        throw new failure/* InputError */.dz(`${name} must be between ${range.min} and ${range.max}, got ${n}`);
    return n;
}
/** One of `allowed`, in any case. */
function parse_parseOneOf(value, name, allowed) {
    const v = value.trim().toLowerCase();
    if (!allowed.includes(v))
        throw new failure/* InputError */.dz(`${name} must be one of ${allowed.join(', ')}, got "${value}"`);
    return v;
}
const DURATION_UNITS = {
    s: 1000,
    m: 60_000,
    h: 3_600_000,
    d: 86_400_000,
    w: 604_800_000,
};
/** `45m`, `1h30m`, `5d`, `90s`: milliseconds. */
function parseDuration(value, name) {
    const v = value.trim();
    if (!/^(\d+[smhdw])+$/.test(v))
        throw new failure/* InputError */.dz(`${name} must be a duration like 45m, 1h30m or 5d, got "${value}"`);
    let ms = 0;
    for (const m of v.matchAll(/(\d+)([smhdw])/g))
        ms += Number(m[1]) * DURATION_UNITS[m[2]];
    if (ms <= 0)
        throw new failure/* InputError */.dz(`${name} must be longer than zero, got "${value}"`);
    if (!Number.isSafeInteger(ms))
        throw new failure/* InputError */.dz(`${name} is too long, got "${value}"`);
    return ms;
}
const SIZE_UNITS = {
    '': 1,
    b: 1,
    k: 1024,
    kb: 1000,
    kib: 1024,
    m: 1024 ** 2,
    mb: 1000 ** 2,
    mib: 1024 ** 2,
    g: 1024 ** 3,
    gb: 1000 ** 3,
    gib: 1024 ** 3,
    t: 1024 ** 4,
    tb: 1000 ** 4,
    tib: 1024 ** 4,
};
/** `512MiB`, `1.5GB`, `1048576`: bytes, at least 1 MiB so a tree never shatters into tiny layers. */
function parseSize(value, name) {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
    const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
    if (!m || unit === undefined)
        throw new failure/* InputError */.dz(`${name} must be a size like 512MiB or 1GB, got "${value}"`);
    const bytes = Math.floor(Number(m[1]) * unit);
    if (bytes < 1024 ** 2)
        throw new failure/* InputError */.dz(`${name} must be at least 1MiB, got "${value}"`);
    if (!Number.isSafeInteger(bytes))
        throw new failure/* InputError */.dz(`${name} is too large, got "${value}"`);
    return bytes;
}

;// CONCATENATED MODULE: ./src/registry/reference.ts
/**
 * Image references, by the grammar of distribution's `reference` package, with Docker Hub's
 * normalisation (`ubuntu` → `docker.io/library/ubuntu`).
 */

/** An image reference that does not parse, or names what it may not (not the built-in ReferenceError). */
class BadReferenceError extends failure/* UserError */.yo {
}
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;
const DOCKER_HUB = 'docker.io';
function parseReference(input) {
    const ref = input.trim();
    const bad = (why) => new BadReferenceError(`invalid image reference "${ref}": ${why}`);
    if (!ref)
        throw bad('it is empty');
    if (ref.length > 255 + 128 + 80)
        throw bad('it is too long');
    let rest = ref;
    let digest;
    const at = rest.indexOf('@');
    if (at >= 0) {
        digest = rest.slice(at + 1);
        rest = rest.slice(0, at);
        if (!DIGEST.test(digest))
            throw bad(`"${digest}" is not a digest (algorithm:hex)`);
    }
    let tag;
    const lastSlash = rest.lastIndexOf('/');
    const colon = rest.indexOf(':', lastSlash + 1);
    if (colon >= 0) {
        tag = rest.slice(colon + 1);
        rest = rest.slice(0, colon);
        if (!TAG.test(tag))
            throw bad(`tag "${tag}" must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}`);
    }
    let registry = DOCKER_HUB;
    let path = rest;
    const slash = rest.indexOf('/');
    const first = slash >= 0 ? rest.slice(0, slash) : '';
    // Like docker: the first component is a registry when it looks like a host (a dot, a port) or is localhost.
    if (slash >= 0 &&
        (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
        registry = first;
        path = rest.slice(slash + 1);
        if (!HOST.test(registry))
            throw bad(`"${registry}" is not a registry host`);
        checkHost(registry, bad);
    }
    if (registry === 'index.docker.io' || registry === 'registry-1.docker.io')
        registry = DOCKER_HUB;
    if (!path)
        throw bad('the repository name is missing');
    if (path !== path.toLowerCase())
        throw bad('repository names must be lowercase');
    for (const c of path.split('/')) {
        if (!COMPONENT.test(c))
            throw bad(`"${c}" is not a valid repository path component`);
    }
    if (registry === DOCKER_HUB && !path.includes('/'))
        path = `library/${path}`;
    if (registry.length + 1 + path.length > 255)
        throw bad('the repository name is longer than 255 characters');
    return { registry, repository: path, tag, digest };
}
/**
 * What the grammar lets through but a URL cannot hold: a port outside 1-65535, an IPv6 address or
 * an IPv4-looking host that does not parse. Found here, so the registry client's `new URL` never
 * throws its bare "Invalid URL".
 */
function checkHost(registry, bad) {
    const port = /:(\d+)$/.exec(registry.replace(/^\[.*\]/, ''))?.[1];
    if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535))
        throw bad(`port ${port} is out of range (1-65535)`);
    try {
        new URL(`https://${registry}/`);
    }
    catch {
        throw bad(`"${registry}" is not a valid host name or address`);
    }
}
/**
 * The references an image is pushed to: at least one, each with a tag, in any repositories and
 * registries. A reference given twice is pushed once.
 */
function parseTargets(lines) {
    const seen = new Set();
    const targets = [];
    for (const line of lines) {
        const r = parseReference(line);
        if (r.digest)
            throw new BadReferenceError(`image "${format(r)}" names a digest; name a tag to push to (digests are computed)`);
        const target = { ...r, tag: r.tag ?? 'latest' };
        if (seen.has(format(target)))
            continue;
        seen.add(format(target));
        targets.push(target);
    }
    return targets;
}
/**
 * Targets grouped by registry, then by repository, each group in the order its first target was
 * given: a blob goes once to each registry and is mounted into its other repositories.
 */
function groupTargets(targets) {
    const registries = new Map();
    for (const t of targets) {
        let registry = registries.get(t.registry);
        if (!registry)
            registries.set(t.registry, (registry = { targets: [], repositories: new Map() }));
        registry.targets.push(t);
        const repository = registry.repositories.get(t.repository) ?? [];
        registry.repositories.set(t.repository, [...repository, t]);
    }
    return [...registries].map(([registry, g]) => ({
        registry,
        targets: g.targets,
        repositories: [...g.repositories].map(([repository, ts]) => ({
            name: `${registry}/${repository}`,
            repository,
            targets: ts,
        })),
    }));
}
function format(r) {
    return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

;// CONCATENATED MODULE: ./src/inputs/validate.ts







// Checks of inputs that name images, paths and globs: each takes the value as given and returns it
// checked (and resolved), or throws an InputError that says what to do, before anything is written.
/** `image` lines: references in one repository, a tag defaulting to latest. */
function targetsInput(images) {
    try {
        return images.length ? parseTargets(images) : [];
    }
    catch (err) {
        throw new failure/* InputError */.dz(err.message);
    }
}
/** One image reference, a tag defaulting to latest. */
function referenceInput(ref, name) {
    try {
        const r = parseReference(ref);
        if (!r.tag && !r.digest)
            r.tag = 'latest';
        return r;
    }
    catch (err) {
        throw new failure/* InputError */.dz(`${name}: ${err.message}`);
    }
}
/** A reference kept as written ('' for none), once it is known to parse. */
function checkedReference(ref, name) {
    if (!ref)
        return '';
    try {
        parseReference(ref);
    }
    catch (err) {
        throw new failure/* InputError */.dz(`${name}: ${err.message}`);
    }
    return ref;
}
/**
 * `exclude`/`include` lines, checked here so that no glob reaches the walk that would fail there or
 * silently match nothing: `/` alone (the whole root), a leading `!` (picomatch would negate it),
 * `.`/`..` components (never in a walked path), and globs picomatch cannot compile.
 */
function pathPatterns(value, name) {
    const patterns = parseList(value);
    for (const p of patterns) {
        const rel = relativePattern(p).replace(/^(\.\/+)+/, '');
        if (rel === '' || rel === '.') {
            throw new failure/* InputError */.dz(name === 'exclude'
                ? `exclude "${p}" would leave out the whole root; name what to leave out below it (e.g. /var/cache)`
                : `include "${p}" would keep everything, credentials and /proc too; name what to keep (e.g. /root/.docker/config.json)`);
        }
        if (rel.split('/').some((c) => c === '..' || c === '.'))
            throw new failure/* InputError */.dz(`${name} "${p}": "." and ".." never match a captured path; write the path without them`);
        checkGlob(rel, name, p);
    }
    return patterns;
}
/** `env-mask` lines: variable names or globs. */
function globList(value, name) {
    const patterns = parseList(value);
    for (const p of patterns)
        checkGlob(p, name, p);
    return patterns;
}
function checkGlob(glob, name, asWritten) {
    if (picomatch_default().scan(glob).negated) {
        throw new failure/* InputError */.dz(`${name} "${asWritten}": a leading "!" would match everything else; ${name === 'exclude' ? 'use include to keep paths, or ' : ''}write "\\!" for a name that starts with "!"`);
    }
    try {
        // `debug` makes picomatch throw instead of quietly compiling the glob to match nothing.
        picomatch_default().makeRe(glob, { dot: true, debug: true });
    }
    catch {
        throw new failure/* InputError */.dz(`${name} "${asWritten}" is not a valid glob (an unclosed brace or bracket, a range out of order, a trailing backslash, or too long); fix it or escape the character with a backslash`);
    }
}
/** `from: oci:DIR[:TAG]`: an OCI layout that must be there to be read; undefined for any other `from`. */
function layoutInput(from) {
    if (!from.startsWith('oci:'))
        return undefined;
    const match = /^oci:([^:]+)(?::(.+))?$/.exec(from);
    if (!match)
        throw new failure/* InputError */.dz(`from "${from}" must be oci:DIR or oci:DIR:TAG`);
    const dir = external_node_path_default().resolve(match[1]);
    if (!statOf(external_node_path_default().join(dir, 'index.json'), 'from')?.isFile())
        throw new failure/* InputError */.dz(`from ${from}: ${dir} is not an OCI image layout (no index.json); name the output directory of a dry run or a pull`);
    return { dir, tag: match[2] ?? 'latest' };
}
/**
 * `metadata-file`: written at the end, so checked now: not a directory, in a directory that exists
 * (it is not made, like docker buildx's `--metadata-file`) and can be written, not inside the layout
 * that replaces `output` whole.
 */
function metadataFileInput(value, layoutOutput) {
    if (!value)
        return '';
    const file = external_node_path_default().resolve(value);
    const name = 'metadata-file';
    const st = statOf(file, name);
    if (st?.isDirectory())
        throw new failure/* InputError */.dz(`${name} ${file} is a directory; name a file (e.g. ${external_node_path_default().join(file, 'metadata.json')})`);
    if (st && !st.isFile())
        throw new failure/* InputError */.dz(`${name} ${file} exists and is not a regular file; choose another path`);
    if (layoutOutput && (file === layoutOutput || file.startsWith(layoutOutput + (external_node_path_default()).sep)))
        throw new failure/* InputError */.dz(`${name} ${file} is inside output ${layoutOutput}, which is replaced whole; put it elsewhere`);
    const dir = external_node_path_default().dirname(file);
    const parent = statOf(dir, name);
    if (!parent)
        throw new failure/* InputError */.dz(`${name} ${file}: directory ${dir} does not exist; create it first (it is not made for you) or choose another path`);
    if (!parent.isDirectory())
        throw new failure/* InputError */.dz(`${name} ${file}: ${dir} is not a directory`);
    try {
        (0,external_node_fs_.accessSync)(dir, external_node_fs_.constants.W_OK);
    }
    catch (err) {
        throw new failure/* InputError */.dz(`${name} ${file}: directory ${dir} cannot be written (${err.code}); choose one this step can write to`);
    }
    return file;
}
/** The baseline file: made by the pre step (with its directory), so only what is in the way counts. */
function baselineInput(file) {
    if (!file)
        return '';
    const st = statOf(file, 'baseline');
    if (st && !st.isFile())
        throw new failure/* InputError */.dz(`baseline ${file} exists and is not a regular file; name a file`);
    checkParents(file, 'baseline');
    return file;
}
/** The nearest existing directory above `p` must be a directory (the rest can be made). */
function checkParents(p, name) {
    for (let dir = external_node_path_default().dirname(p);; dir = external_node_path_default().dirname(dir)) {
        const st = statOf(dir, name);
        if (st?.isDirectory())
            return;
        if (st)
            throw new failure/* InputError */.dz(`${name} ${p}: ${dir} is not a directory; choose another path`);
        if (dir === external_node_path_default().dirname(dir))
            return;
    }
}
/** lstat-free stat (a symlink to a directory is one): undefined when nothing is there. */
function statOf(p, name) {
    try {
        return (0,external_node_fs_.statSync)(p);
    }
    catch (err) {
        const code = err.code;
        if (code === 'ENOENT' || code === 'ENOTDIR')
            return undefined;
        throw new failure/* InputError */.dz(`${name} ${p} cannot be checked (${code}); choose another path`);
    }
}
/** Longest `key`: a hash is 64 characters; room for a few joined with a prefix. */
const KEY_LIMIT = 1024;
/**
 * `key`: one line of text, kept as given once trimmed ('' for none). A line break or another control
 * character is refused: an expression that joined several lines is a mistake, and an annotation
 * holding one would not compare as the user reads it.
 */
function keyInput(value) {
    const key = value.trim();
    if (/[\u0000-\u001f\u007f]/.test(key))
        throw new failure/* InputError */.dz('key holds a line break or another control character; give one line (e.g. a hash of the files the image is built from)');
    if (key.length > KEY_LIMIT)
        throw new failure/* InputError */.dz(`key is ${key.length} characters long, over ${KEY_LIMIT}; hash what it names instead (e.g. hashFiles)`);
    return key;
}

;// CONCATENATED MODULE: ./src/inputs/index.ts












/** Reads flags (outside Actions) over `INPUT_*` variables over defaults, then validates everything. */
function getInputs(argv, env = process.env) {
    const raw = cli_readRawInputs(argv, env);
    const mode = parse_parseOneOf(raw.mode, 'mode', spec_MODES);
    const load = parseBoolean(raw.load, 'load');
    if (load && mode !== 'pull')
        throw new failure/* InputError */.dz(`load is for mode pull (it loads the pulled image into Docker or podman), not ${mode}`);
    const common = commonInputs(raw, env, mode);
    if (common.key && mode !== 'snapshot' && mode !== 'lookup')
        throw new failure/* InputError */.dz(`key is for modes snapshot and lookup; ${mode} copies an image as it is`);
    const targets = targetsInput(parseList(raw.image));
    if (mode === 'snapshot') {
        if (targets.length === 0 && !common.dryRun)
            throw new failure/* InputError */.dz('image is required (or set dry-run to write a layout instead)');
        const sbom = parseBoolean(raw.sbom, 'sbom');
        const provenance = parseBoolean(raw.provenance, 'provenance');
        return { mode, targets, sbom, provenance, ...common };
    }
    if (mode === 'lookup') {
        if (!targets[0])
            throw new failure/* InputError */.dz('lookup needs image: the tag to look at');
        if (common.metadataFile)
            throw new failure/* InputError */.dz('lookup writes nothing, no metadata-file either: read its outputs hit, digest, created and key');
        return { mode, target: targets[0], ...common };
    }
    const source = sourceInput(raw.from, mode);
    if (mode === 'pull') {
        if (source.kind === 'layout')
            throw new failure/* InputError */.dz('pull reads from a registry; from: oci:… is already a layout');
        return { mode, source, load, writeLayout: pullWritesLayout(raw), ...common };
    }
    const [first, ...rest] = targets;
    if (!first)
        throw new failure/* InputError */.dz('promote needs image (or --to): where to copy the image');
    return { mode, targets: [first, ...rest], source, ...common };
}
/**
 * The pre step's inputs: those of a snapshot, or null for promote, pull and lookup, which record no
 * baseline. The image and the source are not needed yet: the main step checks them.
 */
function getPreInputs(argv, env = process.env) {
    const raw = readRawInputs(argv, env);
    const mode = parseOneOf(raw.mode, 'mode', MODES);
    return mode === 'snapshot' ? commonInputs(raw, env, mode) : null;
}
/**
 * A pull writes its layout unless it loads into a runtime, and then only when `output` is set: to
 * anything but its default, since the runner passes the default for an input left unset.
 */
function pullWritesLayout(raw) {
    const output = raw.output.trim();
    return !parseBoolean(raw.load, 'load') || (output !== '' && output !== OUTPUT_DEFAULT);
}
function sourceInput(from, mode) {
    const layout = layoutInput(from.trim());
    if (layout)
        return { kind: 'layout', ...layout };
    if (!from.trim())
        throw new failure/* InputError */.dz(`${mode} needs from: the image to ${mode}`);
    return { kind: 'registry', reference: referenceInput(from, 'from') };
}
function commonInputs(raw, env, mode) {
    const compression = parse_parseOneOf(raw.compression, 'compression', COMPRESSIONS);
    if (compression === 'zstd' && !zstdAvailable()) {
        throw new failure/* InputError */.dz(`compression zstd needs Node.js 22.15 or newer (this is ${process.version}); use gzip`);
    }
    const levels = LEVELS[compression];
    const compressionLevel = raw['compression-level']
        ? parseInteger(raw['compression-level'], 'compression-level')
        : levels.default;
    if (compression !== 'none' && (compressionLevel < levels.min || compressionLevel > levels.max)) {
        throw new failure/* InputError */.dz(`compression-level ${compressionLevel} is out of range for ${compression} (${levels.min}-${levels.max})`);
    }
    const dryRun = parseBoolean(raw['dry-run'], 'dry-run');
    const output = external_node_path_default().resolve(raw.output.trim() || OUTPUT_DEFAULT);
    const writesLayout = (mode === 'pull' && pullWritesLayout(raw)) || (mode === 'snapshot' && dryRun);
    if (writesLayout)
        checkParents(output, 'output');
    return {
        root: external_node_path_default().resolve(raw.root.trim() || '/'),
        dryRun,
        output,
        exclude: pathPatterns(raw.exclude, 'exclude'),
        include: pathPatterns(raw.include, 'include'),
        compression,
        compressionLevel,
        metadataFile: metadataFileInput(raw['metadata-file'].trim(), writesLayout ? output : ''),
        baseImage: checkedReference(raw['base-image'].trim() || env.SNAPSHOT_BASE_IMAGE?.trim() || '', 'base-image'),
        changes: parse_parseOneOf(raw.changes, 'changes', CHANGE_MODES),
        baseline: baselineInput(raw.baseline.trim()
            ? external_node_path_default().resolve(raw.baseline.trim())
            : env.RUNNER_TEMP
                ? external_node_path_default().join(env.RUNNER_TEMP, 'depot-snapshot-baseline.gz')
                : ''),
        baselineGiven: raw.baseline.trim() !== '',
        upper: raw.upper.trim() ? external_node_path_default().resolve(raw.upper.trim()) : '',
        layerSize: parseSize(raw['layer-size'], 'layer-size'),
        maxLayers: parseInteger(raw['max-layers'], 'max-layers', MAX_LAYERS),
        token: raw.token.trim(),
        username: raw.username.trim(),
        password: raw.password,
        insecureRegistry: parseBoolean(raw['insecure-registry'], 'insecure-registry'),
        concurrency: parseInteger(raw.concurrency, 'concurrency', CONCURRENCY),
        maxAge: raw['max-age'].trim() ? parseDuration(raw['max-age'], 'max-age') : 0,
        key: keyInput(raw.key),
        persistEnv: parseBoolean(raw['persist-env'], 'persist-env'),
        envMask: globList(raw['env-mask'], 'env-mask'),
        quiet: parseBoolean(raw.quiet, 'quiet'),
    };
}

// EXTERNAL MODULE: ./node_modules/@actions/core/lib/core.js + 14 modules
var core = __webpack_require__(6421);
;// CONCATENATED MODULE: ./src/runner.ts
/**
 * Everything that speaks the Actions runner's protocol: the log (with groups and debug lines), the
 * outputs, the job summary. Outside Actions the same calls print plain lines.
 */

const inActions = () => process.env.GITHUB_ACTIONS === 'true';
const coreLogger = makeLogger({ quiet: false });
/**
 * The run's log: info lines unless `quiet`; debug lines as the runner shows them (only with debug
 * logging on), and outside Actions only when RUNNER_DEBUG=1, as `debug: …`.
 */
function makeLogger(opts) {
    const debugOn = process.env.RUNNER_DEBUG === '1';
    return {
        info: (m) => {
            if (!opts.quiet)
                core/* info */.pq(m);
        },
        warn: (m) => core/* warning */.$e(m),
        debug: (m) => {
            if (inActions())
                core/* debug */.Yz(m);
            // Every line of a multi-line message (a stack trace) marked, so none passes for a log line.
            else if (debugOn)
                process.stdout.write(m.replace(/^/gm, 'debug: ') + '\n');
        },
    };
}
/** Sets outputs; outside Actions also prints them as `name=value` lines for scripts. */
function setOutputs(outputs) {
    for (const [name, value] of Object.entries(outputs)) {
        if (process.env.GITHUB_OUTPUT)
            core/* setOutput */.uH(name, value);
    }
    if (!inActions()) {
        for (const [name, value] of Object.entries(outputs))
            process.stdout.write(`${name}=${value}\n`);
    }
}
/** A log group (collapsed in the runner's log; `::group::` lines outside it). */
function group(title, fn) {
    return core/* group */.Os(title, fn);
}
/** Tells the runner to mask a secret in every later line (outside Actions that would print it). */
function maskSecret(secret) {
    if (inActions())
        core/* setSecret */.Pq(secret);
}
/** What the pre step saved for this step (`core.saveState`), or ''. */
function savedState(name) {
    return core/* getState */.Gu(name);
}
/** The job summary in Actions (when the runner gives a summary file), else the plain-text report. */
async function publishSummary(markdown, text, quiet) {
    if (process.env.GITHUB_STEP_SUMMARY)
        await core/* summary */.z.addRaw(markdown, true).write();
    if (!inActions() && !quiet)
        process.stdout.write('\n' + text + '\n\n');
}

;// CONCATENATED MODULE: ./src/privileges.ts





/**
 * Capturing `/` needs root: `/root`, `/etc/shadow` and friends are unreadable to anyone else. When the
 * step runs as a normal user with passwordless sudo (GitHub-hosted runners), it runs itself again
 * under sudo; the files it writes are then handed back to the calling user.
 */
/** Set in the environment of the run under sudo, so it never tries again. */
const UNDER_SUDO = 'SNAPSHOT_UNDER_SUDO';
/** Some of the tree cannot be read by this user: the capture would not be faithful. */
class NeedsRootError extends failure/* UserError */.yo {
    paths;
    rootMayHelp = true;
    constructor(paths) {
        const first = paths.slice(0, 3).map((p) => '/' + show(p));
        super(`${paths.length} path(s) cannot be read as uid ${process.geteuid?.()} (${first.join(', ')}${paths.length > 3 ? ', …' : ''}): capturing this tree needs root; run the step as root or with passwordless sudo`);
        this.paths = paths;
    }
}
const isRoot = () => (process.geteuid?.() ?? 0) === 0;
/** True in the process that `rerunUnderSudo` started. */
const underSudo = () => process.env[UNDER_SUDO] === '1' && isRoot();
/** Whether `sudo` would run us without a password, keeping the environment. */
function sudoWorks() {
    if (isRoot() || process.env[UNDER_SUDO])
        return false;
    const probe = (0,external_node_child_process_.spawnSync)('sudo', ['-n', '-E', 'true'], { stdio: 'ignore', timeout: 10_000 });
    return probe.status === 0;
}
/**
 * Runs this same command again under `sudo -E` and resolves with its exit code, or null when sudo
 * cannot run it without a password. PATH is passed explicitly: sudo's secure_path would reset it, and
 * the job's PATH is what the image's Env keeps.
 */
async function rerunUnderSudo(log) {
    if (!sudoWorks())
        return null;
    log.info('some files are readable only by root: running the capture again under sudo');
    const args = ['-n', '-E', '--', 'env', `PATH=${process.env.PATH ?? ''}`, `${UNDER_SUDO}=1`];
    args.push(process.execPath, ...process.execArgv, process.argv[1], ...process.argv.slice(2));
    return new Promise((resolve) => {
        const child = (0,external_node_child_process_.spawn)('sudo', args, { stdio: 'inherit' });
        // A cancelled job signals this process; sudo passes it on to the run under it, which cleans up.
        const forward = (signal) => child.kill(signal);
        for (const signal of ['SIGTERM', 'SIGINT'])
            process.prependListener(signal, forward);
        child.on('error', () => resolve(null));
        child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
}
/**
 * Under sudo, gives what this run wrote (layout, metadata file, baseline, layer cache) to the user who
 * ran sudo, so later steps running as that user can read and replace it.
 */
async function returnToCaller(paths, log) {
    if (!underSudo())
        return;
    const uid = Number(process.env.SUDO_UID);
    const gid = Number(process.env.SUDO_GID);
    if (!Number.isInteger(uid) || !Number.isInteger(gid))
        return;
    for (const p of paths.filter(Boolean)) {
        await chownTree(external_node_path_default().resolve(p), uid, gid).catch((err) => log.warn(`could not give ${p} back to uid ${uid}: ${err.code ?? err.message}`));
    }
}
async function chownTree(p, uid, gid) {
    const st = await (0,promises_.lstat)(p).catch(() => null);
    if (!st)
        return;
    await (0,promises_.lchown)(p, uid, gid);
    if (!st.isDirectory())
        return;
    for (const name of await (0,promises_.readdir)(p))
        await chownTree(external_node_path_default().join(p, name), uid, gid);
}
/**
 * How the main and the pre step end on an error: run again under sudo when reading as root may help
 * and sudo allows it (the exit code is then that run's), else one error line and exit 1.
 */
async function failOrRerunAsRoot(err, log) {
    if (err instanceof failure/* UserError */.yo && err.rootMayHelp && !isRoot()) {
        const code = await rerunUnderSudo(log);
        if (code !== null) {
            process.exitCode = code;
            return;
        }
    }
    (0,failure/* reportFailure */.xV)(err, log.debug);
}

;// CONCATENATED MODULE: ./src/util/format.ts
/** `512 B`, `1.5 MiB`: sizes as the log and the summary show them. */
function formatBytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
        n /= 1024;
        i++;
    }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
/** `1h30m`, `5d`, `45s`: a duration in milliseconds as `max-age` is written (whole seconds). */
function formatDuration(ms) {
    const units = [
        ['d', 86_400_000],
        ['h', 3_600_000],
        ['m', 60_000],
        ['s', 1000],
    ];
    let rest = Math.round(ms / 1000) * 1000;
    let out = '';
    for (const [unit, size] of units) {
        const n = Math.floor(rest / size);
        if (n)
            out += `${n}${unit}`;
        rest -= n * size;
    }
    return out || '0s';
}

;// CONCATENATED MODULE: ./src/progress.ts

/** Seconds between progress lines in a log; `SNAPSHOT_PROGRESS_SECONDS` changes it (0: never). */
const LOG_INTERVAL_MS = 1000 * Number(process.env.SNAPSHOT_PROGRESS_SECONDS ?? 5);
const BAR_INTERVAL_MS = 250;
/**
 * Tells a waiting user how a long phase is going: a line every few seconds in a log (entries walked,
 * bytes read and compressed, MB/s, ETA), or one line redrawn in place on a terminal.
 */
class Progress {
    log;
    terminal;
    enabled;
    counters = { entries: 0, read: 0, compressed: 0 };
    timer;
    phase = '';
    total = 0;
    startedAt = 0;
    startRead = 0;
    barShown = false;
    constructor(log, terminal, enabled = true) {
        this.log = log;
        this.terminal = terminal;
        this.enabled = enabled;
    }
    /** A logger whose lines first clear the bar, so the two never share a line. */
    wrap(log) {
        const clear = () => this.clearBar();
        return {
            info: (m) => (clear(), log.info(m)),
            warn: (m) => (clear(), log.warn(m)),
            debug: (m) => (clear(), log.debug(m)),
        };
    }
    /** Starts reporting on `phase`; `total` is the bytes it will read, when known (for the ETA). */
    start(phase, total = 0) {
        this.stop();
        this.phase = phase;
        this.total = total;
        this.startedAt = Date.now();
        this.startRead = this.counters.read;
        const interval = this.terminal ? BAR_INTERVAL_MS : LOG_INTERVAL_MS;
        if (!this.enabled || interval <= 0)
            return;
        this.timer = setInterval(() => this.tick(), interval);
        this.timer.unref();
    }
    stop() {
        if (this.timer)
            clearInterval(this.timer);
        this.timer = undefined;
        this.clearBar();
    }
    /** What the phase has done so far, as one line. */
    line(now = Date.now()) {
        const seconds = Math.max((now - this.startedAt) / 1000, 0.001);
        const { entries, read, compressed } = this.counters;
        if (this.phase === 'walk')
            return `walk: ${entries.toLocaleString('en-US')} entries looked at`;
        const done = read - this.startRead;
        const rate = done / seconds;
        const parts = [`layers: ${formatBytes(done)}`];
        if (this.total)
            parts[0] += ` of ${formatBytes(this.total)} (${Math.min(100, (100 * done) / this.total).toFixed(0)} %)`;
        parts.push(`${formatBytes(compressed)} compressed`, `${(rate / 1e6).toFixed(1)} MB/s`);
        if (this.total && rate > 0 && done < this.total)
            parts.push(`ETA ${eta((this.total - done) / rate)}`);
        return parts.join(', ');
    }
    tick() {
        if (!this.terminal)
            return this.log.info(this.line());
        const text = this.line().slice(0, Math.max(20, (this.terminal.columns || 80) - 1));
        this.terminal.write(`\r\x1b[K${text}`);
        this.barShown = true;
    }
    clearBar() {
        if (!this.barShown || !this.terminal)
            return;
        this.terminal.write('\r\x1b[K');
        this.barShown = false;
    }
}
function eta(seconds) {
    if (seconds < 60)
        return `${Math.ceil(seconds)} s`;
    const m = Math.floor(seconds / 60);
    return m < 60 ? `${m} min ${Math.round(seconds % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

;// CONCATENATED MODULE: ./src/summary.ts



/** One line for the log and the summary: what was merged and why. */
function describeCompaction(c) {
    return `compacted: the top ${c.merged} layers of the base (made by earlier snapshots, ${formatBytes(c.bytes)}) merged into this snapshot's, their ${c.paths} paths captured again from the tree, to stay within max-layers ${c.maxLayers}; the ${c.kept} layers below are kept as they are`;
}
/** How many directories the "where the bytes are" table lists, and how deep it looks. */
const LARGEST = 15;
const DEPTH = 3;
/**
 * File bytes per directory (with everything below it, up to `DEPTH` levels from the root) and per
 * top-level directory: where an image's size comes from, so its owner can slim it.
 */
function whereTheBytesAre(entries) {
    const perDir = new Map();
    const add = (key, n) => perDir.set(key, (perDir.get(key) ?? 0) + n);
    // Walk order keeps a directory's files together: each run of them is counted at once.
    let run = null;
    let runBytes = 0;
    const flush = () => {
        if (run === null)
            return;
        if (run.length === 0)
            add('', runBytes); // files at the top
        for (let slash = -1, depth = 0; run.length && depth < DEPTH; depth++) {
            slash = run.indexOf(0x2f, slash + 1);
            add(run.toString('latin1', 0, slash < 0 ? run.length : slash), runBytes);
            if (slash < 0)
                break;
        }
    };
    for (let i = 0; i < entries.length; i++) {
        const size = entries.size(i);
        if (size === 0 || entries.kind(i) !== 'file')
            continue;
        const parent = entries.dirOf(i);
        if (run === null || (parent !== run && !parent.equals(run))) {
            flush();
            run = parent;
            runBytes = 0;
        }
        runBytes += size;
    }
    flush();
    const shown = (key) => show(Buffer.from('/' + key, 'latin1'));
    const sorted = [...perDir].filter(([k]) => k !== '').sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const largest = sorted.slice(0, LARGEST).map(([k, bytes]) => ({ path: shown(k), bytes }));
    const topLevel = [...perDir]
        .filter(([k]) => !k.includes('/'))
        .sort((a, b) => b[1] - a[1])
        .map(([k, bytes]) => ({ name: k === '' ? '(files in /)' : shown(k), bytes }));
    return { largest, topLevel };
}
/** The job summary: Markdown (with HTML where tables need it) that GitHub renders on the run page. */
function markdownReport(r) {
    const out = [];
    const code = (s) => `<code>${html(s)}</code>`;
    out.push(`## Snapshot ${r.pushed ? 'pushed' : 'written'}: ${code(r.destination)}`, '');
    out.push('| | |', '| --- | --- |');
    for (const [k, v] of overview(r, code))
        out.push(`| ${k} | ${v} |`);
    out.push('');
    if (r.setup)
        out.push(...markdownSetup(r.setup));
    out.push('### Layers', '');
    out.push('| # | subtree | entries | content | compressed | |', '| ---: | --- | ---: | ---: | ---: | --- |');
    if (r.base)
        out.push(`| 1–${r.base.layers} | base image | | | | inherited |`);
    r.layers.forEach((l, i) => out.push(`| ${(r.base?.layers ?? 0) + i + 1} | ${code(l.label)} | ${l.entries} | ${formatBytes(l.bytes)} | ${formatBytes(l.compressed)} | ${l.how} |`));
    out.push('');
    if (r.largest.length) {
        out.push('### Where the bytes are', '');
        const pie = pieSlices(r.topLevel);
        if (pie.length > 1) {
            out.push('```mermaid', `pie showData title Captured file bytes (MB) by top-level directory`);
            for (const s of pie)
                out.push(`  "${s.name.replace(/"/g, "'")}" : ${(s.bytes / 1e6).toFixed(1)}`);
            out.push('```', '');
        }
        out.push(`The ${r.largest.length} largest directories captured, with everything below them (${DEPTH} levels deep):`, '');
        out.push('| directory | size |', '| --- | ---: |');
        for (const d of r.largest)
            out.push(`| ${code(d.path)} | ${formatBytes(d.bytes)} |`);
        out.push('');
    }
    if (r.excluded.length) {
        out.push('### Left out', '');
        for (const line of r.excluded)
            out.push(`- ${html(line)}`);
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
    for (const p of r.phases)
        out.push(`| ${p.name} | ${seconds(p.ms)} |`);
    out.push(`| **total** | ${seconds(total(r))} |`, '');
    out.push(throughput(r), '');
    return out.join('\n');
}
/** The same report as plain text, for a terminal or a CI log outside GitHub Actions. */
function textReport(r) {
    const out = [`Snapshot ${r.pushed ? 'pushed' : 'written'}: ${r.destination}`];
    const rows = overview(r, (s) => s);
    const width = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows)
        out.push(`  ${k.padEnd(width)}  ${v}`);
    if (r.setup)
        out.push('', ...textSetup(r.setup));
    out.push('', 'Layers:');
    const table = [['#', 'subtree', 'entries', 'content', 'compressed', '']];
    if (r.base)
        table.push([`1-${r.base.layers}`, 'base image', '', '', '', 'inherited']);
    r.layers.forEach((l, i) => table.push([
        String((r.base?.layers ?? 0) + i + 1),
        l.label,
        String(l.entries),
        formatBytes(l.bytes),
        formatBytes(l.compressed),
        l.how,
    ]));
    out.push(...columns(table, [true, false, true, true, true, false]));
    if (r.largest.length) {
        out.push('', `Largest directories (with everything below them, ${DEPTH} levels deep):`);
        out.push(...columns(r.largest.map((d) => [formatBytes(d.bytes), d.path]), [true, false]));
    }
    if (r.excluded.length)
        out.push('', 'Left out:', ...r.excluded.map((l) => `  ${l}`));
    if (r.env) {
        out.push('', `Environment kept: ${r.env.kept.join(', ') || 'nothing new'}`);
        if (r.env.masked.length)
            out.push(`Environment left out: ${r.env.masked.map((m) => `${m.name} (${m.reason})`).join(', ')}`);
    }
    out.push('', 'Time:');
    out.push(...columns([...r.phases.map((p) => [p.name, seconds(p.ms)]), ['total', seconds(total(r))]], [false, true]));
    out.push(throughput(r));
    return out.join('\n');
}
function overview(r, code) {
    const rows = [
        ['image', code(`${r.destination}@${r.digest}`)],
        ['tags', r.tags.join(', ')],
        ['base', r.base ? `${code(r.base.name)}${r.base.digest ? ` ${code(r.base.digest)}` : ''}` : 'none'],
    ];
    const counts = r.changes.method === 'full'
        ? `${r.captured.entries} entries`
        : `${r.changes.changed ?? 0} new or changed, ${r.changes.deleted ?? 0} deleted`;
    rows.push(['changes', `${r.changes.method} (${counts}): ${r.changes.reason}`]);
    if (r.compaction)
        rows.push(['compaction', describeCompaction(r.compaction)]);
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
function pieSlices(topLevel) {
    const slices = topLevel.slice(0, 7);
    const rest = topLevel.slice(7).reduce((n, t) => n + t.bytes, 0);
    return rest > 0 ? [...slices, { name: 'other', bytes: rest }] : slices;
}
function throughput(r) {
    const layers = r.phases.find((p) => p.name === 'layers')?.ms ?? 0;
    const rate = layers > 0 ? `, ${(r.captured.bytes / 1e6 / (layers / 1000)).toFixed(1)} MB/s while writing layers` : '';
    return `Captured ${r.captured.entries} entries, ${formatBytes(r.captured.bytes)} of file content${rate}.`;
}
function total(r) {
    return r.phases.reduce((n, p) => n + p.ms, 0);
}
function seconds(ms) {
    return `${(ms / 1000).toFixed(1)} s`;
}
/** Left- or right-aligned columns, two spaces apart, indented by two. */
function columns(rows, right) {
    const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
    return rows.map((row) => '  ' +
        row
            .map((cell, c) => (right[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
            .join('  ')
            .trimEnd());
}
function html(s) {
    return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\|/g, '&#124;');
}
/** What the walk left out, grouped by reason, with the first few paths of each. */
function describeExclusions(excluded, sockets) {
    const byReason = new Map();
    for (const e of excluded) {
        const list = byReason.get(e.reason) ?? [];
        // Shortened: a path left out for its length is thousands of bytes.
        list.push(showShortened(Buffer.concat([Buffer.from('/'), e.path])));
        byReason.set(e.reason, list);
    }
    if (sockets.length)
        byReason.set('socket (cannot be stored in an image)', sockets.map((s) => show(Buffer.concat([Buffer.from('/'), s]))));
    const lines = [];
    for (const [reason, paths] of byReason) {
        const shown = paths.slice(0, 5).join(', ');
        lines.push(`${reason}: ${paths.length} (${shown}${paths.length > 5 ? ', …' : ''})`);
    }
    return lines;
}
/** How each ecosystem is named in the report, one and many. */
const ECOSYSTEM_NOUNS = {
    deb: ['apt package', 'apt packages'],
    apk: ['apk package', 'apk packages'],
    npm: ['npm global', 'npm globals'],
    pypi: ['Python package', 'Python packages'],
    toolcache: ['tool cache version', 'tool cache versions'],
};
const ECOSYSTEMS = Object.keys(ECOSYSTEM_NOUNS);
/** Longer lists are folded in the job summary. */
const FOLD_AFTER = 10;
const noun = (e, n) => `${n} ${ECOSYSTEM_NOUNS[e][n === 1 ? 0 : 1]}`;
const toolName = (p) => `${p.name} ${p.version}${p.arch ? ` (${p.arch})` : ''}`;
const BEFORE = {
    baseline: "compared with the inventory the pre step recorded before the job's steps",
    overlay: "compared with the overlay's lower dirs (the tree before the job's changes)",
    none: 'no record from the pre step and no readable overlay lower dirs to compare with',
};
/**
 * One line: counts per ecosystem, tool cache versions by name, PATH entries gained and lost
 * ("140 apt packages added, 3 upgraded; 1 npm global added; node 22.1.0 (x64) added to the tool cache; PATH gained /opt/mytool/bin").
 */
function describeSetupCounts(s) {
    const parts = [];
    if (!s.ecosystems) {
        const held = ECOSYSTEMS.filter((e) => s.counts[e]).map((e) => noun(e, s.counts[e]));
        parts.push(`no before-state: the image holds ${held.join(', ') || 'no package these ecosystems list'}`);
    }
    else {
        for (const e of ECOSYSTEMS) {
            const c = s.ecosystems[e];
            if (c)
                parts.push(e === 'toolcache' ? describeToolCache(c) : describeEcosystem(e, c));
        }
        if (!parts.length)
            parts.push('no package added, removed or upgraded');
    }
    if (s.path?.gained.length)
        parts.push(`PATH gained ${s.path.gained.join(', ')}`);
    if (s.path?.lost.length)
        parts.push(`PATH lost ${s.path.lost.join(', ')}`);
    return parts.join('; ');
}
function describeEcosystem(e, c) {
    const counts = [
        [c.added.length, 'added'],
        [c.upgraded.length, 'upgraded'],
        [c.removed.length, 'removed'],
    ].filter(([n]) => n > 0);
    return counts.map(([n, verb], i) => `${i === 0 ? noun(e, n) : n} ${verb}`).join(', ');
}
function describeToolCache(c) {
    const named = (list) => list.length <= 3 ? list.map(toolName).join(', ') : noun('toolcache', list.length);
    return [
        c.added.length ? `${named(c.added)} added to the tool cache` : '',
        c.removed.length ? `${named(c.removed)} removed from the tool cache` : '',
    ]
        .filter(Boolean)
        .join(', ');
}
/** Each list of the section (ecosystem × added/upgraded/removed): a title and its `name version` items. */
function setupLists(s) {
    const lists = [];
    for (const e of ECOSYSTEMS) {
        const c = s.ecosystems?.[e];
        if (!c)
            continue;
        const item = (p) => [
            p.name,
            e === 'toolcache' ? toolName(p).slice(p.name.length + 1) : p.version,
        ];
        if (c.added.length)
            lists.push({ title: `${noun(e, c.added.length)} added`, items: c.added.map(item) });
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
function markdownSetup(s) {
    const code = (t) => `<code>${html(t)}</code>`;
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
        else
            out.push(`${html(title)}:`, '', ...lines, '');
    }
    return out;
}
/** The same for the plain-text report: every list in full, wrapped. */
function textSetup(s) {
    const out = [`What setup changed (${BEFORE[s.before]}):`, ...wrap(describeSetupCounts(s), '  ')];
    for (const { title, items } of setupLists(s))
        out.push(...wrap(`${title}: ${items.map(([name, version]) => `${name} ${version}`).join(', ')}`, '  '));
    return out;
}
/** Lines of at most about 100 columns, broken after commas, each indented. */
function wrap(text, indent) {
    const lines = [];
    let line = '';
    for (const word of text.split(/(?<=, )/)) {
        if (line && indent.length + line.length + word.length > 100) {
            lines.push(indent + line.trimEnd());
            line = '  ';
        }
        line += word;
    }
    if (line.trim())
        lines.push(indent + line.trimEnd());
    return lines;
}

;// CONCATENATED MODULE: ./src/layer/partition.ts


/** Bytes a tar header costs, counted so a tree of many empty files still splits. */
const HEADER_COST = 512;
/** The most layers one snapshot's changes take unless told otherwise: past that, the target is raised. */
const partition_MAX_LAYERS = 100;
/**
 * Splits entries (depth-first, parents first) into layers of about `target` bytes by subtree.
 *
 * A directory whose subtree fits stays whole in one layer; a larger one is split among its children,
 * its own entry leading the first of its layers (unless it would be alone there). Siblings that fit
 * are packed together in name order. So layer boundaries depend only on the tree's shape near the change: editing a file inside
 * `usr/lib/python3` changes that subtree's layer, not the others. Every member of a hardlink group
 * is written in the layer of the group's last member, since a hardlink can only point within a layer.
 * Every layer then carries the directories above what it holds (see `withAncestors`).
 * Past `maxLayers` layers, the target doubles until they fit.
 */
function partition(entries, target, maxLayers = partition_MAX_LAYERS) {
    const { end, bytes, parent } = subtreeExtents(entries);
    let plans = split(entries, end, bytes, target);
    for (let t = target * 2; plans.length > maxLayers; t *= 2)
        plans = split(entries, end, bytes, t);
    const held = keepHardlinksTogether(entries, plans).filter((p) => p.indices.length > 0);
    return withAncestors(held, parent);
}
/**
 * For each entry: one past the index of its last descendant, the bytes of its whole subtree, and the
 * nearest directory above it in the list (-1 for none: at the top, or a change set without it).
 */
function subtreeExtents(entries) {
    const n = entries.length;
    const end = new Int32Array(n);
    const bytes = new Float64Array(n);
    const parent = new Int32Array(n);
    const stack = [];
    const stackPaths = [];
    for (let i = 0; i < n; i++) {
        const path = entries.path(i);
        while (stack.length && !isInside(path, stackPaths[stackPaths.length - 1])) {
            const top = stack.pop();
            stackPaths.pop();
            end[top] = i;
            if (stack.length)
                bytes[stack[stack.length - 1]] += bytes[top];
        }
        bytes[i] = HEADER_COST + entries.size(i);
        parent[i] = stack.length ? stack[stack.length - 1] : -1;
        if (entries.kind(i) === 'dir') {
            stack.push(i);
            stackPaths.push(path);
        }
        else {
            end[i] = i + 1;
            if (stack.length)
                bytes[stack[stack.length - 1]] += bytes[i];
        }
    }
    while (stack.length) {
        const top = stack.pop();
        end[top] = n;
        if (stack.length)
            bytes[stack[stack.length - 1]] += bytes[top];
    }
    return { end, bytes, parent };
}
function split(entries, end, bytes, target) {
    const plans = [];
    const level = (from, to, lead) => {
        let pending = lead === null ? [] : [lead];
        let pendingBytes = lead === null ? 0 : HEADER_COST;
        let first = -1;
        let last = -1;
        const flush = () => {
            // A split directory's entry alone (its first child split too) makes no layer of its own: every
            // layer below it carries it (withAncestors).
            if (first < 0) {
                pending = [];
                pendingBytes = 0;
                return;
            }
            plans.push({ indices: pending, label: labelOf(entries, lead, first, last), bytes: pendingBytes });
            pending = [];
            pendingBytes = 0;
            first = last = -1;
        };
        for (let i = from; i < to; i = end[i]) {
            if (bytes[i] > target && entries.kind(i) === 'dir') {
                flush();
                level(i + 1, end[i], i);
                continue;
            }
            if (first >= 0 && pendingBytes + bytes[i] > target)
                flush();
            for (let j = i; j < end[i]; j++)
                pending.push(j);
            pendingBytes += bytes[i];
            if (first < 0)
                first = i;
            last = i;
        }
        flush();
    };
    level(0, entries.length, null);
    return plans;
}
function labelOf(entries, lead, first, last) {
    const parent = lead === null ? '' : show(entries.path(lead)) + '/';
    if (first < 0)
        return parent || '/';
    const name = (i) => {
        const path = entries.path(i);
        return show(path.subarray(path.lastIndexOf(0x2f) + 1));
    };
    if (first === last)
        return parent + name(first);
    return `${parent}{${name(first)} … ${name(last)}}`;
}
function keepHardlinksTogether(entries, plans) {
    const layerOf = new Int32Array(entries.length);
    plans.forEach((p, l) => p.indices.forEach((i) => (layerOf[i] = l)));
    // The latest layer any member is in: every whiteout that could hide a member's directory
    // (deletions, opaque markers) is in that member's own or an earlier layer, never a later one.
    const home = new Map();
    for (let i = 0; i < entries.length; i++) {
        const group = entries.linkGroup(i);
        if (group)
            home.set(group, Math.max(home.get(group) ?? 0, layerOf[i]));
    }
    const moved = new Set();
    for (let i = 0; i < entries.length; i++) {
        const group = entries.linkGroup(i);
        const l = group === undefined ? undefined : home.get(group);
        if (l === undefined || l === layerOf[i])
            continue;
        moved.add(i);
        plans[l].indices.push(i);
        plans[l].bytes += HEADER_COST + entries.size(i);
        plans[layerOf[i]].bytes -= HEADER_COST + entries.size(i);
    }
    if (moved.size === 0)
        return plans;
    for (const p of plans) {
        p.indices = p.indices.filter((i) => !moved.has(i) || plans[layerOf[i]] !== p);
        p.indices.sort((a, b) => a - b);
    }
    return plans;
}
/**
 * Adds to each layer the entries of the directories above what it holds, as Docker and BuildKit
 * layers have them. A split directory's entry is otherwise only in its first layer, and an overlay
 * runtime (Docker overlay2, containerd's overlayfs snapshotter, podman) makes the directory a later
 * layer needs as 0755 root:root stamped with the pull time, which hides the real one below it. A
 * layer that already holds a directory gets it once; one holding whole subtrees at the top gets nothing.
 */
function withAncestors(plans, parent) {
    const inLayer = new Int32Array(parent.length).fill(-1);
    plans.forEach((plan, l) => {
        const added = [];
        // Ascending: a member's parent that is a member too was seen first, its own parents with it.
        for (const i of plan.indices) {
            for (let a = parent[i]; a >= 0 && inLayer[a] !== l; a = parent[a]) {
                inLayer[a] = l;
                added.push(a);
            }
            inLayer[i] = l;
        }
        if (added.length === 0)
            return;
        plan.indices = plan.indices.concat(added).sort((a, b) => a - b);
        plan.bytes += HEADER_COST * added.length;
    });
    return plans;
}

;// CONCATENATED MODULE: ./src/image/marker.ts

/**
 * Every image this action makes of a root with an `/etc` carries this file, in a small last layer of
 * its own. It names where the image went and the layers below it, so a sandbox started from the image
 * knows its base without being told: the next snapshot takes those layers as they are and replaces
 * this one (it is never stacked).
 */
const MARKER_PATH = 'etc/depot-snapshot.json';
/** The marker of the image the sandbox came from, left out of the walk: the new image gets a new one. */
const MARKER_REWRITTEN = {
    path: '/' + MARKER_PATH,
    reason: "the base image's snapshot marker (rewritten)",
};
/** The history comment of the marker layer: how a base made by this action is recognised. */
const MARKER_COMMENT = 'snapshot marker';
class MarkerError extends failure/* UserError */.yo {
}
function parseMarker(text) {
    let m;
    try {
        m = JSON.parse(text);
    }
    catch {
        throw new MarkerError(`/${MARKER_PATH} is not JSON`);
    }
    const okLayer = (l) => typeof l?.digest === 'string' && typeof l.diffId === 'string' && typeof l.size === 'number';
    if (m?.schemaVersion !== 1 ||
        !Array.isArray(m.layers) ||
        !m.layers.every(okLayer) ||
        typeof m.repository !== 'string' ||
        (m.places !== undefined &&
            (!Array.isArray(m.places) ||
                !m.places.every((p) => typeof p?.repository === 'string' && typeof p.tag === 'string')))) {
        throw new MarkerError(`/${MARKER_PATH} is not a marker this version understands`);
    }
    return m;
}
/**
 * The marker for an image whose other layers are those of `draft`, pushed to `places` (none for a
 * dry run). `repository`/`tag` repeat the first place, for readers that know no other.
 */
function markerFor(draft, places, created) {
    const config = JSON.parse(draft.config.bytes.toString());
    const manifest = JSON.parse(draft.manifest.bytes.toString());
    return {
        schemaVersion: 1,
        repository: places[0]?.repository ?? '',
        tag: places[0]?.tag ?? 'latest',
        ...(places.length > 1 ? { places } : {}),
        created,
        layers: manifest.layers.map((d, i) => ({ ...d, diffId: config.rootfs.diff_ids[i] })),
        config: config.config,
        history: config.history ?? [],
    };
}
/** Where an image with this marker can be read: its places, or the one repository of older markers. */
function markerPlaces(marker) {
    if (marker.places?.length)
        return marker.places;
    return marker.repository ? [{ repository: marker.repository, tag: marker.tag }] : [];
}

;// CONCATENATED MODULE: ./src/content/blob.ts


/** A sink that keeps nothing: a pass that only computes a blob's digests. */
const DISCARD = {
    create: async () => ({
        stream: new external_node_stream_.Writable({ write: (_c, _e, done) => done() }),
        commit: async () => { },
        abort: async () => { },
    }),
};
/** Passes bytes through unchanged while hashing and counting them. */
class HashTap extends external_node_stream_.Transform {
    onBytes;
    bytes = 0;
    hash = (0,external_node_crypto_.createHash)('sha256');
    hex;
    constructor(onBytes) {
        super();
        this.onBytes = onBytes;
    }
    _transform(chunk, _enc, done) {
        this.update(chunk);
        done(null, chunk);
    }
    /** Hashes and counts bytes that do not pass through the stream. */
    update(chunk) {
        this.hash.update(chunk);
        this.bytes += chunk.length;
        this.onBytes?.(chunk.length);
    }
    digest() {
        this.hex ??= this.hash.digest('hex');
        return `sha256:${this.hex}`;
    }
}

;// CONCATENATED MODULE: ./src/layer/tar.ts
/**
 * Byte-exact tar headers (POSIX ustar + PAX extended headers, pax interchange format, IEEE 1003.1-2001).
 *
 * We write headers ourselves instead of through tar-stream because its PAX records are built from JS
 * strings (UTF-8 re-encoded) and its ustar mtime has whole seconds: a non-UTF-8 name, a binary
 * `security.capability` value or a nanosecond mtime would not survive. Every field is set explicitly so
 * the same entry always gives the same bytes.
 */
const BLOCK = 512;
const TYPEFLAG = {
    file: 0x30, // '0'
    hardlink: 0x31, // '1'
    symlink: 0x32, // '2'
    char: 0x33, // '3'
    block: 0x34, // '4'
    dir: 0x35, // '5'
    fifo: 0x36, // '6'
};
const PAX_TYPEFLAG = 0x78; // 'x'
const MAX_OCTAL_8 = 0o7777777; // 8-byte numeric field: 7 octal digits + NUL
const MAX_OCTAL_12 = 0o77777777777; // 12-byte field: 11 octal digits + NUL
/**
 * Refuses a name that could land outside the root when unpacked: absolute, with a `..` (or `.` or
 * empty) component, or holding a NUL. A walk never makes one; this guards every path into a layer,
 * hardlink targets included (they name another entry of the archive; symlink targets are only text).
 */
function checkArchiveName(name, what = 'name') {
    const bad = (why) => new Error(`refusing to write the tar ${what} ${JSON.stringify(name.toString('latin1'))}: ${why}`);
    if (name.length === 0)
        throw bad('it is empty');
    if (name[0] === 0x2f)
        throw bad('it is absolute');
    let start = 0;
    for (let i = 0; i <= name.length; i++) {
        if (i < name.length && name[i] !== 0x2f) {
            if (name[i] === 0)
                throw bad('it holds a NUL byte');
            continue;
        }
        const len = i - start;
        if (len === 0 && i === name.length && i > 1)
            break; // a directory's trailing slash
        if (len === 0)
            throw bad('it has an empty component');
        if (name[start] === 0x2e && (len === 1 || (len === 2 && name[start + 1] === 0x2e)))
            throw bad('it has a "." or ".." component');
        start = i + 1;
    }
}
/** Encodes one entry's header blocks: an optional PAX header (with its data) and the ustar header. */
function encodeHeader(h) {
    for (;;) {
        const end = encodeHeaderInto(h, scratch, 0);
        if (end >= 0)
            return Buffer.from(scratch.subarray(0, end));
        scratch = Buffer.allocUnsafe(scratch.length * 2);
    }
}
let scratch = Buffer.allocUnsafe(64 * 1024);
/**
 * Writes `encodeHeader(h)` into `out` at `at`, returning the offset just past it, or -1 when it does
 * not fit (what was written there is then meaningless). The layer writer encodes straight into its
 * output batch: no buffer is allocated per entry.
 */
function encodeHeaderInto(h, out, at) {
    checkArchiveName(h.name);
    if (h.type === 'hardlink')
        checkArchiveName(h.linkName ?? EMPTY, 'hardlink target');
    const name = h.type === 'dir' ? withTrailingSlash(h.name) : h.name;
    const pax = [];
    const cut = ustarCut(name);
    if (cut === NO_FIT)
        pax.push(['path', name]);
    const link = h.linkName ?? EMPTY;
    if (link.length > 100)
        pax.push(['linkpath', link]);
    if (h.uid > MAX_OCTAL_8)
        pax.push(['uid', String(h.uid)]);
    if (h.gid > MAX_OCTAL_8)
        pax.push(['gid', String(h.gid)]);
    if (h.size > MAX_OCTAL_12)
        pax.push(['size', String(h.size)]);
    if (h.mtimeNsec !== 0 || h.mtimeSec < 0 || h.mtimeSec > MAX_OCTAL_12) {
        pax.push(['mtime', formatPaxTime(h.mtimeSec, h.mtimeNsec)]);
    }
    if (h.xattrs?.length) {
        // Sorted by name so the record order never depends on the order the filesystem listed them.
        const xattrs = [...h.xattrs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        for (const [key, value] of xattrs) {
            // Readers split a record at its first `=`: such a name would silently become another.
            if (key.includes('='))
                throw new Error(`refusing to write the xattr name ${JSON.stringify(key)}: it holds "="`);
            pax.push([`SCHILY.xattr.${key}`, value]);
        }
    }
    // The ustar name and prefix: split at a `/` when the name fits that way, else its first 100 bytes.
    let prefixEnd = 0;
    let nameStart = 0;
    let nameEnd = name.length;
    if (cut === NO_FIT)
        nameEnd = Math.min(name.length, 100);
    else if (cut !== NO_PREFIX) {
        prefixEnd = cut;
        nameStart = cut + 1;
    }
    let bodyLength = 0;
    for (let r = 0; r < pax.length; r++)
        bodyLength += paxRecordLength(pax[r][0], pax[r][1].length);
    const total = (pax.length ? BLOCK + bodyLength + padLength(bodyLength) : 0) + BLOCK;
    if (at + total > out.length)
        return -1;
    if (pax.length) {
        // Like GNU tar and Go: a stable, descriptive name for the extended header itself.
        out.set(ZERO_BLOCK, at);
        const paxNameEnd = Math.min(nameEnd, nameStart + 100 - PAX_NAME_PREFIX.length);
        const nameSum = put(out, at, PAX_NAME_PREFIX, 0, PAX_NAME_PREFIX.length) +
            put(out, at + PAX_NAME_PREFIX.length, name, nameStart, paxNameEnd);
        finishUstar(out, at, nameSum, 0o644, 0, 0, bodyLength, 0, PAX_TYPEFLAG, EMPTY, 0, 0);
        let p = at + BLOCK;
        for (let r = 0; r < pax.length; r++)
            p = writePaxRecord(out, p, pax[r][0], pax[r][1]);
        const padEnd = p + padLength(bodyLength);
        out.fill(0, p, padEnd);
        at = padEnd;
    }
    out.set(ZERO_BLOCK, at);
    const nameSum = put(out, at, name, nameStart, nameEnd) + put(out, at + 345, name, 0, prefixEnd);
    finishUstar(out, at, nameSum, h.mode & 0o7777, h.uid, h.gid, h.type === 'file' ? h.size : 0, Math.min(Math.max(h.mtimeSec, 0), MAX_OCTAL_12), TYPEFLAG[h.type], link, h.devMajor ?? 0, h.devMinor ?? 0);
    return at + BLOCK;
}
/**
 * Copies `src[start, end)` to `out` at `at` and returns the sum of its bytes, for the checksum: names
 * are short, and one loop costs less than a native copy and a pass over the block to sum it.
 */
function put(out, at, src, start, end) {
    let sum = 0;
    for (let i = start; i < end; i++) {
        const byte = src[i];
        out[at++] = byte;
        sum += byte;
    }
    return sum;
}
const ZERO_BLOCK = new Uint8Array(BLOCK);
/** Zero bytes that pad `size` bytes of data up to a whole block. */
function zeroPad(size) {
    const rest = size % BLOCK;
    return rest === 0 ? EMPTY : Buffer.alloc(BLOCK - rest);
}
/** How many zero bytes pad `size` bytes of data up to a whole block. */
function padLength(size) {
    const rest = size % BLOCK;
    return rest === 0 ? 0 : BLOCK - rest;
}
/** The end-of-archive marker: two zero blocks. */
const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
/**
 * `"%d %s=%s\n"` records whose length prefix counts itself (pax, "extended header records"). Keys are
 * latin1 strings of their bytes: an xattr name is written byte for byte, UTF-8 or not.
 */
function encodePaxRecords(records) {
    let length = 0;
    for (const [key, value] of records)
        length += paxRecordLength(key, value.length);
    const out = Buffer.allocUnsafe(length);
    let p = 0;
    for (const [key, value] of records)
        p = writePaxRecord(out, p, key, value);
    return out;
}
/** The length of `"%d key=value\n"`: the length prefix counts its own digits. */
function paxRecordLength(key, valueLength) {
    const rest = 1 + key.length + 1 + valueLength + 1; // " key=value\n"
    // Grow it until it is a fixed point.
    let len = rest + 1;
    while (rest + String(len).length !== len)
        len = rest + String(len).length;
    return len;
}
function writePaxRecord(out, at, key, value) {
    at += out.write(`${paxRecordLength(key, value.length)} ${key}=`, at, 'latin1');
    at += typeof value === 'string' ? out.write(value, at, 'latin1') : value.copy(out, at);
    out[at] = 0x0a; // '\n'
    return at + 1;
}
function formatPaxTime(sec, nsec) {
    if (nsec === 0)
        return String(sec);
    // A negative time with a fraction: -1.25 means 1.25 s before the epoch, so (sec, nsec) = (-2, 750e6).
    const negative = sec < 0;
    const whole = negative ? -(sec + 1) : sec;
    let frac = negative ? 1e9 - nsec : nsec;
    let width = 9; // digits of the fraction, without its trailing zeros
    while (frac % 10 === 0) {
        frac /= 10;
        width--;
    }
    return `${negative ? '-' : ''}${whole}.${String(frac).padStart(width, '0')}`;
}
/**
 * Fills the numeric fields, the type, the link name, the magic and the checksum of the ustar block at
 * `at`, whose bytes are zero but for the name and prefix already written there (their bytes summing
 * to `nameSum`).
 */
function finishUstar(b, at, nameSum, mode, uid, gid, size, mtime, typeflag, linkName, devMajor, devMinor) {
    const sum = nameSum +
        writeNumeric(b, at + 100, 8, mode) +
        writeNumeric(b, at + 108, 8, Math.min(uid, MAX_OCTAL_8)) +
        writeNumeric(b, at + 116, 8, Math.min(gid, MAX_OCTAL_8)) +
        writeNumeric(b, at + 124, 12, size) +
        writeNumeric(b, at + 136, 12, mtime) +
        // The checksum is computed with its own field as spaces.
        8 * 0x20 +
        typeflag +
        put(b, at + 157, linkName, 0, Math.min(linkName.length, 100)) +
        put(b, at + 257, USTAR_MAGIC, 0, USTAR_MAGIC.length) +
        // uname/gname stay empty: numeric ids are the truth in an image, names would depend on this host.
        writeNumeric(b, at + 329, 8, devMajor) +
        writeNumeric(b, at + 337, 8, devMinor);
    b[at + 156] = typeflag;
    writeOctal(b, at + 148, 7, sum); // six octal digits, a NUL
    b[at + 155] = 0x20; // and a space
}
/**
 * Octal, zero padded, NUL terminated; base-256 (GNU) when it does not fit, as readers expect. Returns
 * the sum of the bytes written.
 */
function writeNumeric(b, offset, width, value) {
    if (value >= 0 && value <= (width === 8 ? MAX_OCTAL_8 : MAX_OCTAL_12))
        return writeOctal(b, offset, width, value);
    if (width !== 8 && width !== 12)
        throw new Error(`internal: a numeric field of ${width} bytes`);
    let v = BigInt(value);
    let sum = 0x80;
    for (let i = offset + width - 1; i > offset; i--) {
        b[i] = Number(v & 0xffn);
        sum += b[i];
        v >>= 8n;
    }
    b[offset] = 0x80;
    return sum;
}
/** `width - 1` octal digits of a value known to fit, then a NUL; returns the sum of those bytes. */
function writeOctal(b, offset, width, value) {
    let sum = 0;
    b[offset + width - 1] = 0;
    let i = offset + width - 2;
    for (; value >= 0x80000000; i--) {
        const digit = 0x30 + (value % 8);
        b[i] = digit;
        sum += digit;
        value = Math.floor(value / 8);
    }
    // Below 2^31 (nearly always): integer operations.
    for (; i >= offset; i--) {
        const digit = 0x30 + (value & 7);
        b[i] = digit;
        sum += digit;
        value >>>= 3;
    }
    return sum;
}
/** ustarCut: the name fits the name field alone. */
const NO_PREFIX = -1;
/** ustarCut: the name fits no ustar prefix and name split (it goes in a PAX `path` record). */
const NO_FIT = -2;
/**
 * Where a name splits into ustar prefix (≤155) and name (≤100): the index of that `/`, NO_PREFIX when
 * it fits the name field alone, NO_FIT when it cannot fit.
 */
function ustarCut(name) {
    if (name.length <= 100)
        return NO_PREFIX;
    if (name.length > 256)
        return NO_FIT;
    // The name part must be non-empty: the last `/` that leaves ≤100 bytes after it and ≤155 before it.
    for (let i = Math.min(155, name.length - 2); i >= name.length - 101 && i > 0; i--) {
        if (name[i] === 0x2f)
            return i;
    }
    return NO_FIT;
}
function withTrailingSlash(name) {
    return name[name.length - 1] === 0x2f ? name : Buffer.concat([name, SLASH]);
}
const EMPTY = Buffer.alloc(0);
const SLASH = Buffer.from('/');
const PAX_NAME_PREFIX = Buffer.from('PaxHeaders/');
const USTAR_MAGIC = Buffer.from('ustar\x0000', 'latin1');

;// CONCATENATED MODULE: ./src/layer/write.ts









const READ_CHUNK = 1024 * 1024;
/** Headers and small files are gathered into batches this big: fewer, larger writes into zlib. */
const write_BATCH = 1024 * 1024;
/**
 * Writes one layer: a deterministic tar of the given entries, digested before and after compression
 * in the same pass, streamed into `sink`. Nothing is held whole in memory.
 */
async function writeLayer(input, sink, expected) {
    const counters = input.counters;
    const countCompressed = counters && ((n) => (counters.compressed += n));
    const pending = await sink.create(expected);
    try {
        // Uncompressed, the blob is the tar itself: one digest serves as both, and no pass copies it.
        const uncompressed = input.compression === 'none';
        const diff = new HashTap(uncompressed ? countCompressed : undefined);
        const compressed = uncompressed ? diff : new HashTap(countCompressed);
        if (uncompressed) {
            const tar = external_node_stream_.Readable.from(tarStream(input, false), { objectMode: false, highWaterMark: write_BATCH });
            await (0,external_node_stream_promises_.pipeline)(tar, diff, pending.stream);
        }
        else {
            const compressing = compressor(input.compression, input.level);
            const written = (0,external_node_stream_promises_.pipeline)(compressing, compressed, pending.stream);
            await feed(tarStream(input, true), diff, compressing, written);
        }
        const descriptor = {
            mediaType: LAYER_MEDIA_TYPE[input.compression],
            digest: compressed.digest(),
            size: compressed.bytes,
        };
        await pending.commit(descriptor.digest, descriptor.size);
        return { descriptor, diffId: diff.digest(), uncompressedSize: diff.bytes, entries: input.indices.length };
    }
    catch (err) {
        await pending.abort();
        throw err;
    }
}
/**
 * Writes the tar into the compressor, hashing it on the way, one chunk at a time: the compressor has
 * copied a chunk into its blocks when the write's callback runs, so the tar's buffers are filled
 * again for the next one. A buffer per MiB read, each freed again, cost a zstd capture a full
 * garbage collection every 9 MB (external memory counts against V8's old-generation limit).
 */
async function feed(tar, diff, into, written) {
    written.catch(() => { }); // awaited below, after the last write or a failure
    try {
        for await (const chunk of tar) {
            diff.update(chunk);
            await new Promise((resolve, reject) => into.write(chunk, (err) => (err ? reject(err) : resolve())));
        }
        into.end();
    }
    catch (err) {
        into.destroy(err);
        // What stopped the pipeline (the blob's disk full, say), rather than the write it failed.
        throw await written.then(() => err, (cause) => cause);
    }
    await written;
}
/** A file the process may not read: the capture cannot be faithful, so it stops with one line. */
class PermissionError extends failure/* UserError */.yo {
    rootMayHelp = true;
}
/**
 * The tar bytes being gathered for the next write: headers are encoded and small files read straight
 * into one buffer, so a small file costs no allocation of its own. Each full batch is handed on and a
 * new one started; with `reuse`, the consumer is done with a batch before the next is asked for, so
 * the same buffer is filled again, else what is handed on may be held downstream and is never reused.
 */
class TarBatch {
    reuse;
    buf = Buffer.allocUnsafe(write_BATCH);
    used = 0;
    constructor(reuse) {
        this.reuse = reuse;
    }
    /** Room for `n` more bytes: the batch so far when there is not, to be written first, else null. */
    reserve(n) {
        if (this.used + n <= this.buf.length)
            return null;
        const full = this.take();
        if (n > this.buf.length)
            this.buf = Buffer.allocUnsafe(n);
        return full;
    }
    /**
     * Encodes a header at the end of the batch (room reserved), returning where it ends; `keep: false`
     * leaves it out of the batch until the caller moves `used` past it.
     */
    header(h, keep = true) {
        const end = encodeHeaderInto(h, this.buf, this.used);
        if (end < 0)
            throw new Error('internal: no room reserved for a tar header');
        if (keep)
            this.used = end;
        return end;
    }
    /** The bytes gathered so far; the batch starts over (in a new buffer unless reused). */
    take() {
        const full = this.buf.subarray(0, this.used);
        if (!this.reuse || this.buf.length !== write_BATCH)
            this.buf = Buffer.allocUnsafe(write_BATCH);
        this.used = 0;
        return full;
    }
}
/** The most a header can take: a PAX header of long paths and every xattr, then the ustar block. */
function headerRoom(e) {
    let xattrBytes = 0;
    for (const [name, value] of e.xattrs ?? [])
        xattrBytes += name.length + value.length + 32;
    return 4 * BLOCK + 2 * e.path.length + (e.linkTarget?.length ?? 0) + xattrBytes;
}
/**
 * The tar bytes of a layer, entry by entry, in the order of `indices`. With `reuse`, a chunk is only
 * valid until the next is asked for (its buffer is filled again): for a consumer that copies it.
 */
async function* tarStream(input, reuse) {
    const { entries, indices, root, log, counters } = input;
    const rootBuf = Buffer.from(root.replace(/\/+$/, '') + '/');
    // Each file's absolute path is written into one buffer, after the root: no path is allocated per file.
    let absBuf = Buffer.allocUnsafe(rootBuf.length + 4096);
    rootBuf.copy(absBuf);
    // Paths as latin1 strings: a Buffer from the table may be a slice of a shared pool, kept whole.
    const firstOfGroup = new Map();
    const out = new TarBatch(reuse);
    const readBuffer = reuse ? Buffer.allocUnsafe(READ_CHUNK) : undefined;
    for (const i of indices) {
        const e = entries.get(i);
        const header = headerOf(e);
        const small = e.kind === 'file' && e.size <= SMALL_FILE;
        const full = out.reserve(headerRoom(e) + (small ? e.size + 1 + BLOCK : 0));
        if (full?.length)
            yield full;
        if (e.kind !== 'file') {
            out.header(header);
            continue;
        }
        if (e.linkGroup && !e.content && firstOfGroup.has(e.linkGroup)) {
            const linkName = Buffer.from(firstOfGroup.get(e.linkGroup), 'latin1');
            out.header({ ...header, type: 'hardlink', size: 0, linkName });
            continue;
        }
        if (absBuf.length < rootBuf.length + e.path.length)
            absBuf = Buffer.concat([rootBuf, Buffer.alloc(e.path.length)]);
        e.path.copy(absBuf, rootBuf.length);
        const abs = absBuf.subarray(0, rootBuf.length + e.path.length);
        if (e.content || small) {
            const dataAt = out.header(header, false);
            let end;
            if (e.content)
                end = dataAt + e.content.copy(out.buf, dataAt);
            else
                end = readSmallFile(abs, e, out.buf, dataAt, log);
            if (end === null) {
                log.warn(`${show(abs)} vanished or stopped being a regular file before it was read; left out`);
                continue; // nothing of it kept: the next entry writes over its header
            }
            out.buf.fill(0, end, end + padLength(e.size));
            out.used = end + padLength(e.size);
            if (counters)
                counters.read += e.size;
        }
        else {
            // A large file: read as it streams, the batch before it written first.
            const source = await openForRead(abs);
            if (!source) {
                log.warn(`${show(abs)} vanished or stopped being a regular file before it was read; left out`);
                continue;
            }
            const path = Buffer.from(abs); // absBuf is rewritten by the next file
            out.header(header);
            yield out.take();
            try {
                for await (const chunk of readExactly(source, e.size, path, log, readBuffer)) {
                    if (counters)
                        counters.read += chunk.length;
                    yield chunk;
                }
                warnIfChanged(await source.stat({ bigint: true }), e, path, log);
            }
            finally {
                await source.close();
            }
            const pad = padLength(e.size);
            out.buf.fill(0, 0, pad);
            out.used = pad;
        }
        if (e.linkGroup)
            firstOfGroup.set(e.linkGroup, e.path.toString('latin1'));
    }
    const full = out.reserve(END_OF_ARCHIVE.length);
    if (full?.length)
        yield full;
    out.used += END_OF_ARCHIVE.copy(out.buf, out.used);
    yield out.take();
}
function headerOf(e) {
    return {
        name: e.path,
        // A whiteout is an empty regular file named `.wh.<name>` (image-spec, "Whiteouts").
        type: e.kind === 'whiteout' ? 'file' : e.kind,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: e.kind === 'file' ? e.size : 0,
        mtimeSec: e.mtimeSec,
        mtimeNsec: e.mtimeNsec,
        linkName: e.linkTarget,
        devMajor: e.devMajor,
        devMinor: e.devMinor,
        xattrs: e.xattrs,
    };
}
// O_NOATIME: reading for a snapshot must not change what a later snapshot compares. O_NONBLOCK: a
// file replaced by a fifo since the walk must not hang the open.
const READ_FLAGS = external_node_fs_.constants.O_RDONLY | external_node_fs_.constants.O_NOFOLLOW | external_node_fs_.constants.O_NONBLOCK;
const NOATIME = external_node_fs_.constants.O_NOATIME ?? 0;
/**
 * Opens `abs` for reading: null when it is gone or is no longer a regular file (replaced by a
 * directory, a fifo or a symlink since the walk: not the file the header would describe).
 * O_NOATIME is refused (EPERM) on files this user does not own: then it opens without it.
 */
async function openForRead(abs) {
    for (const extra of [NOATIME, 0]) {
        try {
            const file = await (0,promises_.open)(abs, READ_FLAGS | extra);
            if ((await file.stat()).isFile())
                return file;
            await file.close();
            return null;
        }
        catch (err) {
            if (!retryOpen(err, abs, extra))
                return null;
        }
    }
    return null;
}
/**
 * The synchronous twin of openForRead, without its fstat: a descriptor, or null. The caller's read
 * tells whether it is still the regular file the walk saw (see readSmallFile).
 */
function openSmallFile(abs) {
    for (const extra of [NOATIME, 0]) {
        try {
            return (0,external_node_fs_.openSync)(abs, READ_FLAGS | extra);
        }
        catch (err) {
            if (!retryOpen(err, abs, extra))
                return null;
        }
    }
    return null;
}
/** After a failed open: false when the file is gone, true to retry without O_NOATIME; else throws. */
function retryOpen(err, abs, extra) {
    const code = err.code;
    // Gone, replaced by a symlink or a socket, or a parent directory replaced by a file since the walk.
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR' || code === 'ENXIO')
        return false;
    if (code === 'EACCES') {
        throw new PermissionError(`cannot read ${show(abs)}: permission denied; capturing this tree needs root (run the step as root or with sudo)`);
    }
    if (code !== 'EPERM' || extra === 0)
        throw err;
    return true;
}
/** Files up to this size are read whole and synchronously. */
const SMALL_FILE = 64 * 1024;
/**
 * Reads a small file into `buf` at `at`: exactly `e.size` bytes whatever the file did since the walk
 * (see readExactly), returning the offset after them; null when it is gone or no longer a regular
 * file. `buf` has room for one byte more. The size is the walk's lstat: the read asks for one byte
 * more, so a file that grew shows without an fstat, and only a read that does not give exactly that
 * size costs one (a fifo or a directory put in its place reads short or fails).
 */
function readSmallFile(abs, e, buf, at, log) {
    const fd = openSmallFile(abs);
    if (fd === null)
        return null;
    try {
        const want = e.size + 1;
        let got = 0;
        let failure = null;
        try {
            // Done at the size the walk saw: a regular file reads short only at its end, so the common
            // case is one read, never a second one to see the end.
            do {
                const n = (0,external_node_fs_.readSync)(fd, buf, at + got, want - got, got);
                if (n === 0)
                    break;
                got += n;
            } while (got < e.size);
        }
        catch (err) {
            failure = err;
        }
        if (got === e.size && !failure)
            return at + e.size;
        if (!(0,external_node_fs_.fstatSync)(fd).isFile())
            return null;
        if (failure)
            throw failure;
        if (got > e.size)
            log.warn(`${show(abs)} grew while it was read; captured its first ${e.size} bytes`);
        else {
            log.warn(`${show(abs)} shrank while it was read (${got} of ${e.size} bytes); the rest is written as zeros`);
            buf.fill(0, at + got, at + e.size);
        }
        return at + e.size;
    }
    finally {
        (0,external_node_fs_.closeSync)(fd);
    }
}
/**
 * Exactly `size` bytes, whatever the file does meanwhile: the header already promised that many. A
 * file that shrank is padded with zeros, one that grew is cut; both are warned about. Read into
 * `reused` when given (each chunk then valid until the next is asked for), else into new buffers.
 */
async function* readExactly(file, size, abs, log, reused) {
    let pos = 0;
    while (pos < size) {
        const want = Math.min(READ_CHUNK, size - pos);
        const buf = reused ? reused.subarray(0, want) : Buffer.allocUnsafe(want);
        const { bytesRead } = await file.read(buf, 0, want, pos);
        if (bytesRead === 0) {
            log.warn(`${show(abs)} shrank while it was read (${pos} of ${size} bytes); the rest is written as zeros`);
            for (let left = size - pos; left > 0; left -= READ_CHUNK)
                yield Buffer.alloc(Math.min(left, READ_CHUNK));
            return;
        }
        pos += bytesRead;
        yield bytesRead === want ? buf : buf.subarray(0, bytesRead);
    }
}
function warnIfChanged(st, e, abs, log) {
    const mtimeNs = BigInt(e.mtimeSec) * 1000000000n + BigInt(e.mtimeNsec);
    if (st.size > BigInt(e.size)) {
        log.warn(`${show(abs)} grew while it was read; captured its first ${e.size} bytes`);
    }
    else if (st.size === BigInt(e.size) && st.mtimeNs !== mtimeNs) {
        log.warn(`${show(abs)} changed while it was read; its content may be a mix of before and after`);
    }
}

;// CONCATENATED MODULE: ./src/image/marker-layer.ts










/**
 * The marker's own layer: the file, owned by root, mode 0644, dated `created`, after its parent
 * `/etc` as the tree has it (`root`), so the same image always gets the same marker layer. Without
 * that entry an overlay runtime (Docker overlay2, containerd, podman) would make `/etc` in this
 * layer as 0755 root:root dated the pull, hiding the real one below.
 */
async function writeMarkerLayer(marker, opts, sink, 
/** Whether the destination already holds a blob. */
exists) {
    const dir = await (0,promises_.mkdtemp)(external_node_path_default().join(external_node_os_default().tmpdir(), 'depot-snapshot-marker-'));
    try {
        const file = external_node_path_default().join(dir, MARKER_PATH);
        await (0,promises_.mkdir)(external_node_path_default().dirname(file), { recursive: true });
        await (0,promises_.writeFile)(file, JSON.stringify(marker, null, 2) + '\n');
        const when = new Date(Date.parse(marker.created));
        await (0,promises_.utimes)(file, when, when);
        const st = await (0,promises_.lstat)(file, { bigint: true });
        const { sec, nsec } = splitNs(st.mtimeNs);
        const entry = {
            path: Buffer.from(MARKER_PATH),
            kind: 'file',
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: Number(st.size),
            allocated: Number(st.size),
            mtimeSec: sec,
            mtimeNsec: nsec,
            ctimeSec: 0,
            ctimeNsec: 0,
            ino: 0,
        };
        const etc = etcOf(opts.root, opts.log);
        const input = { ...opts, root: dir, entries: EntryTable.from([etc, entry]), indices: [0, 1] };
        // A few hundred bytes: digest them first, so an unchanged marker is not sent again.
        const dry = await writeLayer(input, DISCARD);
        const r = (await exists(dry.descriptor.digest)) ? dry : await writeLayer(input, sink);
        return { descriptor: r.descriptor, diffId: r.diffId, comment: `${MARKER_COMMENT} /${MARKER_PATH}` };
    }
    finally {
        await (0,promises_.rm)(dir, { recursive: true, force: true });
    }
}
/**
 * The tree's `/etc` as the walk takes a directory (mode, owner, mtime, xattrs), with no ctime or inode,
 * which only a baseline compares.
 */
function etcOf(root, log) {
    const abs = external_node_path_default().join(root, external_node_path_default().dirname(MARKER_PATH));
    const xattrs = readXattrs(Buffer.from(abs), log);
    const etc = entryOf(Buffer.from(external_node_path_default().dirname(MARKER_PATH)), lstatOf(Buffer.from(abs)));
    return { ...etc, ctimeSec: 0, ctimeNsec: 0, ino: 0, ...(xattrs && { xattrs }) };
}

;// CONCATENATED MODULE: ./src/image/build.ts



function jsonBlob(value, mediaType) {
    const bytes = Buffer.from(JSON.stringify(value));
    return { bytes, descriptor: { mediaType, digest: sha256(bytes), size: bytes.length } };
}
function sha256(bytes) {
    return 'sha256:' + (0,external_node_crypto_.createHash)('sha256').update(bytes).digest('hex');
}
/** Go's GOARCH names, which image configs use, from Node's. */
function runtimePlatform() {
    const arch = {
        x64: 'amd64',
        ia32: '386',
        arm64: 'arm64',
        arm: 'arm',
        ppc64: 'ppc64le',
        s390x: 's390x',
        riscv64: 'riscv64',
        loong64: 'loong64',
    };
    const architecture = arch[process.arch] ?? process.arch;
    const variant = process.arch === 'arm64' ? 'v8' : process.arch === 'arm' ? 'v7' : undefined;
    return { architecture, os: 'linux', ...(variant ? { variant } : {}) };
}
/** Builds the config and manifest for the given layers. Same inputs, same bytes, same digests. */
function buildImage(input) {
    const { base } = input;
    const history = [
        ...(base?.config.history ?? []),
        ...input.layers.map((l) => ({
            created: input.created,
            created_by: base ? CREATED_BY.changes : CREATED_BY.wholeTree,
            comment: l.comment,
        })),
    ];
    const config = {
        created: input.created,
        ...runtimePlatform(),
        // Env, Cmd, Entrypoint, WorkingDir, User, Labels… as the base had them.
        config: { ...(base?.config.config ?? {}), ...(input.env?.length ? { Env: input.env } : {}) },
        rootfs: { type: 'layers', diff_ids: [...(base?.diffIds ?? []), ...input.layers.map((l) => l.diffId)] },
        history,
    };
    const configBlob = jsonBlob(config, MediaType.config);
    const annotations = { [Annotation.created]: input.created };
    if (input.source)
        annotations[Annotation.source] = input.source;
    if (input.revision)
        annotations[Annotation.revision] = input.revision;
    if (input.key)
        annotations[Annotation.key] = input.key;
    if (base) {
        annotations[Annotation.baseName] = base.name;
        if (base.digest)
            annotations[Annotation.baseDigest] = base.digest;
    }
    const manifest = {
        schemaVersion: 2,
        mediaType: MediaType.manifest,
        config: configBlob.descriptor,
        layers: [...(base?.layers ?? []), ...input.layers.map((l) => l.descriptor)],
        annotations,
    };
    return { config: configBlob, manifest: jsonBlob(manifest, MediaType.manifest) };
}
/** RFC 3339 in UTC with the nanoseconds that matter, from seconds and nanoseconds since the epoch. */
function rfc3339(sec, nsec = 0) {
    // Dates beyond what RFC 3339 can write (a file dated year 300000) are clamped to its range.
    const clamped = Math.min(Math.max(sec, -62135596800), 253402300799);
    const base = new Date(clamped * 1000).toISOString().slice(0, 19);
    const frac = nsec ? '.' + String(nsec).padStart(9, '0').replace(/0+$/, '') : '';
    return `${base}${frac}Z`;
}

;// CONCATENATED MODULE: ./src/image/created.ts

/**
 * The image's `created`: SOURCE_DATE_EPOCH when set, else the newest mtime captured (or the base's
 * time when nothing is newer): never the clock, so captures repeat.
 */
function createdTime(entries, baseCreated, epoch = process.env.SOURCE_DATE_EPOCH) {
    if (epoch && /^\d+$/.test(epoch))
        return rfc3339(Number(epoch));
    let { sec, nsec } = (baseCreated && parseTime(baseCreated)) || { sec: 0, nsec: 0 };
    let newer = false;
    for (let i = 0; i < entries.length; i++) {
        const [s, ns] = [entries.mtimeSec(i), entries.mtimeNsec(i)];
        if (s > sec || (s === sec && ns > nsec)) {
            [sec, nsec] = [s, ns];
            newer = true;
        }
    }
    // Nothing newer than the base: its own time, verbatim, so an unchanged snapshot repeats exactly.
    return !newer && baseCreated ? baseCreated : rfc3339(sec, nsec);
}
/** RFC 3339 → seconds and nanoseconds since the epoch (Date keeps only milliseconds). */
function parseTime(s) {
    const ms = Date.parse(s);
    if (Number.isNaN(ms))
        return null;
    const frac = /\.(\d+)/.exec(s)?.[1] ?? '';
    return { sec: Math.floor(ms / 1000), nsec: Number(frac.slice(0, 9).padEnd(9, '0')) };
}

;// CONCATENATED MODULE: ./src/image/env.ts

/**
 * The environment a later job needs, for the image config's `Env`: tools a step installed and put on
 * `PATH` (through `GITHUB_PATH`) or announced in a variable (`GITHUB_ENV`, `JAVA_HOME`) stay usable in
 * the jobs that start from the image, instead of every job repeating the setup step.
 */
/** Variables of the runner, the job, this action or the login session: they describe this run, not the image. */
const RUN_VARIABLES = [
    'GITHUB_*',
    'RUNNER_*',
    'ACTIONS_*',
    'INPUT_*',
    'STATE_*',
    'DEPOT_*',
    'SNAPSHOT_*',
    'CI',
    'HOME',
    'PWD',
    'OLDPWD',
    'HOSTNAME',
    'USER',
    'LOGNAME',
    'SHELL',
    'SHLVL',
    'TERM',
    'MAIL',
    'TMPDIR',
    '_',
    'SUDO_*',
    'SSH_*',
    'XDG_*',
    'DBUS_*',
    'INVOCATION_ID',
    'JOURNAL_STREAM',
    'SYSTEMD_EXEC_PID',
    'LS_COLORS',
    'COLUMNS',
    'LINES',
    'SOURCE_DATE_EPOCH',
    // Set by this action for its own process (src/index.ts), not by the job.
    'UV_THREADPOOL_SIZE',
];
/** Names that look like they hold a secret. Case-insensitive. */
const SECRET_NAMES = [
    '*TOKEN*',
    '*SECRET*',
    '*PASSWORD*',
    '*PASSWD*',
    '*_KEY',
    '*_KEY_*',
    '*KEY_ID*',
    '*APIKEY*',
    '*CREDENTIAL*',
    '*_PASS',
    'AUTH_*',
    '*_AUTH',
    '*_AUTH_*',
    '*PRIVATE*',
    '*SESSION*',
    '*COOKIE*',
    '*_PAT',
    'DATABASE_URL',
    '*_DSN',
];
const runVariable = picomatch_default()(RUN_VARIABLES);
const secretName = picomatch_default()(SECRET_NAMES, { nocase: true });
/**
 * The base image's `Env` updated with this job's environment: `PATH` as the job has it now, and every
 * variable that differs from the base's, except run variables, secret-looking names, names matching
 * `mask`, and any variable whose value carries a known secret.
 */
function persistedEnv(current, baseEnv, mask, secrets) {
    const userMask = mask.length ? picomatch_default()(mask) : () => false;
    const base = new Map();
    for (const pair of baseEnv) {
        const eq = pair.indexOf('=');
        base.set(eq < 0 ? pair : pair.slice(0, eq), eq < 0 ? '' : pair.slice(eq + 1));
    }
    // A secret copied into an innocent-looking name (URL=https://user:$TOKEN@host) is still a secret.
    const secretValues = [
        ...secrets,
        ...Object.entries(current)
            .filter(([name, value]) => value && (secretName(name) || name === 'GITHUB_TOKEN'))
            .map(([, value]) => value),
    ].filter((v) => v.length >= 8);
    const kept = [];
    const masked = [];
    const updates = new Map();
    for (const name of Object.keys(current).sort()) {
        const value = current[name];
        if (value === undefined || base.get(name) === value)
            continue;
        // A name with `=` cannot be written as NAME=value; an empty name is no variable.
        if (!name || name.includes('='))
            continue;
        const reason = userMask(name)
            ? 'env-mask'
            : name !== 'PATH' && runVariable(name)
                ? 'runner or job variable'
                : secretName(name)
                    ? 'name looks secret'
                    : secretValues.some((v) => value.includes(v))
                        ? 'value holds a credential'
                        : null;
        if (reason) {
            // Run variables are noise in a list of what was masked; name them only when they came from the user.
            if (reason !== 'runner or job variable')
                masked.push({ name, reason });
            continue;
        }
        updates.set(name, value);
        kept.push(name);
    }
    const env = [...base].map(([name, value]) => `${name}=${updates.get(name) ?? value}`);
    for (const [name, value] of updates)
        if (!base.has(name))
            env.push(`${name}=${value}`);
    return { env, kept, masked };
}

;// CONCATENATED MODULE: ./src/registry/credentials.ts





/**
 * What a registry other than the one pushed to is given (a base image's, the source of a promote or
 * a pull): the credential inputs and insecure-registry only when it is `targetRegistry`, the registry
 * those inputs are for; any other registry gets its own credentials (see resolveCredentials) and TLS.
 */
function credentialsFor(ref, opts) {
    if (ref.registry !== opts.targetRegistry)
        return { credentials: {}, insecureRegistry: false };
    const { username, password, token, insecureRegistry } = opts.inputs;
    return { credentials: { username, password, token, isTarget: true }, insecureRegistry };
}
/**
 * What a registry pushed to is given. The credential inputs are for the first `image` line's
 * registry (`firstRegistry`) alone; every other registry gets its own (resolveCredentials without
 * the inputs: the Docker config, DEPOT_* tokens for `*.registry.depot.dev`, GITHUB_TOKEN for
 * ghcr.io). insecure-registry holds for every registry pushed to: each was named by the user.
 */
function pushCredentials(registry, firstRegistry, inputs) {
    const { username, password, token, insecureRegistry } = inputs;
    if (registry !== firstRegistry)
        return { credentials: { isTarget: false }, insecureRegistry };
    return { credentials: { username, password, token, isTarget: true }, insecureRegistry };
}
/**
 * Credentials for `registry`, first found wins: the `username`/`password` inputs; the `token` input
 * (Basic `x-token:<token>`, as Depot's registry takes it); DEPOT_SNAPSHOT_TOKEN then DEPOT_TOKEN;
 * the Docker config (credHelpers, credsStore, auths); GITHUB_TOKEN for ghcr.io; anonymous.
 */
async function resolveCredentials(registry, inputs, env = process.env) {
    if (!inputs.isTarget && !registry.endsWith('.registry.depot.dev'))
        return fromOtherSources(registry, env);
    if (inputs.username || inputs.password) {
        return {
            username: inputs.username ?? '',
            password: inputs.password ?? '',
            source: 'username/password inputs',
        };
    }
    if (inputs.token)
        return { username: 'x-token', password: inputs.token, source: 'token input' };
    for (const name of ['DEPOT_SNAPSHOT_TOKEN', 'DEPOT_TOKEN']) {
        if (env[name])
            return { username: 'x-token', password: env[name], source: name };
    }
    return fromOtherSources(registry, env);
}
/** The Docker config, GITHUB_TOKEN for ghcr.io, else anonymous. */
async function fromOtherSources(registry, env) {
    const fromDocker = await fromDockerConfig(registry, env);
    if (fromDocker)
        return fromDocker;
    if (registry === 'ghcr.io' && env.GITHUB_TOKEN) {
        return {
            username: env.GITHUB_ACTOR || 'x-access-token',
            password: env.GITHUB_TOKEN,
            source: 'GITHUB_TOKEN',
        };
    }
    return { source: 'anonymous' };
}
async function fromDockerConfig(registry, env) {
    const dir = env.DOCKER_CONFIG || external_node_path_default().join(env.HOME || external_node_os_default().homedir(), '.docker');
    const file = external_node_path_default().join(dir, 'config.json');
    let config;
    try {
        config = JSON.parse(await (0,promises_.readFile)(file, 'utf8'));
    }
    catch {
        return undefined;
    }
    const keys = registryKeys(registry);
    const helper = keys.map((k) => config.credHelpers?.[k]).find(Boolean) ?? config.credsStore;
    if (helper) {
        const got = await runHelper(helper, keys[0]);
        if (got)
            return { ...got, source: `docker-credential-${helper}` };
    }
    for (const key of keys) {
        const a = config.auths?.[key];
        if (!a)
            continue;
        let username = a.username;
        let password = a.password;
        if (a.auth) {
            const decoded = Buffer.from(a.auth, 'base64').toString('utf8');
            const colon = decoded.indexOf(':');
            username = decoded.slice(0, colon);
            password = decoded.slice(colon + 1);
        }
        if (a.identitytoken)
            return { username, identityToken: a.identitytoken, source: `${file} (identity token)` };
        if (username !== undefined)
            return { username, password, source: file };
    }
    return undefined;
}
/** Keys a Docker config may file this registry under: Docker Hub has its historical URL. */
function registryKeys(registry) {
    if (registry === DOCKER_HUB)
        return ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];
    return [registry, `https://${registry}`, `http://${registry}`];
}
/** `docker-credential-<helper> get`, the server on stdin, `{Username, Secret}` on stdout. */
function runHelper(helper, server) {
    return new Promise((resolve) => {
        const child = (0,external_node_child_process_.spawn)(`docker-credential-${helper}`, ['get'], { stdio: ['pipe', 'pipe', 'ignore'] });
        // A helper that prompts (a desktop keyring, pinentry) must not hang the job.
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        child.on('close', () => clearTimeout(timer));
        let out = '';
        child.stdout.on('data', (d) => (out += d.toString()));
        child.on('error', () => resolve(undefined));
        child.on('close', (code) => {
            if (code !== 0)
                return resolve(undefined);
            try {
                const r = JSON.parse(out);
                if (!r.Secret)
                    return resolve(undefined);
                resolve(r.Username === '<token>'
                    ? { identityToken: r.Secret }
                    : { username: r.Username, password: r.Secret });
            }
            catch {
                resolve(undefined);
            }
        });
        child.stdin.end(server);
    });
}

;// CONCATENATED MODULE: ./src/registry/errors.ts

/** A registry said no, or could not be reached: the message is one sentence a user can act on. */
class RegistryError extends failure/* UserError */.yo {
    status;
    code;
    /** The registry's Retry-After on a refusal that may pass later, for the caller that retries. */
    retryAfterMs;
    constructor(message, status, code) {
        super(message);
        this.status = status;
        this.code = code;
    }
}
/** The upload session is gone or out of step: the blob must start over from its source. */
class RestartBlobError extends RegistryError {
}
const HINTS = {
    UNAUTHORIZED: 'check the credentials (username/password, token, or docker login)',
    DENIED: 'check that these credentials may push to this repository',
    NAME_UNKNOWN: 'the repository does not exist; some registries (ECR) need it created first',
    NAME_INVALID: 'check the repository name',
    // distribution answers this (detail "http: request body too large") to a manifest over 4 MiB.
    MANIFEST_INVALID: 'the registry rejected the manifest; if it is over the registry size limit (4 MiB on most), use a larger layer-size for fewer layers',
    MANIFEST_BLOB_UNKNOWN: 'a blob the manifest names is missing in the registry',
    BLOB_UPLOAD_INVALID: 'the upload was rejected',
    DIGEST_INVALID: 'the uploaded bytes do not match their digest (did the tree change while it was read?)',
    SIZE_INVALID: 'the uploaded size does not match',
    TOOMANYREQUESTS: 'the registry is rate limiting; try again later',
    UNSUPPORTED: 'the registry does not support this operation',
};
/** Turns a registry's error answer into one clear sentence; the body may be JSON, HTML or garbage. */
function describeFailure(what, status, body) {
    let parsed;
    try {
        parsed = JSON.parse(body);
    }
    catch {
        parsed = undefined;
    }
    const first = Array.isArray(parsed?.errors) ? parsed.errors[0] : undefined;
    if (typeof first?.code === 'string') {
        const hint = HINTS[first.code];
        // The detail often says why (distribution: "http: request body too large"); long ones are cut.
        const detail = typeof first.detail === 'string' && first.detail ? `: ${oneLine(first.detail).slice(0, 200)}` : '';
        const message = typeof first.message === 'string' && first.message ? `: ${oneLine(first.message)}${detail}` : detail;
        return new RegistryError(`${what} failed: ${status} ${first.code}${message}${hint ? ` (${hint})` : ''}`, status, first.code);
    }
    const hint = status === 401
        ? ' (check the credentials)'
        : status === 403
            ? ' (access denied for these credentials)'
            : status === 404
                ? ' (not found)'
                : status === 413
                    ? ' (too large for the registry or a proxy in front of it)'
                    : '';
    // A web page where a registry should be (a wrong host or port, a login portal) says so; a 5xx or
    // 413 page is a proxy in front of a registry having trouble.
    const web = status < 300 || status === 404 || status === 405;
    const snippet = /^\s*</.test(body)
        ? `an HTML page${web ? ` ${NOT_A_REGISTRY}` : ''}`
        : body
            ? `"${oneLine(body).slice(0, 120)}"`
            : 'no body';
    return new RegistryError(`${what} failed: HTTP ${status}${hint}; the registry answered ${snippet}`, status);
}
/** The hint for answers no registry gives. */
const NOT_A_REGISTRY = '(is this a registry? check the host name and port)';
function oneLine(s) {
    return s.replace(/\s+/g, ' ').trim();
}
/**
 * A push to several registries that reached some but not all: one line naming every reference not
 * written and each failed registry's reason. The references written are in the outputs.
 */
class NotWrittenError extends RegistryError {
    failures;
    constructor(failures) {
        const references = failures.flatMap((f) => f.references);
        const reasons = failures.map((f) => `registry ${f.registry}: ${f.error.message}`);
        super(`not written: ${references.join(', ')} (${reasons.join('; ')}); the other references were written (see the outputs); run again to write these`);
        this.failures = failures;
    }
}

;// CONCATENATED MODULE: ./src/registry/manifests.ts



/** The registry's manifest size limit (distribution: 4 MiB); larger bodies are not read. */
const MANIFEST_LIMIT = 4 * 1024 * 1024;
const CONFIG_LIMIT = 8 * 1024 * 1024;
const ACCEPT = [
    MediaType.manifest,
    MediaType.dockerManifest,
    MediaType.index,
    MediaType.dockerManifestList,
].join(', ');
/** GET a manifest by tag or digest; null when the tag does not exist. */
async function getManifest(repo, reference) {
    const what = `reading ${repo.name}:${reference}`;
    const { res, bytes } = await repo.client.requestBytes({
        method: 'GET',
        url: `/v2/${repo.name}/manifests/${reference}`,
        what,
        scopes: [repo.scope],
        ok: [200, 404],
        headers: { Accept: ACCEPT },
    }, MANIFEST_LIMIT);
    if (res.status === 404)
        return null;
    // Checked here, where the request can be named: every caller parses what this returns.
    if (!isJsonObject(bytes))
        throw new RegistryError(`${what}: the registry answered something that is not JSON ${NOT_A_REGISTRY}`);
    const digest = sha256(bytes);
    const claimed = res.headers.get('docker-content-digest');
    if (reference.startsWith('sha256:') && digest !== reference) {
        throw new RegistryError(`manifest ${repo.name}@${reference} does not match its digest (got ${digest})`);
    }
    if (claimed && claimed.startsWith('sha256:') && claimed !== digest) {
        throw new RegistryError(`manifest ${repo.name}:${reference} does not match the digest the registry claims`);
    }
    const mediaType = (res.headers.get('content-type') ?? '').split(';')[0].trim() || parseJson(bytes).mediaType;
    return { digest, mediaType, bytes };
}
/** A small JSON blob (an image config), verified against its digest. */
async function getJsonBlob(repo, digest) {
    const { bytes } = await repo.client.requestBytes({
        method: 'GET',
        url: `/v2/${repo.name}/blobs/${digest}`,
        what: `reading blob ${digest.slice(0, 19)}`,
        scopes: [repo.scope],
        ok: [200],
    }, CONFIG_LIMIT);
    if (sha256(bytes) !== digest)
        throw new RegistryError(`blob ${digest} from ${repo.name} does not match its digest`);
    return parseJson(bytes);
}
/**
 * PUT a manifest under a tag (or its digest). Done only when the registry answers with our digest;
 * any other success (a proxy or login page answers 200 for a registry it never reached, some
 * registries name no digest) is checked by reading the tag back. Returns the `OCI-Subject` the
 * registry answered (distribution-spec 1.1: it indexed the manifest's subject for the referrers API).
 */
async function putManifest(repo, tag, bytes, mediaType) {
    const digest = sha256(bytes);
    const what = `tagging ${repo.name}:${tag}`;
    const res = await repo.client.request({
        method: 'PUT',
        url: `/v2/${repo.name}/manifests/${tag}`,
        what,
        scopes: [repo.scope],
        ok: [200, 201, 202, 204],
        headers: { 'Content-Type': mediaType },
        body: bytes,
    });
    const answered = res.headers.get('docker-content-digest');
    const subject = res.headers.get('oci-subject');
    await res.body?.cancel();
    if (answered && answered !== digest) {
        throw new RegistryError(`the registry stored ${repo.name}:${tag} as ${answered}, expected ${digest}`);
    }
    if (answered === digest)
        return subject;
    const stored = await storedDigest(repo, tag, mediaType).catch((err) => {
        throw new RegistryError(`${what} failed: the registry answered ${res.status} without the image's digest, and reading the tag back failed: ${err.message}`);
    });
    if (stored !== digest) {
        throw new RegistryError(`${what} failed: the registry answered ${res.status}, but the tag does not hold the image (it holds ${stored ?? 'nothing'}, not ${digest}); is a proxy or login page in the way? check the host name and port`);
    }
    return subject;
}
/** The digest a tag (or digest) resolves to now: a HEAD, or a GET when the HEAD names none. */
async function storedDigest(repo, reference, mediaType) {
    const res = await repo.client.request({
        method: 'HEAD',
        url: `/v2/${repo.name}/manifests/${reference}`,
        what: `reading ${repo.name}:${reference} back`,
        scopes: [repo.scope],
        ok: [200, 404],
        headers: { Accept: `${mediaType}, ${ACCEPT}` },
    });
    await res.body?.cancel();
    if (res.status === 404)
        return null;
    const named = res.headers.get('docker-content-digest');
    if (named?.startsWith('sha256:'))
        return named;
    return (await getManifest(repo, reference))?.digest ?? null;
}
async function getImageConfig(repo, manifest) {
    return getJsonBlob(repo, manifest.config.digest);
}
function isJsonObject(bytes) {
    try {
        const v = JSON.parse(bytes.toString('utf8'));
        return typeof v === 'object' && v !== null && !Array.isArray(v);
    }
    catch {
        return false;
    }
}
function parseJson(bytes) {
    try {
        return JSON.parse(bytes.toString('utf8'));
    }
    catch {
        throw new RegistryError('the registry answered something that is not JSON');
    }
}

;// CONCATENATED MODULE: ./src/registry/referrers.ts



/**
 * Referrers (distribution-spec 1.1): artifacts whose `subject` is an image manifest, found through
 * the registry's referrers API where it has one, else through the referrers tag schema, an image
 * index tagged `sha256-<hex>` that clients keep up to date themselves.
 */
/** The tag of the referrers tag schema for a digest: `sha256:<hex>` → `sha256-<hex>`. */
function referrersTag(digest) {
    return digest.replace(':', '-');
}
const REFERRERS_LIMIT = 4 * 1024 * 1024;
/**
 * The descriptors of the manifests whose subject is `digest`: `GET /v2/<name>/referrers/<digest>`
 * when the registry answers it with an index (a registry with the API never answers 404), else the
 * index at the `sha256-<hex>` tag (none: no referrers).
 */
async function listReferrers(repo, digest) {
    const { res, bytes } = await repo.client.requestBytes({
        method: 'GET',
        url: `/v2/${repo.name}/referrers/${digest}`,
        what: `listing the referrers of ${repo.name}@${digest.slice(0, 19)}`,
        scopes: [repo.scope],
        // A registry without the API answers 404 (distribution 2.8), 400 or 405 to a path it has not.
        ok: [200, 400, 404, 405, 501],
        headers: { Accept: MediaType.index },
    }, REFERRERS_LIMIT);
    if (res.status === 200) {
        const index = tryParse(bytes);
        if (index)
            return index.manifests;
    }
    const tagged = await getManifest(repo, referrersTag(digest));
    return tagged ? (tryParse(tagged.bytes)?.manifests ?? []) : [];
}
/**
 * Stores artifact manifests about `subject` by digest (their blobs must be there already) and makes
 * them findable: a registry that answers `OCI-Subject` has indexed them; for one that does not, they
 * are added to the `sha256-<hex>` index (what others put there is kept). Returns how.
 */
async function putReferrers(repo, subject, referrers) {
    const unindexed = [];
    for (const m of referrers) {
        const answered = await putManifest(repo, m.digest, m.bytes, m.mediaType);
        if (answered !== subject)
            unindexed.push(referrerDescriptor(m.digest, m.bytes, m.mediaType));
    }
    if (!unindexed.length)
        return 'referrers API';
    await addToTagSchema(repo, subject, unindexed);
    return 'referrers tag schema';
}
/**
 * Adds descriptors to the `sha256-<hex>` index: read, add what is missing, put back. Another writer
 * may put its own version between our read and our put: the index is read again afterwards, and
 * when ours are missing they are added once more to what is there then.
 */
async function addToTagSchema(repo, subject, wanted) {
    const tag = referrersTag(subject);
    for (let round = 1;; round++) {
        const current = await readTagSchema(repo, tag);
        const missing = wanted.filter((d) => !current.manifests.some((m) => m.digest === d.digest));
        if (!missing.length)
            return;
        if (round > 2)
            throw new RegistryError(`${repo.name}:${tag}: another client kept replacing the referrers index; ${missing.length} referrer(s) not listed`);
        const next = { ...current, manifests: [...current.manifests, ...missing] };
        await putManifest(repo, tag, Buffer.from(JSON.stringify(next)), MediaType.index);
    }
}
async function readTagSchema(repo, tag) {
    const found = await getManifest(repo, tag);
    const empty = { schemaVersion: 2, mediaType: MediaType.index, manifests: [] };
    if (!found)
        return empty;
    const index = tryParse(found.bytes);
    if (!index)
        throw new RegistryError(`${repo.name}:${tag} is not an image index: it cannot list referrers (remove or retag it)`);
    return index;
}
function tryParse(bytes) {
    try {
        const index = parseJson(bytes);
        return Array.isArray(index?.manifests) ? index : null;
    }
    catch {
        return null;
    }
}

;// CONCATENATED MODULE: ./src/registry/retry.ts


const DEFAULT_RETRY = { attempts: 5, baseDelayMs: 500, maxDelayMs: 30_000 };
/** Statuses that may pass on another try: a timeout, rate limiting, a registry or proxy in trouble. */
const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
/** Network failures worth another try; a refused connection or unknown host is not (fail fast). */
const RETRY_CODES = new Set([
    'ECONNRESET',
    'EPIPE',
    'ETIMEDOUT',
    'ESTALL',
    'EAI_AGAIN',
    'ECONNABORTED',
    // undici's names, from a fetch-like transport a test may inject.
    'UND_ERR_SOCKET',
    'UND_ERR_CONNECT_TIMEOUT',
    'UND_ERR_HEADERS_TIMEOUT',
    'UND_ERR_BODY_TIMEOUT',
]);
/** The wait before try `attempt + 1`: 0.5, 1, 2, 4 s … (±20 %), at most `maxDelayMs`. */
function backoff(attempt, policy = DEFAULT_RETRY) {
    const base = Math.min(policy.baseDelayMs * 2 ** (attempt - 1), policy.maxDelayMs);
    return Math.round(base * (0.8 + Math.random() * 0.4));
}
/** No byte moved either way for the stall window while a transfer waited on the network. */
class StallError extends Error {
    ms;
    code = 'ESTALL';
    constructor(ms) {
        super(`no bytes moved for ${retry_seconds(ms)}`);
        this.ms = ms;
    }
}
/** The registry work of this run went past SNAPSHOT_PUSH_TIMEOUT_SECONDS: nothing more is tried. */
class DeadlineError extends RegistryError {
}
const DEFAULT_LIMITS = { stallMs: 30_000, deadlineMs: 2 * 60 * 60_000 };
/** The limits, from SNAPSHOT_STALL_SECONDS and SNAPSHOT_PUSH_TIMEOUT_SECONDS when set. */
function limitsFromEnv(env = process.env) {
    const read = (name, fallback, what) => {
        const raw = env[name]?.trim();
        if (!raw)
            return fallback;
        if (!/^\d+(\.\d+)?$/.test(raw))
            throw new RegistryError(`${name} must be a number of seconds (0 for ${what}), not "${raw}"`);
        return Math.round(Number(raw) * 1000);
    };
    return {
        stallMs: read('SNAPSHOT_STALL_SECONDS', DEFAULT_LIMITS.stallMs, 'no stall detection'),
        deadlineMs: read('SNAPSHOT_PUSH_TIMEOUT_SECONDS', DEFAULT_LIMITS.deadlineMs, 'no limit'),
    };
}
/**
 * The end of this run's registry work, counted from its first registry connection: past it, every
 * request under way is aborted and none starts, whatever retries are left.
 */
class Deadline {
    ms;
    controller = new AbortController();
    timer;
    constructor(ms) {
        this.ms = ms;
        if (ms > 0) {
            this.timer = setTimeout(() => this.controller.abort(this.error()), ms);
            this.timer.unref();
        }
    }
    get signal() {
        return this.controller.signal;
    }
    get passed() {
        return this.controller.signal.aborted;
    }
    error(what) {
        return new DeadlineError(`${what ? `${what}: stopped: ` : ''}the registry work did not finish within ${retry_seconds(this.ms)} (SNAPSHOT_PUSH_TIMEOUT_SECONDS); check the network to the registry, or raise the limit for a slow link`);
    }
    /** Throws the deadline's error once it has passed. */
    check(what) {
        if (this.passed)
            throw this.error(what);
    }
    /** Waits `ms` before a retry; throws the deadline's error if it comes first. */
    async pause(ms, what) {
        this.check(what);
        try {
            await (0,external_node_timers_promises_.setTimeout)(ms, undefined, { signal: this.signal });
        }
        catch {
            throw this.error(what);
        }
    }
}
let current;
/** This run's limits and deadline, read and started on first use (the first registry connection). */
function runLimits() {
    if (!current) {
        const limits = limitsFromEnv();
        current = { limits, deadline: new Deadline(limits.deadlineMs) };
    }
    return current;
}
/** Waits the documented backoff before try `attempt + 1` (a layer started over, a blob re-sent). */
function waitBeforeRetry(attempt, what) {
    return runLimits().deadline.pause(backoff(attempt), what);
}
/** `30 s`, `1.5 s`, `10 min`, `2 h`. */
function retry_seconds(ms) {
    const s = ms / 1000;
    if (s >= 3600 && s % 3600 === 0)
        return `${s / 3600} h`;
    if (s >= 60 && s % 60 === 0)
        return `${s / 60} min`;
    return Number.isInteger(s) ? `${s} s` : `${s.toFixed(1)} s`;
}

;// CONCATENATED MODULE: ./src/registry/repository.ts






/** Chunks of a streamed upload. ≥ 5 MiB, which ECR requires; small enough to hold one per upload. */
const CHUNK_SIZE = 8 * 1024 * 1024;
/**
 * One repository of a registry (distribution-spec v1.1): blobs pulled and pushed, manifests read and
 * stored. An image source and an image target for content/copy.ts.
 */
class Repository {
    client;
    name;
    access;
    tally = { present: 0, mounted: 0, sent: 0, bytes: 0 };
    /** Set once the registry refused a chunked upload: from then on, digest first, then one PUT. */
    monolithic = false;
    constructor(client, name, 
    /** What this run does there: push to the target, only pull from a base image's repository. */
    access = 'push') {
        this.client = client;
        this.name = name;
        this.access = access;
    }
    /** The registry's host, as its API is reached. */
    get registry() {
        return this.client.host;
    }
    /** Blobs found present, mounted, sent, and the bytes sent, so far. */
    get counts() {
        return { ...this.tally };
    }
    /** Bytes actually sent in blob bodies. */
    get uploaded() {
        return this.tally.bytes;
    }
    /** The token scope for this repository, push first (some registries read only the first scope). */
    get scope() {
        return `repository:${this.name}:${this.access === 'push' ? 'pull,push' : 'pull'}`;
    }
    /**
     * Whether the repository holds the blob already, so it need not be sent: one `HEAD`, and the blob
     * counted as present when it is there.
     */
    async exists(digest) {
        const found = await this.holds(digest);
        if (found)
            this.tally.present++;
        return found;
    }
    /** After an upload failed or answered oddly: whether the blob is there all the same (it was sent). */
    landed(digest) {
        return this.holds(digest);
    }
    /** One `HEAD`: whether the repository holds the blob now (a digest it names must be this one). */
    async holds(digest) {
        const res = await this.client.request({
            method: 'HEAD',
            url: `/v2/${this.name}/blobs/${digest}`,
            what: `checking blob ${repository_short(digest)}`,
            scopes: [this.scope],
            ok: [200, 404],
        });
        await res.body?.cancel();
        const named = res.headers.get('docker-content-digest');
        return res.status === 200 && (!named || named === digest);
    }
    /**
     * Whether a blob upload's answer means the blob is stored: 201 with our digest does; any other
     * success (a proxy or login page answers 200 for a registry it never reached) is checked with a HEAD.
     */
    async confirmStored(res, digest, what) {
        const named = res.headers.get('docker-content-digest');
        await res.body?.cancel();
        if (res.status === 201 && named === digest)
            return;
        if (await this.landed(digest))
            return;
        throw new RegistryError(`${what} failed: the registry answered ${res.status}${named && named !== digest ? ` naming ${named}` : ''} but does not have the blob (is a proxy or login page in the way? check the host name and port)`);
    }
    /** Cross-repository mount; false when the registry opened an upload instead (cancelled here). */
    async mount(digest, from) {
        const res = await this.client.request({
            method: 'POST',
            url: `/v2/${this.name}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
            what: `mounting ${repository_short(digest)} from ${from}`,
            scopes: [this.scope, `repository:${from}:pull`],
            ok: [201, 202],
            headers: { 'Content-Length': '0' },
        });
        await res.body?.cancel();
        if (res.status === 201) {
            this.tally.mounted++;
            return true;
        }
        await this.cancel(res);
        return false;
    }
    /** A small blob (config, manifest-sized) in one monolithic POST+PUT, skipped when present. */
    async putBuffer(descriptor, bytes) {
        if (await this.exists(descriptor.digest))
            return;
        for (let attempt = 1;; attempt++) {
            let location;
            try {
                location = await this.startUpload();
                await this.finishUpload(location, descriptor.digest, bytes, false);
                break;
            }
            catch (err) {
                // The answer may be what was lost: a blob that landed is done; else a fresh upload, the
                // abandoned session cancelled (best effort) rather than left open until the registry purges it.
                if (err instanceof DeadlineError)
                    throw err;
                if (await this.landed(descriptor.digest).catch(unlessDeadline(false)))
                    break;
                if (location)
                    await this.cancel(location);
                if (attempt >= BLOB_ATTEMPTS)
                    throw err;
                await this.client.pause(backoff(attempt), `uploading ${repository_short(descriptor.digest)}`);
            }
        }
        this.tally.bytes += bytes.length;
        this.tally.sent++;
    }
    /** A manifest by tag or digest, checked against its digest; null when there is none. */
    manifest(reference) {
        return getManifest(this, reference);
    }
    /** Tags a manifest (or stores it by digest), confirmed as putManifest says. */
    async putManifest(manifest, tag) {
        await putManifest(this, tag ?? manifest.digest, manifest.bytes, manifest.mediaType);
    }
    /** The referrers of a manifest: the referrers API, else the tag schema. */
    referrers(digest) {
        return listReferrers(this, digest);
    }
    /** Stores artifact manifests about `subject` where the referrers API or the tag schema finds them. */
    putReferrers(subject, referrers) {
        return putReferrers(this, subject, referrers);
    }
    /** GET a blob as a stream (a base layer to copy or to write into a layout). */
    async openBlob(digest) {
        const res = await this.client.request({
            method: 'GET',
            url: `/v2/${this.name}/blobs/${digest}`,
            what: `reading blob ${repository_short(digest)} from ${this.name}`,
            scopes: [this.scope],
            ok: [200],
            timeoutMs: 30 * 60_000,
        });
        if (!res.body)
            throw new RegistryError(`blob ${digest} of ${this.name} came without a body`);
        return external_node_stream_.Readable.fromWeb(res.body);
    }
    /**
     * Copies a blob from another registry, streamed from GET to PUT (never through a temp file); the
     * target checks the digest. Retried from the start when either side fails.
     */
    async copyFrom(source, descriptor) {
        for (let attempt = 1;; attempt++) {
            // The digest and size are known: one streamed PUT, a round trip per blob rather than per chunk.
            const pending = this.monolithicUpload(await this.startUpload(), descriptor);
            try {
                await (0,external_node_stream_promises_.pipeline)(await source.openBlob(descriptor.digest), pending.stream);
                await pending.commit(descriptor.digest, descriptor.size);
                return;
            }
            catch (err) {
                await pending.abort();
                if (err instanceof DeadlineError || this.client.deadline.passed)
                    throw this.client.deadline.error(`copying ${repository_short(descriptor.digest)}`);
                if (attempt >= BLOB_ATTEMPTS)
                    throw err;
                await this.client.pause(backoff(attempt), `copying ${repository_short(descriptor.digest)}`);
            }
        }
    }
    /**
     * A sink for a blob whose digest is known only at its end: chunked PATCHes, then PUT ?digest. For a
     * registry that refuses chunks, the caller computes the digest in a first pass and the blob is
     * streamed in a single PUT.
     */
    sink(label = 'a blob') {
        return {
            needsDigestFirst: () => this.monolithic,
            create: async (expected) => {
                const location = await this.startUpload();
                return expected
                    ? this.monolithicUpload(location, expected, label)
                    : new ChunkedUpload(this, location, label, this.tally, () => (this.monolithic = true)).pending();
            },
        };
    }
    /** `PUT <location>?digest=…` with the whole blob streamed as its body (Content-Length known). */
    monolithicUpload(location, expected, label) {
        const body = new external_node_stream_.PassThrough({ highWaterMark: CHUNK_SIZE });
        const url = new URL(location);
        url.searchParams.set('digest', expected.digest);
        const what = `uploading ${label ? `${label} (${repository_short(expected.digest)})` : repository_short(expected.digest)}`;
        const done = this.client
            .request({
            method: 'PUT',
            url,
            what,
            scopes: [this.scope],
            ok: SUCCESS,
            headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(expected.size) },
            stream: body,
            // The whole blob rides in this one request: a slow link may need long for gigabytes.
            timeoutMs: 6 * 60 * 60_000,
        })
            .then((res) => this.confirmStored(res, expected.digest, what))
            .catch((err) => {
            body.destroy(err instanceof RegistryError && !(err instanceof DeadlineError)
                ? new RestartBlobError(err.message, err.status, err.code)
                : err);
            throw err;
        });
        done.catch(() => { }); // observed in commit(); a failure also breaks the stream being written
        return {
            stream: body,
            commit: async () => {
                await done.catch((err) => {
                    throw err instanceof RestartBlobError || err instanceof DeadlineError
                        ? err
                        : new RestartBlobError(`the upload did not complete (${err.message})`);
                });
                this.tally.bytes += expected.size;
                this.tally.sent++;
            },
            abort: async () => {
                body.destroy();
                await this.cancel(location);
            },
        };
    }
    async startUpload() {
        const res = await this.client.request({
            method: 'POST',
            url: `/v2/${this.name}/blobs/uploads/`,
            what: `starting an upload to ${this.name}`,
            scopes: [this.scope],
            ok: [202],
            headers: { 'Content-Length': '0' },
        });
        await res.body?.cancel();
        return locationOf(res, this.client.base);
    }
    /**
     * `PUT <location>&digest=…` with the last bytes (or none): the registry checks the digest, and the
     * answer is believed only as confirmStored says.
     */
    async finishUpload(location, digest, last, retry = true) {
        const url = new URL(location);
        url.searchParams.set('digest', digest);
        const what = `completing the upload of ${repository_short(digest)}`;
        const res = await this.client.request({
            method: 'PUT',
            url,
            what,
            scopes: [this.scope],
            ok: SUCCESS,
            headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(last.length) },
            body: last,
            retry,
        });
        await this.confirmStored(res, digest, what);
    }
    /** Abandons an upload session; failures are ignored, the registry expires it anyway. */
    async cancel(resOrLocation) {
        try {
            const location = resOrLocation instanceof URL ? resOrLocation : locationOf(resOrLocation, this.client.base);
            const res = await this.client.request({
                method: 'DELETE',
                url: location,
                what: 'cancelling an upload',
                scopes: [this.scope],
                ok: [200, 202, 204, 404],
            });
            await res.body?.cancel();
        }
        catch {
            // nothing to do
        }
    }
}
/**
 * One blob streamed in chunks while it is being compressed. Each full chunk is PATCHed with its
 * Content-Range once the next byte arrives; the last one rides in the closing PUT (ECR fails an empty
 * PUT after chunks). A PATCH that fails is resumed from the offset the registry reports (GET on the
 * upload URL); when the session is gone, RestartBlobError asks the caller to start over from source.
 */
class ChunkedUpload {
    repo;
    label;
    tally;
    chunksRefused;
    location;
    offset = 0;
    parts = [];
    buffered = 0;
    full = null;
    chunkSize = CHUNK_SIZE;
    constructor(repo, start, 
    /** What is uploaded, for messages: "layer 2/5 /usr". */
    label, tally, 
    /** The registry refuses chunks: later blobs go up whole. */
    chunksRefused) {
        this.repo = repo;
        this.label = label;
        this.tally = tally;
        this.chunksRefused = chunksRefused;
        this.location = start;
    }
    pending() {
        const stream = new external_node_stream_.Writable({
            highWaterMark: CHUNK_SIZE,
            write: (chunk, _enc, done) => this.take(chunk).then(() => done(), done),
        });
        return {
            stream,
            commit: (digest) => this.commit(digest),
            abort: () => this.repo.cancel(this.location),
        };
    }
    async take(chunk) {
        if (this.full) {
            await this.patch(this.full);
            this.full = null;
        }
        this.parts.push(chunk);
        this.buffered += chunk.length;
        if (this.buffered >= this.chunkSize) {
            this.full = Buffer.concat(this.parts, this.buffered);
            this.parts = [];
            this.buffered = 0;
        }
    }
    async commit(digest) {
        const rest = Buffer.concat(this.parts, this.buffered);
        let last = rest;
        if (this.full) {
            if (rest.length)
                await this.patch(this.full);
            else
                last = this.full;
        }
        // The closing PUT appends its body before checking the digest, so it is never resent blindly:
        // after a failure, wait, see whether the blob landed, else where the upload stands, and go on
        // from there. A registry that keeps failing while the session stands fails the push: starting
        // the layer over from the tree is for a session that is gone.
        for (let round = 1;; round++) {
            try {
                await this.repo.finishUpload(this.location, digest, last, false);
                this.tally.bytes += last.length;
                break;
            }
            catch (err) {
                if (!(err instanceof RegistryError) || err instanceof DeadlineError)
                    throw err;
                if (err.status !== undefined && !RETRY_STATUS.has(err.status)) {
                    throw new RestartBlobError(`the upload did not complete (${err.message})`, err.status, err.code);
                }
                if (round >= DEFAULT_RETRY.attempts)
                    throw err;
                await this.repo.client.pause(err.retryAfterMs ?? backoff(round), `uploading ${this.label}`);
                if (await this.repo.landed(digest).catch(unlessDeadline(false)))
                    break;
                const have = await this.status();
                if (have === null || have < this.offset || have > this.offset + last.length) {
                    throw new RestartBlobError(`the upload did not complete (${err.message})`);
                }
                this.tally.bytes += have - this.offset;
                last = last.subarray(have - this.offset);
                this.offset = have;
            }
        }
        this.tally.sent++;
    }
    /**
     * One chunk, never resent blindly either (a PATCH cut midway may have appended part of it): after a
     * failure, wait, ask where the upload stands, and send the rest from there; 5 tries in all.
     */
    async patch(data) {
        let sent = 0;
        for (let tries = 1; sent < data.length; tries++) {
            const start = this.offset + sent;
            const body = data.subarray(sent);
            const what = `uploading ${this.label} (bytes ${start}-${start + body.length - 1})`;
            try {
                const res = await this.repo.client.request({
                    method: 'PATCH',
                    url: this.location,
                    what,
                    scopes: [this.repo.scope],
                    ok: [202, 201, 204],
                    headers: {
                        'Content-Type': 'application/octet-stream',
                        'Content-Range': `${start}-${start + body.length - 1}`,
                        'Content-Length': String(body.length),
                    },
                    body,
                    retry: false,
                });
                await res.body?.cancel();
                this.location = locationOf(res, this.location);
                this.tally.bytes += body.length;
                sent = data.length;
            }
            catch (err) {
                if (err instanceof DeadlineError)
                    throw err;
                if (err instanceof RegistryError && isChunkingRefused(err)) {
                    this.chunksRefused();
                    throw new RestartBlobError(`the registry refuses chunked uploads (${err.message}); uploading whole blobs instead`);
                }
                if (tries >= DEFAULT_RETRY.attempts)
                    throw new RestartBlobError(`a chunk at ${start} kept failing (${err.message})`);
                await this.repo.client.pause(err.retryAfterMs ?? backoff(tries), what);
                // Ask where the registry stands, then send from there.
                const have = await this.status();
                if (have === null || have < this.offset || have > this.offset + data.length) {
                    throw new RestartBlobError(`upload session lost after ${start} bytes (${err.message})`);
                }
                sent = have - this.offset;
            }
        }
        this.offset += data.length;
    }
    /** Bytes the registry holds for this upload (`GET <location>` → `Range: 0-<last>`), null if gone. */
    async status() {
        try {
            const res = await this.repo.client.request({
                method: 'GET',
                url: this.location,
                what: 'checking an upload',
                scopes: [this.repo.scope],
                ok: [204, 200],
            });
            await res.body?.cancel();
            this.location = locationOf(res, this.location);
            const range = /^(?:bytes=)?0-(\d+)$/.exec(res.headers.get('range') ?? '');
            // distribution answers "0-0" for an empty session as for a 1-byte one: read it as empty (a
            // session holding exactly one byte is all but impossible with MiB chunks, and resending that
            // byte only costs a 416 or a digest mismatch, which start the blob over; skipping a byte
            // that is not there would corrupt it the same way, every time a first PATCH fails).
            return range && range[1] !== '0' ? Number(range[1]) + 1 : 0;
        }
        catch (err) {
            if (err instanceof DeadlineError)
                throw err;
            return null;
        }
    }
}
/** Answers a blob upload may end with; what they mean is for confirmStored to say. */
const SUCCESS = [200, 201, 202, 204];
/** Attempts at a small blob or a copied blob, each from a fresh upload session. */
const BLOB_ATTEMPTS = 3;
/** For a check whose failure means "no": the run's deadline still ends everything. */
function unlessDeadline(value) {
    return (err) => {
        if (err instanceof DeadlineError)
            throw err;
        return value;
    };
}
/** What registries answer to a PATCH they do not support (GAR and other monolithic-only ones). */
function isChunkingRefused(err) {
    return err.status === 405 || err.status === 501 || err.code === 'UNSUPPORTED';
}
/** The newest upload `Location`, resolved against the request URL, its query kept. */
function locationOf(res, base) {
    const loc = res.headers.get('location');
    if (!loc) {
        if (res.status === 204 || res.status === 200)
            return base;
        throw new RegistryError(`the registry answered ${res.status} without an upload Location`);
    }
    return new URL(loc, base);
}
function repository_short(digest) {
    return digest.slice(0, 19);
}
/** A repository read as an image source (promote, pull): it is one. */
function registrySource(repo) {
    return repo;
}

// EXTERNAL MODULE: external "node:http"
var external_node_http_ = __webpack_require__(7067);
var external_node_http_default = /*#__PURE__*/__webpack_require__.n(external_node_http_);
// EXTERNAL MODULE: external "node:https"
var external_node_https_ = __webpack_require__(4708);
var external_node_https_default = /*#__PURE__*/__webpack_require__.n(external_node_https_);
;// CONCATENATED MODULE: ./src/registry/transport.ts



/** Statuses whose answer has no body; a `Response` refuses to be built with one. */
const NULL_BODY = new Set([101, 204, 205, 304]);
/** Bodies are written in slices this size, so that bytes moving are seen while a big Buffer drains. */
const SLICE = 64 * 1024;
/**
 * The registry client's transport, over node:http/https: any port (fetch refuses the WHATWG "bad
 * ports", 6000 and 10080 among them), request bodies written only as fast as the socket drains (each
 * chunk let go once the socket has it; fetch kept every chunk of a streamed body until the end), and
 * a stall watchdog: while the exchange waits on the network (connecting, sending, awaiting the answer,
 * reading its body when asked for it) and no byte moves for `stallMs`, it fails with StallError.
 * Waiting on the caller (a compressor feeding the body, a reader not reading) is not a stall.
 */
function httpTransport(url, init) {
    return new Promise((resolve, reject) => {
        let answer;
        let settled = false;
        let over = false;
        const watch = new Watchdog(init.stallMs ?? 0, () => {
            init.onStall?.();
            fail(new StallError(init.stallMs ?? 0));
        });
        const onAbort = () => fail(abortReason(init.signal));
        /** The exchange is over: the answer read or dropped, or a failure. */
        const finish = () => {
            over = true;
            watch.stop();
            init.signal.removeEventListener('abort', onAbort);
        };
        function fail(err) {
            if (over)
                return;
            finish();
            answer?.destroy(err); // a reader of the answer body hears why
            req.destroy(err);
            if (!settled) {
                settled = true;
                reject(err);
            }
        }
        if (init.signal.aborted)
            return reject(abortReason(init.signal));
        const headers = { ...init.headers };
        if (Buffer.isBuffer(init.body) && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length'))
            headers['Content-Length'] = String(init.body.length);
        let req;
        try {
            req = (url.protocol === 'https:' ? (external_node_https_default()).request : (external_node_http_default()).request)(url, { method: init.method, headers });
        }
        catch (err) {
            return reject(err); // an invalid header value, say
        }
        init.signal.addEventListener('abort', onAbort, { once: true });
        watch.set('request', true);
        // After the answer, a broken pipe of the body still being sent is not the exchange's failure: a
        // registry may answer (and close) before reading the whole body, say a 401 or a digest refusal.
        req.on('error', (err) => {
            if (!answer)
                fail(err);
        });
        req.once('response', (res) => {
            answer = res;
            watch.progress();
            watch.set('request', false);
            try {
                resolve(toResponse(res, init.method, watch, finish));
                settled = true;
            }
            catch (err) {
                fail(err); // a status a Response cannot carry
            }
        });
        sendBody(req, init.body, watch, () => answer !== undefined).catch((err) => {
            if (!answer)
                fail(err);
        });
    });
}
async function sendBody(req, body, watch, answered) {
    const write = async (chunk) => {
        for (let at = 0; at < chunk.length; at += SLICE) {
            if (!req.write(chunk.subarray(at, at + SLICE)))
                await drained(req);
            watch.progress();
        }
    };
    if (body instanceof Uint8Array)
        await write(body);
    else if (body) {
        const chunks = body[Symbol.asyncIterator]();
        try {
            for (;;) {
                watch.set('request', false); // waiting on the source, not on the network
                const next = await chunks.next();
                if (!answered())
                    watch.set('request', true);
                if (next.done)
                    break;
                await write(next.value);
            }
        }
        catch (err) {
            await chunks.return?.().catch(() => { });
            throw err;
        }
    }
    req.end();
}
function drained(req) {
    return new Promise((resolve, reject) => {
        const onDrain = () => {
            off();
            resolve();
        };
        const onClose = () => {
            off();
            reject(req.errored ?? new Error('the connection closed while sending'));
        };
        const off = () => {
            req.off('drain', onDrain);
            req.off('close', onClose);
        };
        req.on('drain', onDrain);
        req.on('close', onClose);
    });
}
/** The answer as a fetch Response whose body is read on demand, watched while a read waits. */
function toResponse(res, method, watch, finish) {
    const status = res.statusCode ?? 0;
    const headers = new Headers();
    for (let i = 0; i < res.rawHeaders.length; i += 2)
        headers.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
    let body = null;
    if (NULL_BODY.has(status) || method === 'HEAD') {
        res.resume();
        res.once('end', finish);
    }
    else {
        const chunks = res[Symbol.asyncIterator]();
        body = new ReadableStream({
            async pull(controller) {
                watch.set('answer', true);
                try {
                    const next = await chunks.next();
                    if (next.done) {
                        finish();
                        controller.close();
                    }
                    else {
                        watch.progress();
                        controller.enqueue(new Uint8Array(next.value.buffer, next.value.byteOffset, next.value.length));
                    }
                }
                finally {
                    watch.set('answer', false);
                }
            },
            cancel() {
                finish();
                // A whole answer is drained so its connection is reused; one still arriving is cut.
                if (res.complete)
                    res.resume();
                else
                    res.destroy();
            },
        }, { highWaterMark: 0 });
    }
    return new Response(body, { status, headers });
}
/** Fires once no byte has moved for `ms` while anything waits on the network. */
class Watchdog {
    ms;
    onStall;
    waiting = new Set();
    timer;
    constructor(ms, onStall) {
        this.ms = ms;
        this.onStall = onStall;
    }
    /** `what` starts or stops waiting on the network; a new wait starts a fresh window. */
    set(what, waiting) {
        if (waiting) {
            this.waiting.add(what);
            this.restart();
        }
        else {
            this.waiting.delete(what);
            if (!this.waiting.size)
                this.clear();
        }
    }
    /** Bytes moved: the window starts over. */
    progress() {
        if (this.waiting.size)
            this.restart();
    }
    stop() {
        this.waiting.clear();
        this.clear();
    }
    restart() {
        if (!this.ms)
            return;
        if (this.timer)
            this.timer.refresh();
        else {
            this.timer = setTimeout(() => {
                this.timer = undefined;
                if (this.waiting.size)
                    this.onStall();
            }, this.ms);
            this.timer.unref();
        }
    }
    clear() {
        clearTimeout(this.timer);
        this.timer = undefined;
    }
}
function abortReason(signal) {
    const reason = signal.reason;
    return reason instanceof Error ? reason : new Error(String(reason));
}

;// CONCATENATED MODULE: ./src/registry/client.ts





const ERROR_BODY_LIMIT = 64 * 1024;
/**
 * The only HTTP code: talks to one registry, doing its auth dance (Basic, or Bearer tokens cached per
 * scope set until they expire), retrying what may pass with backoff and jitter, honouring Retry-After,
 * and never sending Authorization to another host (redirects, upload locations on storage hosts).
 */
class RegistryClient {
    opts;
    base;
    host;
    challenge;
    tokens = new Map();
    retry;
    warned = new Set();
    transport;
    /** The run's end for registry work, and how long a transfer may go without a byte moving. */
    deadline;
    stallMs;
    constructor(opts) {
        this.opts = opts;
        const apiHost = opts.registry === DOCKER_HUB ? 'registry-1.docker.io' : opts.registry;
        this.base = new URL(`${opts.insecure ? 'http' : 'https'}://${apiHost}`);
        this.host = this.base.host;
        this.retry = opts.retry ?? DEFAULT_RETRY;
        this.transport = opts.transport ?? httpTransport;
        const { deadline, limits } = runLimits();
        this.deadline = deadline;
        this.stallMs = limits.stallMs;
    }
    /** `GET /v2/`: learns how the registry wants to be authenticated. */
    async ping() {
        const res = await this.request({ method: 'GET', url: '/v2/', what: `connecting to ${this.host}`, scopes: [], ok: [200, 401] }, false);
        await res.body?.cancel();
        this.challenge = res.status === 200 ? null : parseChallenge(res.headers.get('www-authenticate'));
    }
    /**
     * A request whose answer body is read whole (manifests, configs: small, limited), retried as a
     * whole when the body breaks off midway.
     */
    async requestBytes(req, limit) {
        for (let attempt = 1;; attempt++) {
            const res = await this.request(req);
            try {
                return { res, bytes: await readBody(res, limit, req.what) };
            }
            catch (err) {
                if (this.deadline.passed)
                    throw this.deadline.error(req.what);
                if (err instanceof RegistryError || attempt >= this.retry.attempts)
                    throw err instanceof RegistryError ? err : networkError(req.what, this.host, err);
                await this.pause(this.backoff(attempt), req.what);
            }
        }
    }
    async request(req, authenticate = true) {
        if (authenticate && this.challenge === undefined)
            await this.ping();
        let refreshed = false;
        for (let attempt = 1;; attempt++) {
            this.deadline.check(req.what);
            let res;
            try {
                res = await this.send(req, authenticate);
            }
            catch (err) {
                if (err instanceof DeadlineError || this.deadline.passed)
                    throw this.deadline.error(req.what);
                if (err instanceof RegistryError)
                    throw err; // already a verdict (the token server said no)
                const code = errorCode(err);
                if (mayRetry(req) && attempt < this.retry.attempts && code && RETRY_CODES.has(code)) {
                    this.opts.log.debug(`${req.what}: ${code}, retrying`);
                    await this.pause(this.backoff(attempt), req.what);
                    continue;
                }
                throw networkError(req.what, this.host, err);
            }
            this.showWarnings(res);
            if (req.ok.includes(res.status))
                return res;
            if (res.status === 401 && !refreshed && !req.stream && this.challenge?.scheme === 'bearer') {
                // An expired or too narrow token: drop it and ask once more.
                refreshed = true;
                this.tokens.delete(req.scopes.join(' '));
                await res.body?.cancel();
                continue;
            }
            const wait = retryAfter(res.headers.get('retry-after'), this.retry.maxDelayMs);
            if (mayRetry(req) && RETRY_STATUS.has(res.status) && attempt < this.retry.attempts) {
                const ms = wait ?? this.backoff(attempt);
                this.opts.log.debug(`${req.what}: HTTP ${res.status}, retrying in ${ms} ms`);
                await res.body?.cancel();
                await this.pause(ms, req.what);
                continue;
            }
            const err = await client_failure(req.what, res, this.opts.credentials);
            err.retryAfterMs = wait;
            throw err;
        }
    }
    /** Waits before a retry; the run's deadline ends the wait (and the push) if it comes first. */
    pause(ms, what) {
        return this.deadline.pause(ms, what);
    }
    /** One exchange with the registry; Authorization goes only to its own origin. */
    async send(req, authenticate) {
        return this.exchange(new URL(req.url, this.base), req, async (url) => 
        // Same origin, not just the same host: a redirect from https to http on the same name (default
        // ports make both hosts equal) must not carry the credentials in the clear.
        authenticate && url.origin === this.base.origin ? this.authorization(req.scopes) : undefined);
    }
    /**
     * One exchange, following redirects by hand (a streamed body is spent: its redirect is the caller's
     * failure, to retry from its source), with the Authorization `authorize` gives for each hop.
     */
    async exchange(start, req, authorize) {
        let url = start;
        let method = req.method;
        let body = req.body;
        for (let hop = 0; hop < 5; hop++) {
            const headers = { 'User-Agent': 'depot-snapshot-action', ...req.headers };
            const auth = await authorize(url);
            if (auth)
                headers.Authorization = auth;
            const host = url.host;
            const res = await this.transport(url, {
                method,
                headers,
                body: req.stream ?? body,
                signal: AbortSignal.any([AbortSignal.timeout(req.timeoutMs ?? 120_000), this.deadline.signal]),
                stallMs: this.stallMs,
                onStall: () => this.opts.log.warn(`${req.what}: stalled: no bytes moved to or from ${host} for ${retry_seconds(this.stallMs)}; dropping the connection to try again`),
            });
            const location = res.headers.get('location');
            if (req.stream || ![301, 302, 303, 307, 308].includes(res.status) || !location)
                return res;
            await res.body?.cancel();
            url = new URL(location, url);
            if (res.status === 303) {
                method = 'GET';
                body = undefined;
            }
        }
        throw new RegistryError(`${req.what} failed: too many redirects`);
    }
    async authorization(scopes) {
        const c = this.challenge;
        const { username, password } = this.opts.credentials;
        if (!c)
            return undefined;
        if (c.scheme === 'basic') {
            return username !== undefined ? basic(username, password ?? '') : undefined;
        }
        const key = scopes.join(' ');
        const cached = this.tokens.get(key);
        if (cached && cached.expires > Date.now())
            return `Bearer ${cached.value}`;
        const token = await this.fetchToken(c.realm, c.service, scopes);
        this.tokens.set(key, token);
        return `Bearer ${token.value}`;
    }
    /** Docker token auth (`GET realm?service&scope`), or OAuth2 (`POST realm`) for identity tokens. */
    async fetchToken(realm, service, scopes) {
        const creds = this.opts.credentials;
        const url = new URL(realm);
        if (url.protocol === 'http:' && !this.opts.insecure && !isLoopback(url.hostname)) {
            throw new RegistryError(`the token server ${url.host} of ${this.host} is plain HTTP; refusing to send credentials there`);
        }
        const what = `getting a token from ${url.host} for ${this.host}`;
        // The token server's own credentials go to its origin only, as the registry's go to the registry's.
        const toRealm = (auth) => async (hop) => hop.origin === url.origin ? auth : undefined;
        let res;
        try {
            if (creds.identityToken) {
                const form = new URLSearchParams({
                    grant_type: 'refresh_token',
                    refresh_token: creds.identityToken,
                    client_id: 'depot-snapshot-action',
                });
                if (service)
                    form.set('service', service);
                form.set('scope', scopes.join(' '));
                res = await this.exchange(url, {
                    method: 'POST',
                    what,
                    headers: { 'Content-Type': 'application/x-www-form-urlencoded;charset=UTF-8' },
                    body: Buffer.from(form.toString()),
                    timeoutMs: 30_000,
                }, toRealm(undefined));
                if (res.status === 404 || res.status === 405) {
                    await res.body?.cancel();
                    res = undefined; // no OAuth2 endpoint: fall back to GET
                }
            }
            if (!res) {
                if (service)
                    url.searchParams.set('service', service);
                for (const s of scopes)
                    url.searchParams.append('scope', s);
                const auth = creds.username !== undefined && creds.password !== undefined
                    ? basic(creds.username, creds.password)
                    : undefined;
                res = await this.exchange(url, { method: 'GET', what, timeoutMs: 30_000 }, toRealm(auth));
            }
        }
        catch (err) {
            if (err instanceof RegistryError)
                throw err;
            if (this.deadline.passed)
                throw this.deadline.error(what);
            throw networkError(what, url.host, err);
        }
        if (res.status !== 200)
            throw await client_failure(what, res, creds);
        let json;
        try {
            json = (await res.json());
        }
        catch {
            throw new RegistryError(`${what} failed: the token server did not answer JSON`);
        }
        const value = json.token ?? json.access_token;
        if (!value)
            throw new RegistryError(`${what} failed: the answer holds no token`);
        // Renew 10 s early so a token never expires between being read and being used.
        const lifetime = Math.max(Number(json.expires_in) || 60, 20) * 1000;
        return { value, expires: Date.now() + lifetime - 10_000 };
    }
    backoff(attempt) {
        return backoff(attempt, this.retry);
    }
    /** RFC 7234 `Warning: 299` headers, shown once each. */
    showWarnings(res) {
        const w = res.headers.get('warning');
        if (!w)
            return;
        for (const m of w.matchAll(/299\s+\S+\s+"([^"]*)"/g)) {
            if (!this.warned.has(m[1]))
                this.opts.log.warn(`registry ${this.host}: ${m[1]}`);
            this.warned.add(m[1]);
        }
    }
}
function mayRetry(req) {
    return !req.stream && req.retry !== false;
}
function isLoopback(hostname) {
    const h = hostname.replace(/^\[|\]$/g, '');
    return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}
function basic(user, pass) {
    return 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
}
/** `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
function parseChallenge(header) {
    if (!header)
        return null;
    const scheme = header.trim().split(/\s+/)[0].toLowerCase();
    if (scheme === 'basic')
        return { scheme: 'basic' };
    if (scheme !== 'bearer')
        return null;
    const params = {};
    for (const m of header.matchAll(/(\w+)="([^"]*)"/g))
        params[m[1].toLowerCase()] = m[2];
    if (!params.realm)
        return null;
    return { scheme: 'bearer', realm: params.realm, service: params.service };
}
function retryAfter(header, max) {
    if (!header)
        return undefined;
    const secs = Number(header);
    const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(header) - Date.now();
    return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), max) : undefined;
}
function errorCode(err) {
    const e = err;
    if (e?.name === 'TimeoutError' || e?.cause?.name === 'TimeoutError')
        return 'ETIMEDOUT';
    return e?.cause?.code ?? e?.code;
}
function networkError(what, host, err) {
    const code = errorCode(err);
    const why = {
        ECONNREFUSED: 'the connection was refused (is the registry running, is the port right?)',
        ENOTFOUND: 'the host name does not resolve',
        ETIMEDOUT: 'it timed out',
        ESTALL: `it stalled: ${err?.message}`,
        ECONNRESET: 'the connection was reset',
        DEPTH_ZERO_SELF_SIGNED_CERT: 'its TLS certificate is self-signed (trust it with NODE_EXTRA_CA_CERTS)',
        SELF_SIGNED_CERT_IN_CHAIN: 'its TLS certificate chain is not trusted (NODE_EXTRA_CA_CERTS)',
        UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its TLS certificate cannot be verified (NODE_EXTRA_CA_CERTS)',
        ERR_TLS_CERT_ALTNAME_INVALID: 'its TLS certificate is for another host name',
        CERT_HAS_EXPIRED: 'its TLS certificate has expired',
        EPROTO: 'TLS failed (is it plain HTTP? then set insecure-registry)',
        ERR_SSL_WRONG_VERSION_NUMBER: 'TLS failed (is it plain HTTP? then set insecure-registry)',
    };
    const message = (code && why[code]) ||
        err?.cause?.message ||
        err?.message ||
        String(err);
    return new RegistryError(`${what} failed: cannot reach ${host}: ${message}`);
}
async function client_failure(what, res, creds) {
    let body = '';
    try {
        body = await readLimited(res, ERROR_BODY_LIMIT);
    }
    catch {
        body = '';
    }
    const err = describeFailure(what, res.status, body);
    if ((res.status === 401 || res.status === 403) && creds.source === 'anonymous') {
        err.message += '; no credentials were found (set username/password or token, or docker login)';
    }
    else if (res.status === 401 || res.status === 403) {
        err.message += `; credentials from ${creds.source}`;
    }
    return err;
}
/** Reads a whole answer body, refusing one over `limit` bytes (a registry answering a huge body). */
async function readBody(res, limit, what) {
    const length = Number(res.headers.get('content-length') ?? 0);
    if (length > limit) {
        await res.body?.cancel();
        throw new RegistryError(`${what}: the answer is ${length} bytes, over the ${limit} byte limit ${NOT_A_REGISTRY}`);
    }
    const chunks = [];
    let size = 0;
    for await (const chunk of res.body ?? []) {
        size += chunk.length;
        if (size > limit)
            throw new RegistryError(`${what}: the answer is over the ${limit} byte limit ${NOT_A_REGISTRY}`);
        chunks.push(chunk);
    }
    return Buffer.concat(chunks);
}
async function readLimited(res, limit) {
    if (!res.body)
        return '';
    const reader = res.body.getReader();
    const chunks = [];
    let size = 0;
    while (size < limit) {
        const { done, value } = await reader.read();
        if (done)
            break;
        chunks.push(value);
        size += value.length;
    }
    await reader.cancel().catch(() => { });
    return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

;// CONCATENATED MODULE: ./src/registry/connect.ts



/** A repository on its registry, with the credentials found for that registry. */
async function connect(reference, opts) {
    const credentials = await resolveCredentials(reference.registry, {
        ...opts.credentials,
        // A push target unless told otherwise (a registry pushed to that the inputs are not for).
        isTarget: opts.credentials.isTarget ?? opts.access === 'push',
    });
    const insecure = opts.insecureRegistry || isLoopback(reference.registry.replace(/:\d+$/, ''));
    opts.log.info(`${opts.access === 'push' ? 'pushing to' : 'reading'} ${reference.registry}/${reference.repository} (credentials: ${credentials.source}${insecure ? ', plain HTTP' : ''})`);
    const client = new RegistryClient({ registry: reference.registry, credentials, insecure, log: opts.log });
    return new Repository(client, reference.repository, opts.access);
}

;// CONCATENATED MODULE: ./src/registry/base.ts








/**
 * The base named by the marker file of an image this action made: its layers below the marker, read
 * from the place it was pushed to that fits this push best (one in the target's registry, else the
 * first), the next place when that one cannot be reached. The parent's manifest digest is recorded
 * when its tag still holds those layers.
 */
async function baseFromMarker(marker, opts) {
    const places = markerPlaces(marker).map((p) => parseReference(`${p.repository}:${p.tag}`));
    const ordered = [
        ...places.filter((r) => r.registry === opts.targetRegistry),
        ...places.filter((r) => r.registry !== opts.targetRegistry),
    ];
    let reference = ordered[0];
    let repository = await openBase(reference, opts);
    let parent = null;
    for (const [i, ref] of ordered.entries()) {
        reference = ref;
        repository = i === 0 ? repository : await openBase(ref, opts);
        let why;
        try {
            parent = await getManifest(repository, ref.tag);
            if (parent)
                break;
            why = 'its tag is gone';
        }
        catch (err) {
            why = `cannot be read (${err.message})`;
        }
        // The last place is used all the same: its blobs may still be readable, else the copy says why.
        if (i === ordered.length - 1)
            break;
        opts.log.info(`base image from the marker: ${format(ref)} ${why}; trying ${format(ordered[i + 1])}`);
    }
    const layers = marker.layers.map(({ diffId: _diffId, ...d }) => d);
    const parentLayers = parent ? (parseJson(parent.bytes).layers ?? []) : [];
    const same = parentLayers.length === layers.length + 1 && layers.every((l, i) => parentLayers[i].digest === l.digest);
    const name = format(reference);
    opts.log.info(`base image from the marker: ${name}${same ? ` (${parent.digest})` : ''}, ${layers.length} layers below its marker`);
    return {
        name,
        digest: same ? parent.digest : '',
        layers,
        diffIds: marker.layers.map((l) => l.diffId),
        config: {
            created: marker.created,
            architecture: '',
            os: '',
            config: marker.config,
            history: marker.history,
            rootfs: { type: 'layers', diff_ids: [] },
        },
        repository,
        reference,
        places,
    };
}
/** The base's repository, read-only, with the credentials credentialsFor gives its registry. */
function openBase(reference, opts) {
    const inputs = { ...opts.credentials, insecureRegistry: opts.insecureRegistry };
    return connect(reference, {
        ...credentialsFor(reference, { inputs, targetRegistry: opts.targetRegistry }),
        access: 'pull',
        log: opts.log,
    });
}
/** Docker's layer media types name the same bytes as OCI's: renamed, digests unchanged. */
const OCI_LAYER_TYPE = {
    'application/vnd.docker.image.rootfs.diff.tar.gzip': MediaType.layerGzip,
    'application/vnd.docker.image.rootfs.diff.tar': MediaType.layerTar,
};
/**
 * Reads a base image's manifest (OCI or Docker schema 2; from an index or manifest list, the entry for
 * this runtime's platform) and config.
 */
async function resolveBase(opts) {
    const reference = parseReference(opts.ref);
    if (!reference.tag && !reference.digest)
        reference.tag = 'latest';
    const name = format(reference);
    const repository = await openBase(reference, opts);
    const fail = (why) => new RegistryError(`base-image ${name}: ${why}`);
    let fetched = await getManifest(repository, reference.digest ?? reference.tag).catch((err) => {
        throw fail(err.message);
    });
    if (!fetched)
        throw fail('not found (check the reference, or push it first)');
    let manifest = parseJson(fetched.bytes);
    if (Array.isArray(manifest.manifests)) {
        const want = runtimePlatform();
        const matches = manifest.manifests.filter((d) => d.platform?.os === want.os && d.platform?.architecture === want.architecture);
        const entry = matches.find((d) => !want.variant || !d.platform?.variant || d.platform.variant === want.variant) ??
            matches[0];
        if (!entry) {
            const offered = manifest.manifests
                .map((d) => `${d.platform?.os}/${d.platform?.architecture}`)
                .join(', ');
            throw fail(`has no image for ${want.os}/${want.architecture} (it has ${offered || 'none'})`);
        }
        fetched = await getManifest(repository, entry.digest);
        if (!fetched)
            throw fail(`its ${want.architecture} manifest ${entry.digest} is missing`);
        manifest = parseJson(fetched.bytes);
    }
    if (!Array.isArray(manifest.layers) || !manifest.config?.digest)
        throw fail(`is not an image manifest (${fetched.mediaType})`);
    const config = await getImageConfig(repository, manifest);
    const diffIds = [...(config.rootfs?.diff_ids ?? [])];
    if (diffIds.length !== manifest.layers.length)
        throw fail(`its config lists ${diffIds.length} layers, its manifest ${manifest.layers.length}`);
    const layers = manifest.layers.map((d) => ({
        mediaType: OCI_LAYER_TYPE[d.mediaType] ?? d.mediaType,
        digest: d.digest,
        size: d.size,
        ...(d.annotations ? { annotations: d.annotations } : {}),
    }));
    // An image this action made ends with its marker layer: replaced by the new image's, never stacked.
    const history = [...(config.history ?? [])];
    const last = history.filter((h) => !h.empty_layer).at(-1);
    if (last?.comment?.startsWith(MARKER_COMMENT)) {
        layers.pop();
        diffIds.pop();
        history.splice(history.lastIndexOf(last), 1);
    }
    opts.log.info(`base image ${name}: ${fetched.digest}, ${layers.length} layers`);
    return {
        name,
        digest: fetched.digest,
        layers,
        diffIds: [...diffIds],
        config: { ...config, history },
        repository,
        reference,
    };
}

;// CONCATENATED MODULE: ./src/attest/artifact.ts


/** What an attestation is, as its artifact's `artifactType` and its one layer's media type. */
const ArtifactType = {
    cyclonedx: 'application/vnd.cyclonedx+json',
    inToto: 'application/vnd.in-toto+json',
};
/** The empty config of an artifact without one (image-spec 1.1 "Guidance for an empty descriptor"). */
function emptyConfig() {
    const bytes = Buffer.from('{}');
    return { bytes, descriptor: { mediaType: MediaType.empty, digest: sha256(bytes), size: bytes.length } };
}
/** The artifact manifest of `document` about the image manifest `subject`. Same input, same bytes. */
function artifactFor(subject, document, created) {
    const config = emptyConfig();
    const layer = {
        bytes: document.bytes,
        descriptor: {
            mediaType: document.artifactType,
            digest: sha256(document.bytes),
            size: document.bytes.length,
        },
    };
    const annotations = { [Annotation.created]: created };
    const manifest = {
        schemaVersion: 2,
        mediaType: MediaType.manifest,
        artifactType: document.artifactType,
        config: config.descriptor,
        layers: [layer.descriptor],
        // Only what identifies the subject: its annotations would make the artifact's digest depend on them.
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
        annotations,
    };
    const blob = jsonBlob(manifest, MediaType.manifest);
    return {
        kind: document.kind,
        artifactType: document.artifactType,
        manifest: blob,
        blobs: [config, layer],
        descriptor: { ...blob.descriptor, artifactType: document.artifactType, annotations },
    };
}
/** The artifact's manifest as a store takes it. */
function storedManifest(artifact) {
    const { digest, mediaType } = artifact.manifest.descriptor;
    return { digest, mediaType, bytes: artifact.manifest.bytes };
}

// EXTERNAL MODULE: ./node_modules/@cyclonedx/cyclonedx-library/dist.node/enums/index.js
var enums = __webpack_require__(6820);
// EXTERNAL MODULE: ./node_modules/@cyclonedx/cyclonedx-library/dist.node/models/index.js
var models = __webpack_require__(320);
// EXTERNAL MODULE: ./node_modules/@cyclonedx/cyclonedx-library/dist.node/serialize/index.node.js
var index_node = __webpack_require__(1248);
// EXTERNAL MODULE: ./node_modules/@cyclonedx/cyclonedx-library/dist.node/spec/index.js
var spec = __webpack_require__(4321);
// EXTERNAL MODULE: ./node_modules/packageurl-js/index.js
var packageurl_js = __webpack_require__(7091);
;// CONCATENATED MODULE: ./src/attest/sbom.ts

// The submodules alone: the package's index also loads its validators and resource paths.





/** Under this namespace, each component's properties say where in the image it was read from. */
const PROPERTY = { location: 'snapshot-action:location', source: 'snapshot-action:source-package' };
/**
 * A CycloneDX 1.6 JSON SBOM of every package in `inventory`, about the image as a `container`
 * component. Deterministic: components sorted, no random serial or bom-refs, the image's own time.
 */
function cyclonedxSbom(inventory, image) {
    const bom = new models.Bom({ serialNumber: serialNumber(image.digest) });
    bom.metadata = new models.Metadata({
        timestamp: new Date(image.created),
        component: new models.Component(enums.ComponentType.Container, imageName(image), {
            bomRef: image.digest,
            version: image.digest,
            purl: imagePurl(image),
        }),
        tools: new models.Tools({
            components: new models.ComponentRepository([
                new models.Component(enums.ComponentType.Application, 'snapshot-action', {
                    group: 'depot',
                    bomRef: 'snapshot-action',
                }),
            ]),
        }),
    });
    if (inventory.os) {
        bom.components.add(new models.Component(enums.ComponentType.OperatingSystem, inventory.os.id, {
            bomRef: `os:${inventory.os.id}`,
            ...(inventory.os.versionId ? { version: inventory.os.versionId } : {}),
            ...(inventory.os.prettyName ? { description: inventory.os.prettyName } : {}),
        }));
    }
    const refs = new Set();
    // In one order whatever the inventory's, so that a package found twice gets the same bom-refs.
    const packages = [...inventory.packages].sort((a, b) => compare(a.purl, b.purl) || compare(a.location, b.location));
    for (const p of packages)
        bom.components.add(component(p, uniqueRef(p, refs)));
    const serializer = new index_node.JsonSerializer(new index_node.JSON.Normalize.Factory(spec.Spec1dot6));
    return Buffer.from(serializer.serialize(bom, { sortLists: true }));
}
function component(p, bomRef) {
    const properties = new models.PropertyRepository([new models.Property(PROPERTY.location, p.location)]);
    if (p.source)
        properties.add(new models.Property(PROPERTY.source, p.source));
    return new models.Component(enums.ComponentType.Library, p.name, {
        bomRef,
        version: p.version,
        purl: p.purl,
        properties,
    });
}
/** The purl, else (the same package found at two places) the purl and where this one was found. */
function uniqueRef(p, taken) {
    let ref = p.purl;
    if (taken.has(ref))
        ref = `${p.purl}#${p.location}`;
    for (let n = 2; taken.has(ref); n++)
        ref = `${p.purl}#${p.location}#${n}`;
    taken.add(ref);
    return ref;
}
/** The image's name: the last part of its repository, or `snapshot` for a layout. */
function imageName(image) {
    return image.repository.split('/').pop()?.toLowerCase() || 'snapshot';
}
/** `pkg:oci/<name>@sha256%3A…?repository_url=<registry>/<repository>` (purl-spec's oci type). */
function imagePurl(image) {
    const qualifiers = image.repository ? { repository_url: image.repository } : undefined;
    return new packageurl_js.PackageURL('oci', undefined, imageName({ ...image, created: '' }), image.digest, qualifiers, undefined).toString();
}
/** `urn:uuid:` of a name-based UUID (v5 layout, SHA-1) of the digest: one image, one serial number. */
function serialNumber(digest) {
    const h = (0,external_node_crypto_.createHash)('sha1').update(`snapshot-action sbom ${digest}`).digest();
    h[6] = (h[6] & 0x0f) | 0x50;
    h[8] = (h[8] & 0x3f) | 0x80;
    const hex = h.subarray(0, 16).toString('hex');
    return `urn:uuid:${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
/** By code unit, not locale: the same order on every machine. */
function compare(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
}

;// CONCATENATED MODULE: ./src/attest/provenance.ts

/** Our SLSA build type: what `externalParameters` and `internalParameters` hold (README, Attestations). */
const BUILD_TYPE = 'https://github.com/depot/snapshot-action/attestations/snapshot/v1';
/**
 * An in-toto Statement v1 whose predicate is SLSA provenance v1: which workflow run made the image
 * from which commit, on top of which base image. Outside Actions (no GITHUB_*), what is known: the
 * image, its base and the times, with `internalParameters.github` saying none was found.
 */
function slsaProvenance(input) {
    const github = githubContext(input.env);
    const resolved = [];
    if (github.repository && github.sha)
        resolved.push({
            uri: `git+${github.server}/${github.repository}${github.ref ? `@${github.ref}` : ''}`,
            digest: { gitCommit: github.sha },
        });
    if (input.base?.digest)
        resolved.push({
            uri: imagePurl({ repository: baseRepository(input.base.name), digest: input.base.digest }),
            name: input.base.name,
            digest: { sha256: input.base.digest.replace(/^sha256:/, '') },
        });
    const workflow = github.workflowRef ? parseWorkflowRef(github.workflowRef, github.server) : undefined;
    const statement = {
        _type: 'https://in-toto.io/Statement/v1',
        subject: [
            {
                name: input.repository || 'snapshot',
                digest: { sha256: input.digest.replace(/^sha256:/, '') },
            },
        ],
        predicateType: 'https://slsa.dev/provenance/v1',
        predicate: {
            buildDefinition: {
                buildType: BUILD_TYPE,
                externalParameters: {
                    ...(workflow ? { workflow } : {}),
                    ...(input.base ? { baseImage: input.base.name } : {}),
                },
                internalParameters: {
                    github: github.repository
                        ? {
                            ...(github.eventName ? { event_name: github.eventName } : {}),
                            ...(github.repositoryId ? { repository_id: github.repositoryId } : {}),
                            ...(github.repositoryOwnerId ? { repository_owner_id: github.repositoryOwnerId } : {}),
                        }
                        : { note: 'not run by GitHub Actions: no GITHUB_* workflow context' },
                },
                resolvedDependencies: resolved,
            },
            runDetails: {
                builder: { id: builderId(github) },
                metadata: {
                    ...(github.runId
                        ? {
                            invocationId: `${github.server}/${github.repository}/actions/runs/${github.runId}/attempts/${github.runAttempt ?? '1'}`,
                        }
                        : {}),
                    startedOn: input.startedOn,
                    finishedOn: input.finishedOn,
                },
            },
        },
    };
    return Buffer.from(JSON.stringify(statement));
}
/** The named, non-secret values of the workflow run: nothing else of the environment is read. */
function githubContext(env) {
    const value = (name) => env[name]?.trim() || undefined;
    return {
        server: value('GITHUB_SERVER_URL') ?? 'https://github.com',
        repository: value('GITHUB_REPOSITORY'),
        repositoryId: value('GITHUB_REPOSITORY_ID'),
        repositoryOwnerId: value('GITHUB_REPOSITORY_OWNER_ID'),
        sha: value('GITHUB_SHA'),
        ref: value('GITHUB_REF'),
        workflowRef: value('GITHUB_WORKFLOW_REF'),
        eventName: value('GITHUB_EVENT_NAME'),
        runId: value('GITHUB_RUN_ID'),
        runAttempt: value('GITHUB_RUN_ATTEMPT'),
        actionRepository: value('GITHUB_ACTION_REPOSITORY'),
        actionRef: value('GITHUB_ACTION_REF'),
    };
}
/** `owner/repo/.github/workflows/ci.yml@refs/heads/main` → its repository URL, path and ref. */
function parseWorkflowRef(workflowRef, server) {
    const at = workflowRef.lastIndexOf('@');
    const file = at < 0 ? workflowRef : workflowRef.slice(0, at);
    const [owner, repo, ...rest] = file.split('/');
    return {
        ref: at < 0 ? '' : workflowRef.slice(at + 1),
        repository: `${server}/${owner}/${repo}`,
        path: rest.join('/'),
    };
}
/** This action at the ref the workflow used (`uses: depot/snapshot-action@v1`), when the runner says. */
function builderId(github) {
    const repository = github.actionRepository ?? 'depot/snapshot-action';
    return `${github.server}/${repository}${github.actionRef ? `@${github.actionRef}` : ''}`;
}
/** `registry/repository` of a reference `registry/repository[:tag][@digest]`. */
function baseRepository(name) {
    const withoutDigest = name.split('@')[0];
    const lastSlash = withoutDigest.lastIndexOf('/');
    const colon = withoutDigest.lastIndexOf(':');
    return colon > lastSlash ? withoutDigest.slice(0, colon) : withoutDigest;
}

;// CONCATENATED MODULE: ./src/registry/layer-cache.ts




const CACHE_DIR = 'depot-snapshot-action';
/**
 * Every directory this machine's layer cache may be in for the users at hand, for the walk to leave
 * out: the one this run uses (`XDG_CACHE_HOME` or `HOME`), the effective user's by its passwd home
 * (root's, when sudo or a runner set HOME elsewhere), and under sudo the calling user's (sudo may
 * reset HOME to root's). It lists the registries and repositories this machine pushed to.
 */
function layerCacheDirs(env = process.env, passwd = '/etc/passwd') {
    const homes = [effectiveHome(), env.SUDO_UID ? homeOf(env.SUDO_UID, passwd) : undefined];
    const dirs = [
        external_node_path_default().dirname(LayerCache.defaultPath(env)),
        ...homes.filter((h) => !!h).map((h) => external_node_path_default().join(h, '.cache', CACHE_DIR)),
    ];
    return [...new Set(dirs.map((d) => external_node_path_default().resolve(d)))];
}
function effectiveHome() {
    try {
        return external_node_os_default().userInfo().homedir; // from passwd, unlike os.homedir(), which prefers HOME
    }
    catch {
        return undefined; // a uid without a passwd entry
    }
}
/** The home directory of `uid` in the passwd file (`name:x:uid:gid:gecos:home:shell`). */
function homeOf(uid, passwd) {
    try {
        for (const line of (0,external_node_fs_.readFileSync)(passwd, 'utf8').split('\n')) {
            const f = line.split(':');
            if (f.length >= 7 && f[2] === uid && f[5])
                return f[5];
        }
    }
    catch {
        // no passwd file: nothing more to leave out
    }
    return undefined;
}
/** Entries kept; the oldest go first. A few thousand layers cover many images. */
const MAX_ENTRIES = 5000;
/**
 * Layers this machine pushed before, by fingerprint: which digest they had and which repositories
 * hold them. A push to a new repository can then mount an unchanged layer from a sibling repository
 * instead of compressing and sending it again.
 */
class LayerCache {
    file;
    entries;
    constructor(file, entries) {
        this.file = file;
        this.entries = entries;
    }
    static defaultPath(env = process.env) {
        const base = env.XDG_CACHE_HOME || external_node_path_default().join(env.HOME || external_node_os_default().homedir(), '.cache');
        return external_node_path_default().join(base, CACHE_DIR, 'layers.json');
    }
    static async load(file = LayerCache.defaultPath()) {
        try {
            const data = JSON.parse(await (0,promises_.readFile)(file, 'utf8'));
            return new LayerCache(file, new Map(Object.entries(data)));
        }
        catch {
            return new LayerCache(file, new Map()); // none yet, or unreadable: start afresh
        }
    }
    get(fingerprint) {
        return this.entries.get(fingerprint);
    }
    remember(fingerprint, layer, repository) {
        const old = this.entries.get(fingerprint);
        const repositories = old && old.layer.descriptor.digest === layer.descriptor.digest
            ? old.repositories.filter((r) => r !== repository)
            : [];
        this.entries.set(fingerprint, {
            layer,
            repositories: [repository, ...repositories].slice(0, 8),
            used: Date.now(),
        });
    }
    /** Writes the cache atomically; a failure only costs the next push some work. */
    async save() {
        const kept = [...this.entries].sort((a, b) => b[1].used - a[1].used).slice(0, MAX_ENTRIES);
        try {
            await (0,promises_.mkdir)(external_node_path_default().dirname(this.file), { recursive: true, mode: 0o700 });
            const tmp = `${this.file}.${process.pid}.tmp`;
            await (0,promises_.writeFile)(tmp, JSON.stringify(Object.fromEntries(kept)), { mode: 0o600 });
            await (0,promises_.rename)(tmp, this.file);
        }
        catch {
            // best effort
        }
    }
}

;// CONCATENATED MODULE: ./src/content/existing.ts


/**
 * Whether `image` satisfies `want`: its key is the one wanted (when one is), and it is younger than
 * `maxAgeMs` (when given; an image that does not say when it was made is not young). With neither,
 * any image does.
 */
function satisfies(image, want, now = Date.now()) {
    if (want.key && image.key !== want.key)
        return false;
    if (want.maxAgeMs) {
        const created = image.created ? Date.parse(image.created) : NaN;
        if (Number.isNaN(created) || now - created >= want.maxAgeMs)
            return false;
    }
    return true;
}
/**
 * The facts of a stored manifest: `created` from its annotation, else from its config when given;
 * `key` from its annotations. An index has no config: only its own annotations count.
 */
function describeExisting(digest, manifest, config) {
    const annotations = parseObject(manifest)?.annotations ?? {};
    const created = annotations[Annotation.created] || config?.created;
    const key = annotations[Annotation.key];
    return { digest, manifest, ...(created ? { created } : {}), ...(key !== undefined ? { key } : {}) };
}
/**
 * The image at `reference` in `source`, or null when there is none: one manifest read, and the
 * config only when the manifest does not say when the image was made.
 */
async function readExisting(source, reference) {
    const fetched = await source.manifest(reference);
    if (!fetched)
        return null;
    const parsed = parseObject(fetched.bytes);
    const config = parsed?.config;
    const needsConfig = !parsed?.annotations?.[Annotation.created] && config?.digest;
    const configJson = needsConfig ? await readSmallBlob(source, config.digest).catch(() => null) : null;
    return describeExisting(fetched.digest, fetched.bytes, configJson);
}
/**
 * Whether every one of `references` in `source` holds the same image, and that image satisfies
 * `want`: that image, else null. `first` is the image at `references[0]`, when already read.
 */
async function upToDateIn(source, references, want, first) {
    const [head, ...rest] = references;
    const image = first !== undefined ? first : await readExisting(source, head);
    if (!image || !satisfies(image, want))
        return null;
    for (const ref of rest) {
        if ((await source.manifest(ref))?.digest !== image.digest)
            return null;
    }
    return image;
}
/** A config-sized blob, checked against its digest; at most 8 MiB are read. */
async function readSmallBlob(source, digest) {
    const chunks = [];
    let size = 0;
    for await (const chunk of await source.openBlob(digest)) {
        size += chunk.length;
        if (size > 8 * 1024 * 1024)
            throw new Error(`blob ${digest} is too large for a config`);
        chunks.push(chunk);
    }
    const bytes = Buffer.concat(chunks);
    if ('sha256:' + (0,external_node_crypto_.createHash)('sha256').update(bytes).digest('hex') !== digest)
        throw new Error(`blob ${digest} does not match its digest`);
    return JSON.parse(bytes.toString('utf8'));
}
function parseObject(bytes) {
    try {
        const v = JSON.parse(bytes.toString('utf8'));
        return typeof v === 'object' && v !== null ? v : null;
    }
    catch {
        return null;
    }
}

;// CONCATENATED MODULE: ./src/content/copy.ts


/** An image that cannot be read as it should be: missing, or a manifest that is not one. */
class ContentError extends failure/* UserError */.yo {
}
/**
 * Makes every blob present at `target`, each decided once: skipped when the target has it, mounted
 * when source and target are two repositories of one registry, else streamed from source to target
 * (which checks it against its digest). `concurrency` blobs at a time.
 */
async function copyBlobs(source, blobs, target, opts) {
    const canMount = !!target.mount && !!source.registry && source.registry === target.registry && source.name !== target.name;
    const parallel = limiter(opts.concurrency);
    const how = { present: 0, mounted: 0, copied: 0 };
    await Promise.all(blobs.map((blob) => parallel(async () => {
        if (await target.exists?.(blob.digest))
            how.present++;
        else if (canMount && (await target.mount(blob.digest, source.name)))
            how.mounted++;
        else {
            await target.copyFrom(source, blob);
            how.copied++;
        }
    })));
    return how;
}
/**
 * Copies an image without unpacking or recompressing anything: its blobs (see copyBlobs), then an
 * index's child manifests by digest, then the top manifest under each tag, its bytes unchanged, so
 * the digest stays the same and a tag only ever points at an image whose every blob is in place.
 */
async function copyImage(source, reference, target, tags, opts) {
    const tree = await readTree(source, reference);
    const how = await copyBlobs(source, tree.blobs, target, opts);
    for (const child of tree.children)
        await target.putManifest(child);
    for (const tag of tags)
        await target.putManifest(tree.top, tag);
    if (!tags.length)
        await target.putManifest(tree.top);
    opts.log?.info(`blobs: ${how.present} already there, ${how.mounted} mounted, ${how.copied} copied`);
    return { digest: tree.top.digest, mediaType: tree.top.mediaType, manifest: tree.top.bytes, ...how };
}
/**
 * Copies the artifacts about an image (SBOM, provenance, signatures: its referrers) the same way,
 * then has the target list them as referrers of `subject`. Only artifacts whose manifest names
 * `subject` are taken (a stale referrers index may list others). Returns the descriptors copied.
 */
async function copyReferrers(source, subject, target, opts) {
    if (!source.referrers || !target.putReferrers)
        return [];
    const copied = [];
    const manifests = [];
    for (const d of await source.referrers(subject)) {
        const tree = await readTree(source, d.digest);
        if (parseManifest(source, tree.top).subject?.digest !== subject)
            continue;
        await copyBlobs(source, tree.blobs, target, opts);
        for (const child of tree.children)
            await target.putManifest(child);
        manifests.push(tree.top);
        copied.push(d);
    }
    if (manifests.length)
        await target.putReferrers(subject, manifests);
    return copied;
}
/** Reads a manifest (and, for an index, its children) and lists the blobs, config and layers. */
async function readTree(source, reference) {
    const top = await source.manifest(reference);
    if (!top)
        throw new ContentError(`${source.name}:${reference} not found`);
    const children = [];
    const blobs = new Map();
    const addImage = (m) => {
        for (const d of [m.config, ...(m.layers ?? [])])
            if (d?.digest)
                blobs.set(d.digest, d);
    };
    const parsed = parseManifest(source, top);
    if (Array.isArray(parsed.manifests)) {
        for (const d of parsed.manifests) {
            const child = await source.manifest(d.digest);
            if (!child)
                throw new ContentError(`${source.name}@${d.digest}, listed in ${reference}, is missing`);
            children.push(child);
            addImage(parseManifest(source, child));
        }
    }
    else {
        addImage(parsed);
    }
    return { top, children, blobs: [...blobs.values()] };
}
function parseManifest(source, m) {
    try {
        return JSON.parse(m.bytes.toString('utf8'));
    }
    catch {
        throw new ContentError(`manifest ${m.digest} of ${source.name} is not JSON`);
    }
}

;// CONCATENATED MODULE: ./src/layout/layout.ts












class LayoutError extends failure/* UserError */.yo {
}
/**
 * This boot and pid namespace, in the names of staging directories next to the pid: a later run may
 * remove a leftover only when its pid, in this same namespace, is no longer running. A pid from
 * another container or machine sharing the directory is never taken for one of ours.
 */
const PID_NAMESPACE = (() => {
    let id = '';
    try {
        id = (0,external_node_fs_.readFileSync)('/proc/sys/kernel/random/boot_id', 'utf8').trim() + (0,external_node_fs_.readlinkSync)('/proc/self/ns/pid');
    }
    catch {
        // no /proc: every run shares the one tag, and a pid that is running still protects its staging
    }
    return (0,external_node_crypto_.createHash)('sha256').update(id).digest('hex').slice(0, 8);
})();
/** `.NAME.partial-<pid>-<namespace>-<random>`, and its `.old` (the previous layout being removed). */
const stagingPrefix = (target) => `.${external_node_path_default().basename(target)}.partial-`;
const OWNED = /^(\d+)-([0-9a-f]{8})-[0-9a-f]{8}(\.old)?$/;
/**
 * An OCI image layout (image-spec `image-layout.md`) written atomically: everything goes to a sibling
 * staging directory that replaces `output` only once complete, so a failed or interrupted run leaves
 * whatever was at `output` untouched. A new layout holds nothing to skip or mount from: every blob
 * given is written.
 */
class LayoutWriter {
    output;
    staging;
    earlier;
    madeParent;
    othersStaging;
    /** `writing` into staging; `replaced` once the new layout is at `output` (the old one going). */
    state = 'writing';
    digest = '';
    written = { sent: 0, bytes: 0 };
    /** Artifacts about the image (putReferrers), listed in `index.json` after its tags. */
    referrers = [];
    forgetInterrupt;
    constructor(output, 
    /** Where the layout is built; the walk must leave it out when `output` lies inside `root`. */
    staging, 
    /** What was at `output`: what an interrupted run says is still there. */
    earlier, 
    /** The first of the directories made above `output`, removed again when nothing comes of it. */
    madeParent, 
    /** Staging directories of runs still going (or of unknown owners), left alone but never captured. */
    othersStaging) {
        this.output = output;
        this.staging = staging;
        this.earlier = earlier;
        this.madeParent = madeParent;
        this.othersStaging = othersStaging;
        this.forgetInterrupt = (0,interrupt/* onInterrupt */.nA)(() => this.interrupted());
    }
    /**
     * Refuses an `output` that is a file or a non-empty directory other than an image layout, and
     * removes what interrupted runs left next to it (their pid no longer running).
     */
    static async create(output) {
        const target = external_node_path_default().resolve(output);
        const earlier = await checkReplaceable(target);
        let madeParent;
        const staging = external_node_path_default().join(external_node_path_default().dirname(target), `${stagingPrefix(target)}${process.pid}-${PID_NAMESPACE}-${(0,external_node_crypto_.randomBytes)(4).toString('hex')}`);
        try {
            // Like `skopeo copy … oci:DIR`, the directories above output are made when missing.
            madeParent = await (0,promises_.mkdir)(external_node_path_default().dirname(target), { recursive: true, mode: 0o755 });
            await (0,promises_.mkdir)(external_node_path_default().join(staging, 'blobs', 'sha256'), { recursive: true, mode: 0o755 });
        }
        catch (err) {
            throw new LayoutError(`cannot create the output directory next to ${target}: ${err.message}`);
        }
        const others = await removeLeftovers(target);
        return new LayoutWriter(target, staging, earlier, madeParent, others);
    }
    get name() {
        return `oci:${this.output}`;
    }
    /** Blobs written, and their bytes, so far. */
    get counts() {
        return { present: 0, mounted: 0, ...this.written };
    }
    /** Paths the walk must leave out: `output`, this run's staging directories, and other runs'. */
    get ownPaths() {
        return [this.output, this.staging, `${this.staging}.old`, ...this.othersStaging];
    }
    async create() {
        const tmp = external_node_path_default().join(this.staging, 'blobs', `.tmp-${(0,external_node_crypto_.randomBytes)(6).toString('hex')}`);
        const file = (0,external_node_fs_.createWriteStream)(tmp, { mode: 0o644 });
        // Write errors (a full disk) reach the pipeline as a LayoutError naming the output, not an errno.
        const stream = new external_node_stream_.Writable({
            highWaterMark: 1024 * 1024,
            write: (chunk, _enc, done) => file.write(chunk, (err) => done(err && this.ioError(err))),
            final: (done) => {
                file.end();
                (0,external_node_stream_.finished)(file, (err) => done(err ? this.ioError(err) : null));
            },
            destroy: (err, done) => {
                file.destroy();
                done(err);
            },
        });
        file.on('error', () => { }); // reported through the callbacks above
        return {
            stream,
            commit: async (digest, size) => {
                await (0,promises_.rename)(tmp, this.blobPath(digest));
                this.written.sent++;
                this.written.bytes += size;
            },
            abort: async () => (0,promises_.rm)(tmp, { force: true }),
        };
    }
    /**
     * Copies blobs from a registry (a base image's layers), each checked against its digest, so the
     * layout can be unpacked on its own.
     */
    async addBlobs(open, blobs, concurrency) {
        await copyBlobs({ name: 'the base image', openBlob: open }, blobs, this, { concurrency });
    }
    /** Writes one blob read from `source`, checked against its digest and size. */
    async copyFrom(source, d) {
        const pending = await this.create();
        const tap = new HashTap();
        try {
            await (0,external_node_stream_promises_.pipeline)(await source.openBlob(d.digest), tap, pending.stream);
            if (tap.digest() !== d.digest || tap.bytes !== d.size) {
                throw new LayoutError(`blob ${d.digest} does not match its digest or size`);
            }
            await pending.commit(d.digest, d.size);
        }
        catch (err) {
            await pending.abort();
            throw err;
        }
    }
    /** Writes a manifest's bytes as a blob; tags go into `index.json`, written whole by finish. */
    async putManifest(manifest) {
        await this.putJson({
            descriptor: { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length },
            bytes: manifest.bytes,
        });
    }
    /**
     * Writes artifact manifests about `subject`; finish lists them in `index.json` with their
     * `artifactType` and no `ref.name`, so that they are found as referrers, never taken for tags.
     */
    async putReferrers(_subject, referrers) {
        for (const m of referrers) {
            await this.putManifest(m);
            if (!this.referrers.some((d) => d.digest === m.digest))
                this.referrers.push(referrerDescriptor(m.digest, m.bytes, m.mediaType));
        }
        return `index.json of ${this.output}`;
    }
    async putJson(blob) {
        await (0,promises_.writeFile)(this.blobPath(blob.descriptor.digest), blob.bytes, { mode: 0o644 }).catch((err) => {
            throw this.ioError(err);
        });
    }
    /** Writes `oci-layout` and `index.json` (one descriptor per tag) and moves the layout into place. */
    async finish(manifest, tags) {
        const index = {
            schemaVersion: 2,
            mediaType: MediaType.index,
            manifests: [
                ...tags.map((tag) => ({ ...manifest, annotations: { [Annotation.refName]: tag } })),
                ...this.referrers,
            ],
        };
        try {
            // Explicit modes, like the blobs': under a umask of 0 the defaults would be world-writable.
            await (0,promises_.writeFile)(external_node_path_default().join(this.staging, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }), {
                mode: 0o644,
            });
            await (0,promises_.writeFile)(external_node_path_default().join(this.staging, 'index.json'), jsonBlob(index, MediaType.index).bytes, {
                mode: 0o644,
            });
        }
        catch (err) {
            throw this.ioError(err);
        }
        this.digest = manifest.digest;
        this.swapIntoPlace();
        // An interrupt from here on finishes this removal and says the new layout is in place.
        await (0,promises_.rm)(`${this.staging}.old`, { recursive: true, force: true });
    }
    /**
     * Moves the new layout to `output`, an earlier one aside to `<staging>.old`: synchronous, so no
     * signal handler runs between the two renames and `output` always holds one whole layout.
     */
    swapIntoPlace() {
        const old = `${this.staging}.old`;
        let hadOld = false;
        try {
            (0,external_node_fs_.renameSync)(this.output, old);
            hadOld = true;
        }
        catch (err) {
            if (err.code !== 'ENOENT')
                throw this.ioError(err);
        }
        try {
            (0,external_node_fs_.renameSync)(this.staging, this.output);
        }
        catch (err) {
            if (hadOld)
                (0,external_node_fs_.renameSync)(old, this.output); // put the previous layout back
            throw this.ioError(err);
        }
        this.state = 'replaced';
    }
    /** A write that failed for want of room or rights: one line that says where and what to do. */
    ioError(err) {
        const code = err.code;
        if (code === 'ENOSPC' || code === 'EDQUOT')
            return new LayoutError(`no space left on device while writing the layout next to ${this.output}; free some space or choose another output`);
        if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM')
            return new LayoutError(`cannot write the layout next to ${this.output} (${code}); choose another output`);
        return err;
    }
    async abort() {
        if (this.state !== 'writing')
            return;
        this.state = 'aborted';
        this.forgetInterrupt();
        // Retried: a write still under way (an interrupt) may add a file while the directory is removed.
        await (0,promises_.rm)(this.staging, { recursive: true, force: true, maxRetries: 5 });
        this.removeMadeParents();
    }
    /** On SIGTERM/SIGINT: undoes the layout, or finishes putting it in place; says what is at output. */
    interrupted() {
        if (this.state === 'replaced') {
            removeWhileRemoved(`${this.staging}.old`);
            return `${this.output} holds the new layout (${this.digest}), but the run did not finish`;
        }
        removeWhileRemoved(this.staging);
        this.removeMadeParents();
        return {
            layout: `${this.output} still holds the earlier layout`,
            empty: `${this.output} is still the empty directory it was`,
            nothing: `nothing was written at ${this.output}`,
        }[this.earlier];
    }
    /** The directories made above `output` for a layout that did not come to be, as far as empty. */
    removeMadeParents() {
        if (!this.madeParent)
            return;
        for (let dir = external_node_path_default().dirname(this.output);; dir = external_node_path_default().dirname(dir)) {
            try {
                (0,external_node_fs_.rmdirSync)(dir);
            }
            catch {
                return; // not empty (someone else's now), or gone
            }
            if (dir === this.madeParent)
                return;
        }
    }
    blobPath(digest) {
        return external_node_path_default().join(this.staging, 'blobs', 'sha256', digest.slice('sha256:'.length));
    }
}
/** What replaceable is at `target` (a layout, an empty directory, nothing); refuses anything else. */
async function checkReplaceable(target) {
    let st;
    try {
        st = await (0,promises_.lstat)(target);
    }
    catch {
        return 'nothing';
    }
    if (!st.isDirectory())
        throw new LayoutError(`output ${target} exists and is not a directory; choose another path`);
    const names = await (0,promises_.readdir)(target);
    if (names.length === 0)
        return 'empty';
    const isLayout = await (0,promises_.readFile)(external_node_path_default().join(target, 'oci-layout'), 'utf8')
        .then((s) => typeof JSON.parse(s)?.imageLayoutVersion === 'string')
        .catch(() => false);
    if (!isLayout) {
        throw new LayoutError(`output ${target} is a non-empty directory that is not an OCI image layout; refusing to overwrite it`);
    }
    return 'layout';
}
/**
 * Removes staging directories (and `.old` layouts) that interrupted runs left next to `target`:
 * only those named with this pid namespace whose pid is no longer running. Returns the ones left in
 * place (a live run's, or named by another namespace or an older version), for the walk to skip.
 */
async function removeLeftovers(target) {
    const parent = external_node_path_default().dirname(target);
    const prefix = stagingPrefix(target);
    const others = [];
    for (const name of await (0,promises_.readdir)(parent).catch(() => [])) {
        if (!name.startsWith(prefix))
            continue;
        const owner = OWNED.exec(name.slice(prefix.length));
        const pid = owner ? Number(owner[1]) : 0;
        const dead = owner?.[2] === PID_NAMESPACE && pid !== process.pid && !running(pid);
        if (dead)
            await (0,promises_.rm)(external_node_path_default().join(parent, name), { recursive: true, force: true, maxRetries: 5 });
        else if (pid !== process.pid)
            others.push(external_node_path_default().join(parent, name));
    }
    return others;
}
function running(pid) {
    try {
        process.kill(pid, 0);
        return true;
    }
    catch (err) {
        return err.code === 'EPERM'; // alive, someone else's
    }
}
/**
 * Removes a directory that an unfinished asynchronous `rm` may still be removing (an interrupt in the
 * middle of it): rmSync stops at the first entry that vanished under it and, with `force`, says
 * nothing, so it is run again until the directory is gone.
 */
function removeWhileRemoved(dir) {
    for (let i = 0; i < 20 && (0,external_node_fs_.existsSync)(dir); i++)
        (0,external_node_fs_.rmSync)(dir, { recursive: true, force: true, maxRetries: 5 });
}

;// CONCATENATED MODULE: ./src/layout/reader.ts






/**
 * An OCI image layout as the source of a promote (`oci:DIR[:TAG]`, as skopeo spells it): a dry run's
 * output pushed later, as it is. Manifests are checked against their digests when read; blobs are
 * checked by the registry they are pushed to.
 */
function layoutSource(dir) {
    const blobPath = (digest) => {
        if (!/^sha256:[0-9a-f]{64}$/.test(digest))
            throw new LayoutError(`${dir}: "${digest}" is not a sha256 digest`);
        return external_node_path_default().join(dir, 'blobs', 'sha256', digest.slice(7));
    };
    const readIndex = async () => {
        try {
            return JSON.parse(await (0,promises_.readFile)(external_node_path_default().join(dir, 'index.json'), 'utf8'));
        }
        catch {
            throw new LayoutError(`${dir} is not an OCI image layout (no readable index.json)`);
        }
    };
    const source = {
        name: `oci:${dir}`,
        async manifest(reference) {
            const index = await readIndex();
            // Artifacts listed beside the image (its SBOM, its provenance) are no image to choose.
            const images = index.manifests.filter((d) => !d.artifactType);
            const found = index.manifests.find((d) => d.digest === reference) ??
                index.manifests.find((d) => d.annotations?.[Annotation.refName] === reference) ??
                (reference === 'latest' && images.length === 1 ? images[0] : undefined);
            const digest = found?.digest ?? (reference.startsWith('sha256:') ? reference : undefined);
            if (!digest)
                return null;
            const bytes = await (0,promises_.readFile)(blobPath(digest)).catch(() => null);
            if (!bytes)
                return null;
            if (sha256(bytes) !== digest)
                throw new LayoutError(`manifest ${digest} in ${dir} does not match its digest`);
            const mediaType = found?.mediaType ?? JSON.parse(bytes.toString()).mediaType ?? '';
            return { digest, mediaType, bytes };
        },
        /** The manifests listed in `index.json` whose `subject` is `digest`. */
        async referrers(digest) {
            const found = [];
            for (const d of (await readIndex()).manifests) {
                if (d.mediaType !== MediaType.manifest || d.digest === digest)
                    continue;
                const m = await source.manifest(d.digest);
                const subject = m && JSON.parse(m.bytes.toString()).subject;
                if (subject?.digest === digest)
                    found.push(d);
            }
            return found;
        },
        // 1 MiB reads: a sixteenth of the reads and buffers of the default 64 KiB.
        openBlob: async (digest) => (0,external_node_fs_.createReadStream)(blobPath(digest), { highWaterMark: 1024 * 1024 }),
    };
    return source;
}

;// CONCATENATED MODULE: ./src/destinations/layout.ts






/** The dry run's OCI image layout at `output`: every blob written, base layers included. */
async function openLayout(inputs) {
    const layout = await LayoutWriter.create(inputs.output);
    return {
        name: inputs.output,
        kind: 'layout',
        ownPaths: layout.ownPaths,
        // The layout already at output (an earlier dry run's), read before this run replaces it.
        upToDate: async (want) => (0,external_node_fs_.existsSync)(external_node_path_default().join(inputs.output, 'index.json'))
            ? upToDateIn(layoutSource(inputs.output), snapshotTags(inputs), want)
            : null,
        addBase: (base) => layout.addBlobs((digest) => base.repository.openBlob(digest), base.layers, inputs.concurrency),
        reuse: async () => undefined,
        exists: async () => false,
        wrote: () => { },
        sink: () => layout,
        // The artifacts are written with the image: the layout appears whole, attestations included.
        finish: async (image, tags, artifacts) => {
            await layout.putJson(image.config);
            await layout.putJson(image.manifest);
            for (const artifact of artifacts) {
                for (const blob of artifact.blobs)
                    await layout.putJson(blob);
                await layout.putReferrers(image.manifest.descriptor.digest, [storedManifest(artifact)]);
            }
            await layout.finish(image.manifest.descriptor, tags);
            return artifacts;
        },
        abort: () => layout.abort(),
        uploaded: () => 0,
        images: () => [],
        where: () => ({ output: inputs.output }),
        complete: () => { },
    };
}
/** The tags a snapshot writes: those of `image`, else `latest`. */
function snapshotTags(inputs) {
    return inputs.targets.length ? inputs.targets.map((t) => t.tag) : ['latest'];
}

;// CONCATENATED MODULE: ./src/layer/fingerprint.ts

/** Annotation on a layer descriptor: what the layer was made from, so an unchanged one is not re-read. */
const FINGERPRINT_ANNOTATION = 'dev.depot.snapshot.fingerprint';
/** Bump when the tar bytes for the same entries would change (header format, ordering). */
const FORMAT = 'snapshot-tar/1';
/**
 * A digest of everything that decides a layer's bytes without reading file contents: each entry's
 * path, type, mode, owner, size, mtime in ns, link target, device numbers and xattrs, plus the
 * compression. Like make, rsync and kaniko's "redo" mode, it trusts that content which changed also
 * changed size or mtime. Only metadata the image itself carries goes in (no inode, no ctime), so the
 * same tree gives the same fingerprint on any machine.
 */
function fingerprint(entries, indices, compression, level) {
    const h = (0,external_node_crypto_.createHash)('sha256');
    // Gathered as latin1 text (one char per byte) and hashed 64 KiB at a time: a few hash calls per
    // entry cost more than the hashing itself.
    let text = `${FORMAT} ${compression} ${level}\n`;
    const groups = new Map();
    for (const i of indices) {
        const e = entries.get(i);
        // Hardlink groups by their order of appearance in the layer: inode numbers differ across machines.
        const group = e.linkGroup
            ? (groups.get(e.linkGroup) ?? groups.set(e.linkGroup, groups.size).get(e.linkGroup))
            : -1;
        text +=
            e.path.toString('latin1') +
                `\0${e.kind} ${e.mode} ${e.uid} ${e.gid} ${e.size} ${e.mtimeSec}.${e.mtimeNsec} ${e.devMajor ?? ''} ${e.devMinor ?? ''} ${group}\0`;
        if (e.linkTarget)
            text += e.linkTarget.toString('latin1');
        for (const [name, value] of e.xattrs ?? [])
            text += `\0${name}=${value.length}:${value.toString('latin1')}`; // names are latin1 already
        // Content given instead of the file's (a scrubbed git config) is small: hashed itself.
        if (e.content)
            text += `\0content:${(0,external_node_crypto_.createHash)('sha256').update(e.content).digest('hex')}`;
        text += '\n';
        if (text.length >= 65536) {
            h.update(text, 'latin1');
            text = '';
        }
    }
    h.update(text, 'latin1');
    return 'sha256:' + h.digest('hex');
}

;// CONCATENATED MODULE: ./src/registry/push.ts










/**
 * Pushes an image to one registry: blobs first to the first target's repository (present ones
 * skipped), then mounted into its other repositories, the config, and last the manifest once per tag,
 * so a tag only ever points at an image whose every blob is in its repository.
 */
class RegistryDestination {
    repo;
    targets;
    log;
    cache;
    existing = null;
    /** Bytes sent for the image once its manifests are in: what follows (attestations) is not the image. */
    imageBytes = null;
    /** Layers written by this push, to remember in the cache once the manifest is in. */
    written = new Map();
    /** The references tagged so far, in order. */
    pushed = [];
    /** Every repository pushed to, the first one's first: they share its client (and its tokens). */
    repos;
    constructor(repo, targets, log, cache) {
        this.repo = repo;
        this.targets = targets;
        this.log = log;
        this.cache = cache;
        this.repos = new Map([[repo.name, repo]]);
        for (const t of targets)
            if (!this.repos.has(t.repository))
                this.repos.set(t.repository, new Repository(repo.client, t.repository));
    }
    static async open(opts) {
        const first = opts.targets[0];
        const repo = await connect(first, {
            credentials: opts.credentials,
            insecureRegistry: opts.insecureRegistry,
            access: 'push',
            log: opts.log,
        });
        const cache = opts.cache ?? (await LayerCache.load());
        const dest = new RegistryDestination(repo, opts.targets, opts.log, cache);
        await dest.readExisting();
        return dest;
    }
    get registry() {
        return this.targets[0].registry;
    }
    get cacheFile() {
        return this.cache.file;
    }
    get image() {
        const t = this.targets[0];
        return `${t.registry}/${t.repository}`;
    }
    /** The image at the first tag now, if it was made by this action: how old, and its layers. */
    async readExisting() {
        const tag = this.targets[0].tag;
        const fetched = await getManifest(this.repo, tag);
        if (!fetched)
            return;
        const manifest = parseJson(fetched.bytes);
        if (!Array.isArray(manifest.layers) || !manifest.config) {
            // An index, or not an image: nothing to reuse, but it is what the tag holds.
            this.existing = { image: describeExisting(fetched.digest, fetched.bytes), layers: new Map() };
            return;
        }
        const config = await getImageConfig(this.repo, manifest).catch(() => null);
        const layers = new Map();
        manifest.layers.forEach((d, i) => {
            const fp = d.annotations?.[FINGERPRINT_ANNOTATION];
            const diffId = config?.rootfs?.diff_ids?.[i];
            if (fp && diffId)
                layers.set(fp, {
                    descriptor: d,
                    diffId,
                    comment: config?.history?.filter((h) => !h.empty_layer)[i]?.comment ?? '',
                });
        });
        this.existing = { image: describeExisting(fetched.digest, fetched.bytes, config), layers };
    }
    /**
     * The image every tag of this registry holds, in every repository, when they all hold the same one
     * and it satisfies `want`; else null.
     */
    async upToDate(want) {
        const here = this.targets.filter((t) => t.repository === this.repo.name).map((t) => t.tag);
        const image = await upToDateIn(this.repo, here, want, this.existing?.image ?? null);
        if (!image)
            return null;
        for (const t of this.targets.filter((t) => t.repository !== this.repo.name)) {
            const repo = this.repos.get(t.repository);
            if ((await getManifest(repo, t.tag))?.digest !== image.digest)
                return null;
        }
        return image;
    }
    /**
     * A layer with this fingerprint that the repository has (one HEAD says so), or can mount from a
     * sibling repository this machine pushed it to: reused without reading a byte of the tree.
     */
    async reuse(fingerprint) {
        const cached = this.cache.get(fingerprint);
        const layer = this.existing?.layers.get(fingerprint) ?? cached?.layer;
        if (!layer)
            return undefined;
        const digest = layer.descriptor.digest;
        let how = 'already there';
        if (!(await this.repo.exists(digest))) {
            const registry = this.targets[0].registry;
            const sources = (cached?.repositories ?? [])
                .filter((r) => r.startsWith(registry + '/') && r !== this.image)
                .map((r) => r.slice(registry.length + 1));
            let mounted = false;
            for (const from of sources) {
                if ((mounted = await this.repo.mount(digest, from)))
                    break;
            }
            if (!mounted) {
                this.log.info(`layer ${digest.slice(0, 19)} is no longer in ${this.image} (evicted or garbage-collected?): writing it again`);
                return undefined;
            }
            how = 'mounted';
        }
        this.written.set(fingerprint, layer);
        return { layer, how };
    }
    /**
     * Makes the base image's layers present in the target repository without recompressing them:
     * skipped when there, mounted from the base's repository on the same registry (or from another
     * place in this registry its marker names), else streamed blob to blob from the base's registry.
     */
    async addBase(base, concurrency) {
        const local = base.places?.find((p) => p.registry === this.registry && p.registry !== base.reference.registry);
        if (local) {
            // Read with this registry's client: the place is in this registry, the run may pull from it.
            const place = new Repository(this.repo.client, local.repository, 'pull');
            try {
                const how = await copyBlobs(place, base.layers, this.repo, { concurrency });
                this.log.info(`base layers: ${how.present} already there, ${how.mounted} mounted from ${place.name}, ${how.copied} copied`);
                return;
            }
            catch (err) {
                if (err instanceof DeadlineError)
                    throw err;
                this.log.info(`base layers: ${format(local)} cannot give them (${err.message}); reading ${base.name}`);
            }
        }
        const how = await copyBlobs(base.repository, base.layers, this.repo, { concurrency });
        this.log.info(`base layers: ${how.present} already there, ${how.mounted} mounted from ${base.repository.name}, ${how.copied} copied`);
    }
    /** Whether the repository holds a blob now (one HEAD). */
    async exists(digest) {
        return this.repo.exists(digest);
    }
    /** Notes a layer written by this push, for the cache. */
    wrote(fingerprint, layer) {
        this.written.set(fingerprint, layer);
    }
    /** Where a layer goes up; `label` names it in messages ("layer 2/5 /usr"). */
    sink(label) {
        return this.repo.sink(label);
    }
    /** Bytes of the image sent to every repository of this registry: its attestations are not counted. */
    get uploaded() {
        return this.imageBytes ?? this.bytesSent();
    }
    bytesSent() {
        return [...this.repos.values()].reduce((n, r) => n + r.uploaded, 0);
    }
    /**
     * The config, every blob mounted into the other repositories (skipped when there, copied if the
     * registry declines the mount), then the manifest under each tag; the layer cache is saved by the
     * caller (saveCache), once for every registry of the run.
     */
    async finish(image, concurrency) {
        await this.repo.putBuffer(image.config.descriptor, image.config.bytes); // skipped when present
        const manifest = parseJson(image.manifest.bytes);
        const blobs = [manifest.config, ...manifest.layers];
        for (const other of [...this.repos.values()].slice(1)) {
            const how = await copyBlobs(this.repo, blobs, other, { concurrency });
            this.log.info(`${this.registry}/${other.name}: ${how.present} blobs already there, ${how.mounted} mounted from ${this.repo.name}, ${how.copied} copied`);
        }
        for (const t of this.targets) {
            const repo = this.repos.get(t.repository);
            await putManifest(repo, t.tag, image.manifest.bytes, image.manifest.descriptor.mediaType);
            this.pushed.push(t);
            this.log.info(`pushed ${format(t)}`);
        }
        for (const [fp, layer] of this.written)
            for (const repo of this.repos.values())
                this.cache.remember(fp, layer, `${this.registry}/${repo.name}`);
        this.imageBytes = this.bytesSent();
    }
    /**
     * Each artifact's blobs, then its manifest, listed as a referrer of the image (referrers API or tag
     * schema) in every repository of this registry: uploaded to the first, mounted into the others. The
     * image is pushed already: an artifact a repository refuses is one warning, and left out of what
     * this returns.
     */
    async attach(subject, artifacts, concurrency) {
        const attached = [];
        for (const artifact of artifacts) {
            let everywhere = true;
            for (const repo of this.repos.values()) {
                const name = `${this.registry}/${repo.name}`;
                try {
                    if (repo === this.repo)
                        for (const blob of artifact.blobs)
                            await repo.putBuffer(blob.descriptor, blob.bytes);
                    else
                        await copyBlobs(this.repo, artifact.blobs.map((b) => b.descriptor), repo, { concurrency });
                    const how = await repo.putReferrers(subject, [storedManifest(artifact)]);
                    this.log.info(`attached the ${artifact.kind} (${artifact.manifest.descriptor.digest}) to ${name} through the ${how}`);
                }
                catch (err) {
                    everywhere = false;
                    // Even past the run's deadline: the image is pushed, and the outputs say what is missing.
                    this.log.warn(`the ${artifact.kind} was not attached to ${name}@${subject}: ${err.message}`);
                }
            }
            if (everywhere)
                attached.push(artifact);
        }
        return attached;
    }
    /** Writes the layer cache (shared by every registry of a run). */
    saveCache() {
        return this.cache.save();
    }
    async abort() { }
}

;// CONCATENATED MODULE: ./src/destinations/registries.ts




/**
 * A snapshot pushed to several registries at once, one RegistryDestination each (which mounts blobs
 * into its other repositories). A new layer is compressed once and its bytes go to every registry at
 * the pace of the slowest; a registry that fails is dropped and the others go on to their tags. The
 * run then fails naming the references not written (complete()); when every registry fails, with
 * the first one's error alone, as a push to one registry would.
 */
class Registries {
    places;
    opts;
    constructor(places, opts) {
        this.places = places;
        this.opts = opts;
    }
    static async open(specs, opts) {
        const places = specs.map((s) => ({ registry: s.registry, targets: s.targets }));
        const registries = new Registries(places, opts);
        await registries.settle(places, async (p) => {
            p.dest = await specs[places.indexOf(p)].open();
        });
        return registries;
    }
    /** The Destination the snapshot command sees; `cacheFile` is left out of the walk. */
    destination(cacheFile) {
        const repositories = [...new Set(this.places.flatMap((p) => p.targets.map(repositoryOf)))];
        return {
            name: repositories.join(', '),
            kind: 'registry',
            ownPaths: [cacheFile],
            upToDate: (want) => this.upToDate(want),
            addBase: async (base) => {
                await this.settle(this.live(), (p) => p.dest.addBase(base, this.opts.concurrency));
            },
            reuse: (fp) => this.reuse(fp),
            exists: (digest) => this.exists(digest),
            wrote: (fp, layer) => this.live().forEach((p) => p.dest.wrote(fp, layer)),
            sink: (label) => this.sink(label),
            finish: (image, _tags, artifacts) => this.finish(image, artifacts),
            abort: async () => { },
            uploaded: () => this.places.reduce((n, p) => n + (p.dest?.uploaded ?? 0), 0),
            images: () => this.pushed().map(format),
            where: (digest) => ({
                image: `${repositoryOf(this.pushed()[0] ?? this.places[0].targets[0])}@${digest}`,
            }),
            complete: () => this.complete(),
        };
    }
    live() {
        return this.places.filter((p) => p.dest && !p.error);
    }
    pushed() {
        return this.places.flatMap((p) => p.dest?.pushed ?? []);
    }
    /**
     * Runs `fn` for each place at once; a place whose `fn` fails is dropped. When none is left, the
     * first place's error is the run's.
     */
    async settle(places, fn) {
        const results = await Promise.allSettled(places.map(fn));
        const done = [];
        results.forEach((r, i) => {
            if (r.status === 'fulfilled')
                done.push({ place: places[i], value: r.value });
            else
                this.fail(places[i], r.reason);
        });
        if (!this.live().length)
            throw this.places.find((p) => p.error).error;
        return done;
    }
    fail(place, error) {
        if (place.error)
            return;
        place.error = error;
        if (this.places.length > 1 && this.live().length)
            this.opts.log.warn(`registry ${place.registry} failed, going on with the others: ${error.message}`);
    }
    /** The image every tag of every registry holds, when it is the same one and satisfies `want`. */
    async upToDate(want) {
        if (this.live().length < this.places.length)
            return null;
        // A registry that cannot be read is dropped (reported at the end): the others still get the image.
        const found = await this.settle(this.live(), (p) => p.dest.upToDate(want));
        if (found.length < this.places.length)
            return null;
        const digests = new Set(found.map((f) => f.value?.digest));
        return digests.size === 1 ? found[0].value : null;
    }
    /**
     * A layer one registry has (or mounts) by fingerprint: reused when every other registry has its
     * blob too, or gets it copied from that one, streamed.
     */
    async reuse(fingerprint) {
        const found = await this.settle(this.live(), (p) => p.dest.reuse(fingerprint));
        const from = found.find((f) => f.value);
        if (!from?.value)
            return undefined;
        const { layer, how } = from.value;
        const others = found.filter((f) => f.value?.layer.descriptor.digest !== layer.descriptor.digest);
        let copied = 0;
        await this.settle(others.map((o) => o.place), async (p) => {
            if (await p.dest.exists(layer.descriptor.digest))
                return;
            await p.dest.repo.copyFrom(from.place.dest.repo, layer.descriptor);
            copied++;
        });
        this.live().forEach((p) => p.dest.wrote(fingerprint, layer));
        return {
            layer,
            how: copied ? `${how}, copied to ${copied} other registr${copied > 1 ? 'ies' : 'y'}` : how,
        };
    }
    /** Whether every registry holds the blob. */
    async exists(digest) {
        const found = await this.settle(this.live(), (p) => p.dest.exists(digest));
        return found.every((f) => f.value);
    }
    /**
     * One blob to every registry at once (with one registry, its own sink). A registry whose upload
     * fails gets the blob copied from one that has it; one that fails that too is dropped. When every
     * upload fails, the first failure is thrown (a lost session starts the layer over, as for one).
     */
    sink(label) {
        const live = this.live();
        if (live.length === 1)
            return live[0].dest.sink(label);
        const sinks = live.map((place) => ({ place, sink: place.dest.sink(label) }));
        return {
            needsDigestFirst: () => sinks.some((s) => s.sink.needsDigestFirst?.() ?? false),
            create: async (expected) => {
                const created = await this.settle(sinks.map((s) => s.place), (p) => sinks.find((s) => s.place === p).sink.create(expected));
                return this.tee(created.map(({ place, value }) => ({ place, pending: value })));
            },
        };
    }
    tee(branches) {
        return {
            stream: teeStream(branches),
            commit: async (digest, size) => {
                await Promise.all(branches.map(async (b) => {
                    if (!b.error)
                        await b.pending.commit(digest, size).catch((err) => (b.error ??= err));
                    if (b.error)
                        await b.pending.abort().catch(() => { });
                }));
                const stored = branches.find((b) => !b.error);
                if (!stored)
                    throw branches[0].error;
                const descriptor = { mediaType: 'application/octet-stream', digest, size };
                await this.settle(branches.filter((b) => b.error).map((b) => b.place), async (p) => {
                    const failure = branches.find((b) => b.place === p).error;
                    this.opts.log.info(`${p.registry}: the upload failed (${failure.message}); copying ${digest.slice(0, 19)} from ${stored.place.registry}`);
                    await p.dest.repo.copyFrom(stored.place.dest.repo, descriptor);
                });
            },
            abort: async () => {
                await Promise.all(branches.map((b) => b.pending.abort().catch(() => { })));
            },
        };
    }
    /**
     * Every registry's config and tags; then, once all that could be are written, the artifacts about
     * the image in each. Returns the artifacts attached wherever the image is.
     */
    async finish(image, artifacts) {
        const done = await this.settle(this.live(), (p) => p.dest.finish(image, this.opts.concurrency));
        await done[0].place.dest.saveCache(); // one cache, shared by every registry
        if (!artifacts.length)
            return [];
        const subject = image.manifest.descriptor.digest;
        const attached = await Promise.all(done.map(({ place }) => place.dest.attach(subject, artifacts, this.opts.concurrency)));
        return artifacts.filter((a) => attached.every((list) => list.includes(a)));
    }
    /** After the result is published: the run fails when a registry did not get all its tags. */
    complete() {
        const failures = this.places
            .filter((p) => p.error)
            .map((p) => ({
            registry: p.registry,
            references: p.targets.filter((t) => !p.dest?.pushed.includes(t)).map(format),
            error: p.error,
        }));
        if (failures.length)
            throw new NotWrittenError(failures);
    }
}
/**
 * Writes every chunk to each branch that has not failed, and takes the next once all of them took
 * it (the slowest sets the pace); a branch that fails is left behind. Fails only when all have.
 */
function teeStream(branches) {
    for (const b of branches)
        b.pending.stream.on('error', (err) => (b.error ??= err));
    const alive = () => branches.filter((b) => !b.error);
    const settled = (cb) => () => cb(alive().length ? null : (branches[0].error ?? new Error('every upload failed')));
    return new external_node_stream_.Writable({
        highWaterMark: CHUNK_SIZE,
        write(chunk, _enc, cb) {
            void Promise.all(alive().map((b) => whenTaken(b, (s) => s.write(chunk)))).then(settled(cb));
        },
        final(cb) {
            void Promise.all(alive().map((b) => whenTaken(b, (s) => (s.end(), false)))).then(settled(cb));
        },
        destroy(err, cb) {
            for (const b of branches)
                if (!b.pending.stream.destroyed)
                    b.pending.stream.destroy();
            cb(err);
        },
    });
}
/**
 * Resolves once the branch's stream took what `act` gave it: at once when it wants more, else on
 * `drain` (or `finish` after `end`), or when the stream fails or closes.
 */
function whenTaken(b, act) {
    const s = b.pending.stream;
    return new Promise((resolve) => {
        if (b.error || s.destroyed)
            return resolve();
        const done = () => {
            for (const e of ['drain', 'finish', 'error', 'close'])
                s.off(e, done);
            resolve();
        };
        for (const e of ['drain', 'finish', 'error', 'close'])
            s.on(e, done);
        if (act(s))
            done();
    });
}
function repositoryOf(t) {
    return `${t.registry}/${t.repository}`;
}

;// CONCATENATED MODULE: ./src/destinations/registry.ts





/** The credential inputs (`username`/`password`/`token`), for the registry they are meant for. */
function credentialInputs(inputs) {
    return { token: inputs.token, username: inputs.username, password: inputs.password };
}
/**
 * Every registry of the `image` lines, one RegistryDestination each (blobs uploaded, found or
 * mounted, then the manifests), behind one Destination (see Registries). A registry that cannot be
 * opened is left out and reported at the end, unless it is the only one.
 */
async function openRegistry(inputs, log) {
    const first = inputs.targets[0];
    if (!first)
        throw new Error('a push needs an image to push to'); // getInputs requires one unless dry-run
    const cache = await LayerCache.load();
    const registries = await Registries.open(groupTargets(inputs.targets).map((group) => ({
        registry: group.registry,
        targets: group.targets,
        open: () => RegistryDestination.open({
            targets: group.targets,
            ...pushCredentials(group.registry, first.registry, { ...inputs }),
            cache,
            log,
        }),
    })), { concurrency: inputs.concurrency, log });
    return registries.destination(cache.file);
}

;// CONCATENATED MODULE: ./src/diff/recapture.ts


const recapture_WH = '.wh.';
const recapture_OPAQUE = '.wh..wh..opq';
/**
 * The paths some layers touched: written (any entry), deleted (a whiteout) or made opaque. Their state
 * in the live tree is what those layers amount to, on top of the layers below them.
 */
class TouchedPaths {
    /** latin1 keys of paths written or deleted. */
    paths = new Set();
    /**
     * latin1 keys of directories whose lower content must stay hidden: made opaque, or deleted (a
     * directory deleted and made again holds only what it holds now, not what the layers below had).
     */
    hidden = new Set();
    /** One entry name of a layer: a whiteout names the path it deletes, or its opaque directory. */
    addName(name) {
        const slash = name.lastIndexOf(0x2f);
        const base = name.subarray(slash + 1).toString('latin1');
        const dir = slash < 0 ? '' : name.subarray(0, slash).toString('latin1');
        // Names no layer of ours holds (the root, `.` or `..`, an opaque root): never a whiteout of `/`.
        const parts = name.toString('latin1').split('/');
        if (!name.length || parts.some((p) => p === '' || p === '.' || p === '..'))
            return;
        if (base === recapture_OPAQUE) {
            if (dir)
                this.hidden.add(dir);
        }
        else if (base.startsWith(recapture_WH)) {
            const gone = (dir ? dir + '/' : '') + base.slice(recapture_WH.length);
            this.paths.add(gone);
            this.hidden.add(gone);
        }
        else
            this.paths.add(name.toString('latin1'));
    }
    /** Every entry of a change set (whiteouts included). */
    addEntries(entries) {
        for (let i = 0; i < entries.length; i++)
            this.addName(entries.path(i));
    }
    get size() {
        return new Set([...this.paths, ...this.hidden]).size;
    }
}
/**
 * The live state of `touched`, taken from a walk of the whole tree: the entries there (an opaque
 * directory with everything below it), their parent directories, and a whiteout for each touched
 * path that is gone. Placed on the layers below the ones that touched these paths, it gives the tree
 * as it is now. Paths the walk left out (excluded, sockets) get no whiteout: they are not captured,
 * not deleted. `complete` is given the indices of the entries taken before they are read (a walk
 * that left xattrs unread reads theirs there).
 */
async function recapture(tree, touched, leftOut, complete = async () => { }) {
    const isLeftOut = leftOutBy(leftOut.excluded, leftOut.sockets);
    const include = new Uint8Array(tree.length); // 1: touched, 2: a parent of something touched
    const present = new Map();
    let opaqueDir = null;
    const opaque = [];
    let changed = 0;
    for (let i = 0; i < tree.length; i++) {
        const p = tree.path(i);
        const key = p.toString('latin1');
        present.set(key, i);
        if (opaqueDir && !isInside(p, opaqueDir))
            opaqueDir = null;
        if (!opaqueDir && touched.hidden.has(key) && tree.kind(i) === 'dir') {
            opaqueDir = p;
            opaque.push(p);
        }
        if (opaqueDir || touched.paths.has(key)) {
            include[i] = 1;
            changed++;
        }
    }
    // A gone path gets a whiteout where its parent still stands; below a gone parent, that parent's
    // own whiteout (it was touched too) hides everything.
    const deletions = new Map();
    for (const key of [...touched.paths, ...touched.hidden]) {
        const p = Buffer.from(key, 'latin1');
        if (present.has(key) || isLeftOut(p))
            continue;
        const parent = parentOf(p);
        if (parent.length && !present.has(parent.toString('latin1')))
            continue;
        deletions.set(key, p);
    }
    return changeSet({ entries: tree, include, deletions: [...deletions.values()], opaque, changed, complete });
}

;// CONCATENATED MODULE: ./src/layer/listing.ts


const listing_BLOCK = 512;
const PAX = 0x78; // 'x': extended header for the next entry
const PAX_GLOBAL = 0x67; // 'g'
const GNU_LONGNAME = 0x4c; // 'L'
/**
 * Reads the names of a layer's entries, as `/`-less relative paths (`usr/bin/tool`, a directory
 * without its trailing slash, a whiteout as `.wh.` named), in archive order. Only the headers are
 * parsed; file data is decompressed (it must be, to find the next header) and skipped.
 */
async function listLayer(blob, mediaType, onName) {
    const tar = decompressed(blob, mediaType);
    let pending = Buffer.alloc(0);
    let skip = 0;
    let header = null; // a PAX or GNU long-name header whose data we are collecting
    let headerType = 0;
    let dataLeft = 0;
    let longName = null;
    let zeroBlocks = 0;
    // Read to the end even past the end-of-archive blocks, so the caller can check the blob's digest.
    for await (const chunk of tar) {
        if (zeroBlocks === 2)
            continue;
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        let at = 0;
        for (;;) {
            if (skip) {
                const n = Math.min(skip, pending.length - at);
                skip -= n;
                at += n;
                if (skip)
                    break;
            }
            if (header) {
                const n = Math.min(dataLeft, pending.length - at);
                header = Buffer.concat([header, pending.subarray(at, at + n)]);
                dataLeft -= n;
                at += n;
                if (dataLeft)
                    break;
                skip = padding(header.length);
                if (headerType === PAX)
                    longName = paxPath(header) ?? longName;
                else if (headerType === GNU_LONGNAME)
                    longName = cString(header);
                header = null;
                continue;
            }
            if (pending.length - at < listing_BLOCK)
                break;
            const block = pending.subarray(at, at + listing_BLOCK);
            at += listing_BLOCK;
            if (block.every((b) => b === 0)) {
                if (++zeroBlocks === 2)
                    break;
                continue;
            }
            zeroBlocks = 0;
            const type = block[156];
            const size = octal(block.subarray(124, 136));
            if (type === PAX || type === PAX_GLOBAL || type === GNU_LONGNAME) {
                header = Buffer.alloc(0);
                headerType = type === PAX_GLOBAL ? 0 : type;
                dataLeft = size;
                continue;
            }
            const name = longName ?? ustarName(block);
            longName = null;
            const trimmed = trimName(name);
            if (trimmed.length)
                onName(trimmed); // not the root itself (`./`)
            // Only regular files (and contiguous ones) carry data in the archive.
            skip = type === 0x30 || type === 0 || type === 0x37 ? size + padding(size) : 0;
        }
        pending = pending.subarray(at);
    }
}
function decompressed(blob, mediaType) {
    switch (mediaType) {
        case MediaType.layerTar:
            return blob;
        case MediaType.layerGzip:
            return piped(blob, external_node_zlib_default().createGunzip());
        case MediaType.layerZstd: {
            const create = (external_node_zlib_default()).createZstdDecompress;
            if (!create)
                throw new Error('reading a zstd layer needs Node.js 22.15 or newer');
            return piped(blob, create());
        }
        default:
            throw new Error(`cannot read a layer of media type ${mediaType}`);
    }
}
/** `from.pipe(to)`, with an error of `from` (a dropped connection) ending `to` too, not lost. */
function piped(from, to) {
    from.once('error', (err) => to.destroy(err));
    return from.pipe(to);
}
function padding(size) {
    return (listing_BLOCK - (size % listing_BLOCK)) % listing_BLOCK;
}
function octal(field) {
    // Base-256 (GNU) for sizes over 8 GiB: the high bit of the first byte set.
    if (field[0] & 0x80) {
        let n = field[0] & 0x7f;
        for (let i = 1; i < field.length; i++)
            n = n * 256 + field[i];
        return n;
    }
    const text = cString(field).toString('latin1').trim();
    return text ? parseInt(text, 8) : 0;
}
function cString(b) {
    const nul = b.indexOf(0);
    return nul < 0 ? b : b.subarray(0, nul);
}
function ustarName(block) {
    const name = cString(block.subarray(0, 100));
    const prefix = block.subarray(257, 263).toString('latin1').startsWith('ustar')
        ? cString(block.subarray(345, 500))
        : Buffer.alloc(0);
    return prefix.length ? Buffer.concat([prefix, Buffer.from('/'), name]) : Buffer.from(name);
}
/** The `path` record of PAX extended header data (`"%d path=%s\n"` records). */
function paxPath(data) {
    let found = null;
    for (let at = 0; at < data.length;) {
        const space = data.indexOf(0x20, at);
        if (space < 0)
            break;
        const len = parseInt(data.subarray(at, space).toString('latin1'), 10);
        if (!(len > 0))
            break;
        const record = data.subarray(space + 1, at + len - 1); // without the newline
        const eq = record.indexOf(0x3d);
        if (eq > 0 && record.subarray(0, eq).toString('latin1') === 'path')
            found = Buffer.from(record.subarray(eq + 1));
        at += len;
    }
    return found;
}
/** `./usr/bin/` → `usr/bin`. */
function trimName(name) {
    let start = 0;
    let end = name.length;
    while (start < end && (name[start] === 0x2f || (name[start] === 0x2e && name[start + 1] === 0x2f))) {
        start += name[start] === 0x2e ? 2 : 1;
    }
    while (end > start && name[end - 1] === 0x2f)
        end--;
    return Buffer.from(name.subarray(start, end));
}

;// CONCATENATED MODULE: ./src/commands/compact.ts






/**
 * Merges the base's top `merge` layers (made by earlier snapshots) into this snapshot's: the paths
 * they touched, read from their tar listings, are captured again from the live tree with this run's
 * changes, on top of the layers below them, which stay as they are. Whiteouts keep deleted paths
 * deleted; an opaque directory is captured whole. What the tree holds now is what those layers and
 * the changes amount to, so the image unpacks to the same tree with fewer layers.
 */
async function compact(opts) {
    const { base, merge, changes, root, maxLayers, log } = opts;
    const scan = changes.scan;
    if (!scan)
        throw new Error('compaction needs a walk of the whole tree');
    const keep = base.layers.length - merge;
    const merged = base.layers.slice(keep);
    const touched = new TouchedPaths();
    for (const layer of merged) {
        const blob = await base.repository.openBlob(layer.digest);
        const hashing = new HashTap();
        await listLayer(piped(blob, hashing), layer.mediaType, (name) => touched.addName(name));
        const digest = hashing.digest();
        if (digest !== layer.digest)
            throw new Error(`layer ${layer.digest} of ${base.name} read as ${digest}: not merged`);
    }
    touched.addEntries(changes.entries);
    // A baseline walk left the xattrs of unchanged entries unread: those taken again need theirs.
    const set = await recapture(scan.entries, touched, scan, (taken) => scan.xattrsRead ? Promise.resolve() : readXattrsOf(root, scan.entries, taken, log));
    const compaction = {
        merged: merge,
        bytes: merged.reduce((n, l) => n + l.size, 0),
        kept: keep,
        paths: touched.size,
        maxLayers,
    };
    log.info(describeCompaction(compaction));
    return {
        base: {
            ...base,
            // No longer that image: a part of it, under this snapshot's layers.
            digest: '',
            layers: base.layers.slice(0, keep),
            diffIds: base.diffIds.slice(0, keep),
            config: { ...base.config, history: historyOfFirstLayers(base.config.history ?? [], keep) },
        },
        changes: { ...changes, ...set },
        compaction,
    };
}

;// CONCATENATED MODULE: ./src/commands/layers.ts







/** Times one layer may start over from the tree after its upload session was lost. */
const MAX_LAYER_RESTARTS = 5;
/**
 * Every planned layer, written to the destination or reused from it by fingerprint, largest first;
 * with one summary row each, in plan order.
 */
async function writeLayers(input) {
    const { plans, concurrency } = input;
    const written = await allHeaviestFirst(plans.map((p) => p.bytes), concurrency, (i) => writeOneLayer(input, plans[i], `layer ${i + 1}/${plans.length} ${plans[i].label}`));
    return { layers: written.map((w) => w.layer), rows: written.map((w) => w.row) };
}
/** One layer: reused when the destination has its fingerprint, else written, restarted if its session is lost. */
async function writeOneLayer(input, plan, name) {
    const { root, entries, compression, level, destination, log } = input;
    const fp = fingerprint(entries, plan.indices, compression, level);
    const row = (how, compressed) => ({
        label: plan.label,
        entries: plan.indices.length,
        bytes: entries.contentBytes(plan.indices),
        compressed,
        how,
    });
    const reused = await destination.reuse(fp);
    if (reused) {
        const { layer, how } = reused;
        log.info(`${name}: unchanged, ${how} in the registry (${layer.descriptor.digest.slice(0, 19)})`);
        return { layer: { ...layer, comment: plan.label }, row: row(`reused, ${how}`, layer.descriptor.size) };
    }
    const tree = { root, entries, indices: plan.indices, compression, level, log };
    for (let attempt = 1;; attempt++) {
        try {
            const sink = destination.sink(name);
            // A monolithic upload needs the digest before its first byte: compute it in a first pass.
            const expected = sink.needsDigestFirst?.() ? (await writeLayer(tree, DISCARD)).descriptor : undefined;
            const r = await writeLayer({ ...tree, counters: input.counters }, sink, expected);
            log.info(`${name}: ${r.entries} entries, ${formatBytes(r.uncompressedSize)} → ${formatBytes(r.descriptor.size)} ${r.descriptor.digest}`);
            const descriptor = { ...r.descriptor, annotations: { [FINGERPRINT_ANNOTATION]: fp } };
            const layer = { descriptor, diffId: r.diffId, comment: plan.label };
            destination.wrote(fp, layer);
            return { layer, row: row(destination.kind === 'registry' ? 'uploaded' : 'written', descriptor.size) };
        }
        catch (err) {
            if (!(err instanceof RestartBlobError) || attempt >= MAX_LAYER_RESTARTS)
                throw err;
            log.warn(`${name}: ${err.message}; starting this layer over`);
            await waitBeforeRetry(attempt, name);
        }
    }
}

;// CONCATENATED MODULE: ./src/metadata.ts


/** The report's setup section as the metadata file carries it. */
function setupMetadata(s) {
    const brief = (p) => ({
        name: p.name,
        version: p.version,
        ...(p.arch ? { arch: p.arch } : {}),
        purl: p.purl,
    });
    const ecosystems = {};
    for (const [e, c] of Object.entries(s.ecosystems ?? {})) {
        ecosystems[e] = {
            added: c.added.map(brief),
            removed: c.removed.map(brief),
            upgraded: c.upgraded.map((u) => ({
                name: u.to.name,
                ...(u.to.arch ? { arch: u.to.arch } : {}),
                from: u.from.version,
                to: u.to.version,
                purl: u.to.purl,
            })),
        };
    }
    return { before: s.before, counts: s.counts, ecosystems, path: s.path };
}
/** What a manifest says about the image (an index has no config or layers of its own). */
function describeManifest(bytes, digest) {
    const m = JSON.parse(bytes.toString('utf8'));
    const layers = (m.layers ?? []).map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType }));
    const config = m.config ? { digest: m.config.digest, size: m.config.size } : null;
    const size = layers.reduce((n, l) => n + l.size, 0) + (config?.size ?? 0);
    return { digest, mediaType: m.mediaType ?? '', config, layers, size };
}
/**
 * Written atomically: a reader never sees half a file. Its directory is not made (like docker buildx
 * `--metadata-file`): the inputs check that it exists before anything is written.
 */
async function writeMetadata(file, metadata) {
    const target = external_node_path_default().resolve(file);
    const tmp = `${target}.${process.pid}.tmp`;
    try {
        // Read by later steps, written by nobody else: never world-writable, whatever the umask.
        await (0,promises_.writeFile)(tmp, JSON.stringify(metadata, null, 2) + '\n', { mode: 0o644 });
        await (0,promises_.rename)(tmp, target);
    }
    catch (err) {
        await (0,promises_.rm)(tmp, { force: true });
        throw err;
    }
}

;// CONCATENATED MODULE: ./src/commands/publish.ts




/** One log group per phase, timed for the summary; `quiet` keeps groups out of the log. */
class Phases {
    quiet;
    onEnd;
    timings = [];
    startedAt = Date.now();
    /** `onEnd` runs after each phase, even a failed one (the progress line stops). */
    constructor(quiet, onEnd = () => { }) {
        this.quiet = quiet;
        this.onEnd = onEnd;
    }
    async run(name, title, fn) {
        const started = Date.now();
        try {
            return await (this.quiet ? fn() : group(title, fn));
        }
        finally {
            this.onEnd();
            this.timings.push({ name, ms: Date.now() - started });
        }
    }
    get totalMs() {
        return this.timings.reduce((n, p) => n + p.ms, 0);
    }
}
/**
 * The end of every command: the metadata file (when asked for), the job summary or closing report
 * (for a snapshot), and the outputs, last, so a later step never reads outputs of a run that failed.
 */
async function publishResult(result, opts) {
    const described = describeManifest(result.manifest, result.digest);
    if (opts.metadataFile) {
        await writeMetadata(opts.metadataFile, {
            schemaVersion: 1,
            operation: result.operation,
            images: result.images,
            output: 'output' in result.where ? result.where.output : null,
            ...described,
            uploaded: result.uploaded,
            base: result.base,
            changes: result.changes,
            durationMs: result.durationMs,
            key: result.key,
            skipped: result.skipped,
            ...(result.loaded ? { loaded: result.loaded } : {}),
            ...(opts.report?.setup ? { setup: setupMetadata(opts.report.setup) } : {}),
            referrers: result.referrers.map((d) => ({ digest: d.digest, artifactType: d.artifactType ?? '' })),
        });
    }
    if (opts.report)
        await publishSummary(markdownReport(opts.report), textReport(opts.report), opts.quiet);
    if (opts.skipped)
        await publishSummary(`## Snapshot skipped\n\n${opts.skipped}\n`, `Snapshot skipped: ${opts.skipped}`, opts.quiet);
    setOutputs({
        digest: result.digest,
        ...result.where,
        images: result.images.join(','),
        tags: result.tags.join(','),
        size: described.size,
        uploaded: result.uploaded,
        layers: described.layers.length,
        ...(result.changes ? { changes: result.changes } : {}),
        ...(result.loaded ? { loaded: result.loaded.image } : {}),
        skipped: result.skipped,
        'sbom-digest': referrerOf(result.referrers, ArtifactType.cyclonedx),
        'provenance-digest': referrerOf(result.referrers, ArtifactType.inToto),
    });
}
/** The digest of the first referrer of this type, '' when there is none. */
function referrerOf(referrers, artifactType) {
    return referrers.find((d) => d.artifactType === artifactType)?.digest ?? '';
}

;// CONCATENATED MODULE: ./src/inventory/diff.ts
/**
 * Where a package can be at one version only: a version change there is an upgrade, not an addition.
 * A dpkg package per architecture (`libc6:amd64`, `libc6:i386`), an apk package, an npm global per
 * `node_modules` directory, a Python distribution per site-packages directory (names normalised, as
 * pip compares them). Tool cache versions sit side by side (Node 20 and 22): each is its own.
 */
function slot(p) {
    switch (p.ecosystem) {
        case 'deb':
            return `${p.name}:${p.arch ?? ''}`;
        case 'apk':
            return p.name;
        case 'npm':
            return `${p.location.slice(0, p.location.lastIndexOf('/node_modules/'))}\0${p.name}`;
        case 'pypi':
            return `${/^(.*\/(?:site|dist)-packages)\//.exec(p.location)?.[1]}\0${p.name.toLowerCase().replace(/[-_.]+/g, '-')}`;
        case 'toolcache':
            return `${p.name}\0${p.version}\0${p.arch ?? ''}`;
    }
}
/** Per ecosystem what was added, removed and upgraded from `before` to `after`; PATH entries gained and lost. */
function compareInventories(before, after) {
    const ecosystems = {};
    const bySlot = (inv) => new Map(inv.packages.map((p) => [`${p.ecosystem}\0${slot(p)}`, p]));
    const old = bySlot(before);
    const now = bySlot(after);
    const entry = (e) => (ecosystems[e] ??= { added: [], removed: [], upgraded: [] });
    for (const [key, p] of now) {
        const was = old.get(key);
        if (!was)
            entry(p.ecosystem).added.push(p);
        else if (was.version !== p.version)
            entry(p.ecosystem).upgraded.push({ from: was, to: p });
    }
    for (const [key, p] of old)
        if (!now.has(key))
            entry(p.ecosystem).removed.push(p);
    const had = new Set(before.path);
    const has = new Set(after.path);
    return {
        ecosystems,
        path: {
            gained: [...new Set(after.path.filter((p) => !had.has(p)))],
            lost: [...new Set(before.path.filter((p) => !has.has(p)))],
        },
    };
}

;// CONCATENATED MODULE: ./src/inventory/stanzas.ts
/**
 * RFC 822-style stanzas (dpkg's status file, apk's installed database): blank-line separated, one
 * `Field: value` (dpkg) or `K:value` (apk) a line; continuation lines, which start with a space, are
 * skipped (only single-line fields are read).
 */
function* stanzas(text, foldCase) {
    let fields = new Map();
    for (const line of text.split('\n')) {
        if (line.trim() === '') {
            if (fields.size)
                yield fields;
            fields = new Map();
            continue;
        }
        if (line.startsWith(' ') || line.startsWith('\t'))
            continue;
        const at = line.indexOf(':');
        if (at <= 0)
            continue;
        // dpkg field names are case-insensitive; apk's one-letter keys are not (`P` and `p` differ).
        const key = foldCase ? line.slice(0, at).toLowerCase() : line.slice(0, at);
        fields.set(key, line.slice(at + 1).trim());
    }
    if (fields.size)
        yield fields;
}

;// CONCATENATED MODULE: ./src/inventory/apk.ts


const INSTALLED = 'lib/apk/db/installed';
/** Alpine (apk) packages, from apk's installed database: `P:` name, `V:` version, `A:` arch, `o:` origin. */
async function readApk(tree, os) {
    const text = await tree.read(INSTALLED, 64 << 20);
    if (text === null)
        return [];
    const found = [];
    for (const s of stanzas(text, false)) {
        const name = s.get('P');
        const version = s.get('V');
        if (!name || !version) {
            tree.unreadable++;
            continue;
        }
        const arch = s.get('A');
        const origin = s.get('o');
        const source = origin && origin !== name ? origin : undefined;
        found.push({
            ecosystem: 'apk',
            name,
            version,
            ...(arch ? { arch } : {}),
            ...(source ? { source } : {}),
            location: INSTALLED,
            purl: new packageurl_js.PackageURL('apk', os?.id ?? 'alpine', name, version, {
                ...(arch ? { arch } : {}),
                ...(os?.versionId ? { distro: `${os.id}-${os.versionId}` } : {}),
                ...(source ? { upstream: source } : {}),
            }).toString(),
        });
    }
    return found;
}

;// CONCATENATED MODULE: ./src/inventory/dpkg.ts


/** The status database dpkg keeps (`dpkg-query -W` reads it), and distroless images' one file per package. */
const STATUS = 'var/lib/dpkg/status';
const STATUS_D = 'var/lib/dpkg/status.d';
/** Ubuntu's full status file is ~5 MB: this is ample, and bounds what a hostile tree makes us read. */
const MAX_STATUS = 64 << 20;
/** Debian/Ubuntu packages that are installed (`Status: … installed`), from dpkg's database. */
async function readDpkg(tree, os) {
    const found = [];
    const text = await tree.read(STATUS, MAX_STATUS);
    if (text !== null)
        found.push(...parseStatus(text, STATUS, os, tree));
    for (const name of await tree.list(STATUS_D)) {
        if (name.startsWith('.') || name.endsWith('.md5sums'))
            continue;
        const file = `${STATUS_D}/${name}`;
        const one = await tree.read(file, 1 << 20);
        if (one !== null)
            found.push(...parseStatus(one, file, os, tree, true));
    }
    return found;
}
function parseStatus(text, location, os, tree, distroless = false) {
    const found = [];
    for (const s of stanzas(text, true)) {
        const name = s.get('package');
        const version = s.get('version');
        // status.d files carry no Status field: a package is there only while installed.
        const status = s.get('status') ?? (distroless ? 'install ok installed' : '');
        if (!/(^|\s)installed$/.test(status))
            continue; // config-files, half-installed, not-installed…
        if (!name || !version) {
            tree.unreadable++;
            continue;
        }
        const arch = s.get('architecture');
        // `Source: glibc (2.36-9)`: the source package, with its version when it differs from the binary's.
        const m = /^(\S+)(?:\s+\((\S+)\))?$/.exec(s.get('source') ?? '');
        const source = m && m[1] !== name ? m[1] : undefined;
        const sourceVersion = m?.[2];
        const upstream = m && (source || sourceVersion) ? m[1] + (sourceVersion ? `@${sourceVersion}` : '') : undefined;
        found.push({
            ecosystem: 'deb',
            name,
            version,
            ...(arch ? { arch } : {}),
            ...(source ? { source } : {}),
            location,
            purl: new packageurl_js.PackageURL('deb', os?.id ?? 'debian', name, version, {
                ...(arch ? { arch } : {}),
                ...(os?.versionId ? { distro: `${os.id}-${os.versionId}` } : {}),
                ...(upstream ? { upstream } : {}),
            }).toString(),
        });
    }
    return found;
}

;// CONCATENATED MODULE: ./src/inventory/npm.ts

/**
 * Globally installed npm packages: `lib/node_modules/<name>` and `lib/node_modules/@scope/<name>`
 * under each prefix (`usr/local`, `usr`, and the one of each `…/bin` on PATH), each read from its
 * package.json. A prefix reached twice (through a symlink) is read once.
 */
async function readNpm(tree, prefixes) {
    const found = [];
    const seen = new Set();
    for (const prefix of prefixes) {
        const modules = `${prefix}/lib/node_modules`;
        const resolved = await tree.resolve(modules);
        if (!resolved || seen.has(resolved.join('/')))
            continue;
        seen.add(resolved.join('/'));
        const dir = resolved.join('/');
        for (const name of await tree.list(dir)) {
            if (name.startsWith('.'))
                continue; // npm's .bin, .package-lock.json, staging dirs
            const names = name.startsWith('@')
                ? (await tree.list(`${dir}/${name}`)).filter((n) => !n.startsWith('.')).map((n) => `${name}/${n}`)
                : [name];
            for (const n of names) {
                const pkg = await readPackageJson(tree, `${dir}/${n}/package.json`);
                if (pkg)
                    found.push(pkg);
            }
        }
    }
    return found;
}
async function readPackageJson(tree, location) {
    const text = await tree.read(location, 1 << 20);
    if (text === null)
        return null;
    let json;
    try {
        json = JSON.parse(text);
    }
    catch {
        tree.unreadable++;
        return null;
    }
    const { name, version } = (json ?? {});
    if (typeof name !== 'string' || typeof version !== 'string' || !name || !version) {
        tree.unreadable++;
        return null;
    }
    const scoped = /^(@[^/]+)\/(.+)$/.exec(name);
    return {
        ecosystem: 'npm',
        name,
        version,
        location,
        purl: new packageurl_js.PackageURL('npm', scoped?.[1], scoped?.[2] ?? name, version).toString(),
    };
}

;// CONCATENATED MODULE: ./src/inventory/python.ts

/** The header of a METADATA/PKG-INFO file comes first; its long description is not needed. */
const HEADER_BYTES = 64 << 10;
/**
 * Python distributions: `*.dist-info/METADATA` (wheels, pip) and `*.egg-info` (`PKG-INFO` inside the
 * directory, or the file itself: Debian's python3-* packages) in the `site-packages` and
 * `dist-packages` of each `lib/python3*` under the given prefixes. A directory reached twice
 * (through a symlink) is read once.
 */
async function readPython(tree, prefixes) {
    const found = [];
    const seen = new Set();
    for (const prefix of prefixes) {
        for (const lib of await tree.list(`${prefix}/lib`)) {
            if (!/^python3(\.\d+)?$/.test(lib))
                continue;
            for (const kind of ['site-packages', 'dist-packages']) {
                const resolved = await tree.resolve(`${prefix}/lib/${lib}/${kind}`);
                if (!resolved || seen.has(resolved.join('/')))
                    continue;
                seen.add(resolved.join('/'));
                found.push(...(await readSitePackages(tree, resolved.join('/'))));
            }
        }
    }
    return found;
}
async function readSitePackages(tree, dir) {
    const found = [];
    for (const name of await tree.list(dir)) {
        let location;
        if (name.endsWith('.dist-info'))
            location = `${dir}/${name}/METADATA`;
        else if (name.endsWith('.egg-info'))
            location = (await tree.isFile(`${dir}/${name}`)) ? `${dir}/${name}` : `${dir}/${name}/PKG-INFO`;
        else
            continue;
        const text = await tree.read(location, HEADER_BYTES);
        if (text === null)
            continue;
        const header = parseHeader(text);
        const distribution = header.get('name');
        const version = header.get('version');
        if (!distribution || !version) {
            tree.unreadable++;
            continue;
        }
        found.push({
            ecosystem: 'pypi',
            name: distribution,
            version,
            location,
            // packageurl-js normalises the name as the purl spec says for pypi (lowercase, `_` → `-`).
            purl: new packageurl_js.PackageURL('pypi', undefined, distribution, version).toString(),
        });
    }
    return found;
}
/** The core metadata header (RFC 822): the fields before the first blank line, names lowercased. */
function parseHeader(text) {
    const fields = new Map();
    for (const line of text.split('\n')) {
        if (line.trim() === '')
            break;
        const at = line.indexOf(':');
        if (at <= 0 || line.startsWith(' '))
            continue;
        const key = line.slice(0, at).toLowerCase();
        if (!fields.has(key))
            fields.set(key, line.slice(at + 1).trim());
    }
    return fields;
}

;// CONCATENATED MODULE: ./src/inventory/toolcache.ts

/**
 * The Actions tool cache (`RUNNER_TOOL_CACHE`, what `actions/setup-node` and friends fill):
 * `<tool>/<version>/<arch>`, counted only once `<arch>.complete` sits beside it, as
 * `@actions/tool-cache` itself decides whether a version is there.
 */
async function readToolCache(tree, toolCache) {
    const found = [];
    const cache = toolCache.replace(/^\/+/, '');
    for (const tool of await tree.list(cache)) {
        for (const version of await tree.list(`${cache}/${tool}`)) {
            const dir = `${cache}/${tool}/${version}`;
            const names = await tree.list(dir);
            for (const arch of names) {
                if (arch.endsWith('.complete') || !names.includes(`${arch}.complete`))
                    continue;
                found.push({
                    ecosystem: 'toolcache',
                    name: tool,
                    version,
                    arch,
                    location: `${dir}/${arch}`,
                    purl: new packageurl_js.PackageURL('generic', undefined, tool, version, { arch }).toString(),
                });
            }
        }
    }
    return found;
}

;// CONCATENATED MODULE: ./src/inventory/tree.ts





/**
 * A tree read as a chroot would see it: paths are resolved under its root, a symlink's absolute
 * target starts again at the root and `..` stops there, so no link in the tree (however hostile)
 * makes us read a file of the host. Several roots make one merged view, first root first (an
 * overlay's lower dirs): a name is taken from the first root that has it, a whiteout there (a
 * character device 0/0) hides it in those below, and so does an opaque directory all it held there.
 */
class Tree {
    roots;
    /** Files and entries that were there but could not be read or parsed. */
    unreadable = 0;
    constructor(roots) {
        this.roots = roots;
    }
    /**
     * The resolved components of `rel` (relative to the tree's root, `/`-separated), every symlink
     * followed inside the tree; null when a component is missing or the links loop.
     */
    async resolve(rel) {
        const pending = rel.split('/');
        const resolved = [];
        let hops = 0;
        while (pending.length) {
            const name = pending.shift();
            if (name === '' || name === '.')
                continue;
            if (name === '..') {
                resolved.pop(); // at the root, `..` is the root
                continue;
            }
            const found = await this.lstatIn([...resolved, name]);
            if (!found)
                return null;
            if (found.stats.isSymbolicLink()) {
                if (++hops > 40)
                    return null; // ELOOP, as the kernel would say
                const target = await (0,promises_.readlink)(found.hostPath).catch(() => null);
                if (target === null)
                    return null;
                if (target.startsWith('/'))
                    resolved.length = 0;
                pending.unshift(...target.split('/'));
                continue;
            }
            resolved.push(name);
        }
        return resolved;
    }
    /** The names in the directory `rel` (merged over every root), or [] when it is not one. */
    async list(rel) {
        const parts = await this.resolve(rel);
        if (!parts)
            return [];
        const names = new Set();
        const hidden = new Set();
        for (const root of this.roots) {
            const dir = external_node_path_default().join(root, ...parts);
            const st = await (0,promises_.lstat)(dir).catch(() => null);
            if (!st)
                continue;
            if (!st.isDirectory())
                break; // a file here hides any directory below it
            for (const d of await (0,promises_.readdir)(dir, { withFileTypes: true }).catch(() => [])) {
                if (hidden.has(d.name))
                    continue;
                if (d.isCharacterDevice())
                    hidden.add(d.name);
                else
                    names.add(d.name);
            }
            if (this.roots.length > 1 && isOpaque(dir))
                break; // deleted and made again above the rest
        }
        return [...names].sort();
    }
    /**
     * The text of the regular file `rel`, at most `limit` bytes of it; null when it is missing or not
     * a regular file. Opened without following a last symlink (resolve followed them all) and without
     * blocking, so a fifo or device placed there is refused, not waited on.
     */
    async read(rel, limit) {
        const parts = await this.resolve(rel);
        const found = parts && (await this.lstatIn(parts));
        if (!found || !found.stats.isFile())
            return null;
        const file = await (0,promises_.open)(found.hostPath, external_node_fs_.constants.O_RDONLY | external_node_fs_.constants.O_NOFOLLOW | external_node_fs_.constants.O_NONBLOCK).catch(() => null);
        if (!file) {
            this.unreadable++;
            return null;
        }
        try {
            if (!(await file.stat()).isFile())
                return null;
            const buffer = Buffer.alloc(Math.min(limit, found.stats.size));
            const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
            return buffer.toString('utf8', 0, bytesRead);
        }
        catch {
            this.unreadable++;
            return null;
        }
        finally {
            await file.close();
        }
    }
    /** Whether `rel` resolves to a regular file. */
    async isFile(rel) {
        const parts = await this.resolve(rel);
        const found = parts && (await this.lstatIn(parts));
        return !!found && found.stats.isFile();
    }
    /** The entry at already-resolved `parts` in the first root that has it; a whiteout is none. */
    async lstatIn(parts) {
        for (const root of this.roots) {
            const hostPath = external_node_path_default().join(root, ...parts);
            const stats = await (0,promises_.lstat)(hostPath).catch(() => null);
            if (!stats)
                continue;
            if (stats.isCharacterDevice() && stats.rdev === 0 && this.roots.length > 1)
                return null;
            return { hostPath, stats };
        }
        return null;
    }
}
/** overlayfs marks a directory that hides what the layers below held in it (trusted. as root, user. without). */
function isOpaque(dir) {
    let xattrs;
    try {
        xattrs = readXattrs(Buffer.from(dir), silentLogger) ?? [];
    }
    catch {
        return false; // unreadable: taken as plain, as it most likely is
    }
    return xattrs.some(([name, value]) => /^(trusted|user)\.overlay\.opaque$/.test(name) && value.toString() === 'y');
}

;// CONCATENATED MODULE: ./src/inventory/read.ts







/** GitHub's hosted runners keep it here; so do images made from them. */
const DEFAULT_TOOL_CACHE = '/opt/hostedtoolcache';
/**
 * What software the tree at `root` holds, read from package databases and manifests in known places
 * (never by running a package manager, never by walking the whole tree), every path resolved inside
 * `root` as a chroot would (see Tree).
 */
async function readInventory(root, options) {
    return read_readTree(new Tree([root]), options);
}
/**
 * The same, read from a merged view of several roots, first root first: an overlay's lower dirs, the
 * tree as it was before the job's changes went into the upper dir.
 */
async function readMergedInventory(roots, options) {
    return read_readTree(new Tree(roots), options);
}
async function read_readTree(tree, options) {
    const pathEntries = options.path ?? [];
    const os = await readOsRelease(tree);
    const prefixes = ['usr/local', 'usr', ...binPrefixes(pathEntries)];
    const packages = [
        ...(await readDpkg(tree, os)),
        ...(await readApk(tree, os)),
        ...(await readNpm(tree, prefixes)),
        ...(await readPython(tree, [...prefixes, ...(await optPrefixes(tree))])),
        ...(await readToolCache(tree, options.toolCache || DEFAULT_TOOL_CACHE)),
    ];
    return {
        packages: sortPackages(packages),
        path: pathEntries,
        ...(os ? { os } : {}),
        ...(tree.unreadable ? { unreadable: tree.unreadable } : {}),
    };
}
/** The job's PATH as a list: empty entries (the current directory, to a shell) are no place to look. */
function splitPath(value) {
    return (value ?? '').split(':').filter(Boolean);
}
/** `/opt/mytool/bin` → `opt/mytool`: a prefix that may hold `lib/node_modules` or `lib/python3*`. */
function binPrefixes(pathEntries) {
    return pathEntries
        .filter((p) => external_node_path_default().isAbsolute(p) && external_node_path_default().basename(external_node_path_default().normalize(p)) === 'bin')
        .map((p) => external_node_path_default().dirname(external_node_path_default().normalize(p)).replace(/^\/+/, ''));
}
/** `opt/<name>`: self-contained installs (`/opt/python`, `/opt/conda`) with a `lib/python3*` of their own. */
async function optPrefixes(tree) {
    return (await tree.list('opt')).map((name) => `opt/${name}`);
}
const ECOSYSTEM_ORDER = ['deb', 'apk', 'npm', 'pypi', 'toolcache'];
function sortPackages(packages) {
    const key = (p) => ECOSYSTEM_ORDER.indexOf(p.ecosystem);
    const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
    return packages.sort((a, b) => key(a) - key(b) || cmp(a.name, b.name) || cmp(a.version, b.version) || cmp(a.location, b.location));
}
/** `ID`, `VERSION_ID` and `PRETTY_NAME` of `etc/os-release` (else `usr/lib/os-release`, its usual target). */
async function readOsRelease(tree) {
    const text = (await tree.read('etc/os-release', 64 << 10)) ?? (await tree.read('usr/lib/os-release', 64 << 10));
    if (text === null)
        return undefined;
    const fields = new Map();
    for (const line of text.split('\n')) {
        const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
        if (m)
            fields.set(m[1], m[2].replace(/^(["'])(.*)\1$/, '$2'));
    }
    const id = fields.get('ID');
    if (!id)
        return undefined;
    const versionId = fields.get('VERSION_ID');
    const prettyName = fields.get('PRETTY_NAME');
    return { id, ...(versionId ? { versionId } : {}), ...(prettyName ? { prettyName } : {}) };
}

;// CONCATENATED MODULE: ./src/inventory/record.ts


/**
 * The pre step's inventory (the tree before the job's setup steps) sits beside the baseline: the main
 * step finds it from the same path, whether or not a baseline was written.
 */
function inventoryFileFor(baseline) {
    return `${baseline}.inventory.json`;
}
/** Written as the baseline is: atomically, for its owner's eyes only (it lists the installed software). */
async function writeInventoryFile(file, inventory) {
    await writeAtomically(file, 'inventory', (tmp) => writeFile(tmp, JSON.stringify(inventory) + '\n', { mode: 0o600 }));
}
/** The recorded inventory, or null when there is none or it is not one (then there is no before-state). */
async function readInventoryFile(file) {
    const text = await (0,promises_.readFile)(file, 'utf8').catch(() => null);
    if (text === null)
        return null;
    try {
        const inv = JSON.parse(text);
        return Array.isArray(inv?.packages) && Array.isArray(inv.path) ? inv : null;
    }
    catch {
        return null;
    }
}

;// CONCATENATED MODULE: ./src/commands/setup.ts





/**
 * What the job's setup steps installed: the tree's inventory now, compared with the one before them.
 * The before-state is the pre step's record (beside the baseline); else, for changes from an overlay,
 * the overlay's lower dirs read as one merged tree; else there is none, and only what the image holds
 * is counted. The PATH before is the pre step's, else the base image's `Env` (what a job started from
 * the base had).
 */
async function readSetup(opts) {
    const toolCache = process.env.RUNNER_TOOL_CACHE;
    const inventory = await readInventory(opts.root, { path: splitPath(process.env.PATH), toolCache });
    const recorded = savedState('inventory') || (opts.baseline ? inventoryFileFor(opts.baseline) : '');
    const basePath = opts.baseEnv?.find((e) => e.startsWith('PATH='));
    const beforePath = basePath === undefined ? undefined : splitPath(basePath.slice('PATH='.length));
    let before = recorded ? await readInventoryFile(recorded) : null;
    let from = before ? 'baseline' : 'none';
    if (!before && opts.overlay?.lower) {
        before = await readMergedInventory(opts.overlay.lower, { path: beforePath ?? [], toolCache });
        from = 'overlay';
    }
    const counts = {};
    for (const p of inventory.packages)
        counts[p.ecosystem] = (counts[p.ecosystem] ?? 0) + 1;
    const changes = before ? compareInventories(before, inventory) : null;
    const pathBefore = from === 'baseline' ? before.path : beforePath;
    const setup = {
        before: from,
        counts,
        ecosystems: changes?.ecosystems ?? null,
        path: pathBefore ? compareInventories({ packages: [], path: pathBefore }, inventory).path : null,
    };
    if (inventory.unreadable)
        opts.log.info(`inventory: ${inventory.unreadable} package entries could not be read and are not listed`);
    opts.log.info(`what setup changed: ${describeSetupCounts(setup)}`);
    return { inventory, setup };
}

;// CONCATENATED MODULE: ./src/commands/snapshot.ts

































/**
 * `snapshot`: the tree at `root` (what changed since its base image, or all of it) as an image on top
 * of the base's layers, pushed to `image` or written to the layout at `output`.
 */
async function snapshot(inputs, log) {
    await checkRoot(inputs.root);
    if (inputs.upper)
        await checkUpper(inputs.upper, inputs.root);
    const destination = inputs.dryRun ? await openLayout(inputs) : await openRegistry(inputs, log);
    try {
        if (!(await skipWhenUpToDate(inputs, destination, log)))
            await capture(inputs, destination, log);
    }
    catch (err) {
        await destination.abort().catch(() => { });
        throw err;
    }
    await returnToCaller([inputs.dryRun ? inputs.output : '', inputs.metadataFile, external_node_path_default().dirname(LayerCache.defaultPath())], log);
    // Last: a registry of several that failed fails the run, once what was written is published.
    destination.complete();
}
/**
 * With `key` or `max-age`: when every tag already holds one image with this key, young enough,
 * nothing is captured or written (a layout's staging is removed); the outputs name that image,
 * `skipped=true`, and the summary says why. False when a snapshot is needed.
 */
async function skipWhenUpToDate(inputs, destination, log) {
    if (!inputs.key && !inputs.maxAge)
        return false;
    const want = { key: inputs.key || undefined, maxAgeMs: inputs.maxAge || undefined };
    const existing = await destination.upToDate(want);
    const tags = snapshotTags(inputs);
    if (!existing) {
        log.info(`${describeWant(want)}: not every tag of ${destination.name} (${tags.join(', ')}) holds such an image; capturing`);
        return false;
    }
    await destination.abort();
    const reason = `${destination.name} (${tags.join(', ')}) already holds ${existing.digest}${describeHeld(existing, want)}: nothing captured`;
    log.info(reason);
    await publishResult({
        operation: 'snapshot',
        digest: existing.digest,
        manifest: existing.manifest,
        // Every target holds it: each is named, though none was written.
        images: destination.kind === 'registry' ? inputs.targets.map(format) : [],
        tags: [],
        where: destination.where(existing.digest),
        uploaded: 0,
        base: null,
        changes: null,
        durationMs: 0,
        key: existing.key ?? null,
        skipped: true,
        // What this run attached: nothing (the image's earlier attestations stay where they are).
        referrers: [],
    }, { metadataFile: inputs.metadataFile, quiet: inputs.quiet, skipped: reason });
    return true;
}
/** What an existing image must be to stand for this snapshot, for the log. */
function describeWant(want) {
    const parts = [
        ...(want.key ? [`key ${want.key}`] : []),
        ...(want.maxAgeMs ? [`younger than max-age ${formatDuration(want.maxAgeMs)}`] : []),
    ];
    return parts.join(', ');
}
/** Why the image found satisfies `want`: its key, and when it was made. */
function describeHeld(existing, want) {
    const parts = [
        ...(want.key ? [`with key ${existing.key}`] : []),
        ...(want.maxAgeMs
            ? [`created ${existing.created}, younger than max-age ${formatDuration(want.maxAgeMs)}`]
            : []),
    ];
    return parts.length ? ` ${parts.join(', ')}` : '';
}
/** The phases of a snapshot, each a log group: base image, changes, base layers, layers, push or layout. */
async function capture(inputs, destination, baseLog) {
    const terminal = !inActions() && process.stderr.isTTY ? process.stderr : null;
    const progress = new Progress(baseLog, terminal, !inputs.quiet);
    const log = progress.wrap(baseLog);
    const phases = new Phases(inputs.quiet, () => progress.stop());
    const pushes = destination.kind === 'registry';
    const found = await phases.run('base image', 'Base image', () => findBase(inputs, log));
    const budget = layerBudget(found, inputs.maxLayers, log);
    const { base, changes, compaction } = await phases.run('walk and changes', 'Changes', () => {
        progress.start('walk');
        return changesOf(inputs, found, budget, destination, progress, log);
    });
    const env = inputs.persistEnv ? environment(inputs, base, log) : null;
    // Read once: the report's "What setup changed", and report.inventory for anything else that lists the image's software.
    const { inventory, setup } = await phases.run('inventory', 'What setup changed', () => readSetup({
        root: inputs.root,
        baseline: savedState('baseline') || inputs.baseline,
        overlay: changes.overlay,
        baseEnv: base?.config.config?.Env,
        log,
    }));
    if (base)
        await phases.run('base layers', 'Base layers', () => destination.addBase(base));
    const capturedBytes = changes.entries.contentBytes();
    const { layers, rows } = await phases.run('layers', pushes ? 'Layers (compress and upload)' : 'Layers', () => {
        progress.start('layers', capturedBytes);
        return writeLayers({
            root: inputs.root,
            entries: changes.entries,
            plans: partition(changes.entries, inputs.layerSize, budget.newLayers),
            compression: inputs.compression,
            level: inputs.compressionLevel,
            concurrency: inputs.concurrency,
            destination,
            counters: progress.counters,
            log,
        });
    });
    const created = createdTime(changes.entries, base?.config.created);
    const imageEnv = env ? { env: env.env } : {};
    // A tree with an /etc is a system: it carries the marker that lets the next snapshot find its base.
    if (await isDirectory(external_node_path_default().join(inputs.root, 'etc'))) {
        const markerLayer = await addMarker(inputs, destination, buildImage({ base, layers, created, ...imageEnv }), created, log);
        layers.push(markerLayer);
        rows.push({
            label: `/${MARKER_PATH}`,
            entries: 2, // with /etc
            bytes: 0,
            compressed: markerLayer.descriptor.size,
            how: pushes ? 'uploaded' : 'written',
        });
    }
    const image = buildImage({ base, layers, created, ...imageEnv, ...sourceAnnotations(), key: inputs.key });
    const tags = snapshotTags(inputs);
    const artifacts = inputs.sbom || inputs.provenance
        ? await phases.run('attestations', 'Attestations', () => attestations(inputs, destination, image, { base, inventory, created, startedAt: phases.startedAt }, log))
        : [];
    const attached = await phases.run(pushes ? 'push' : 'layout', pushes ? 'Push' : 'Layout', () => destination.finish(image, tags, artifacts));
    // What was written: a registry of several that failed is reported by destination.complete().
    const images = destination.images(tags);
    const written = pushes ? [...new Set(images.map((i) => parseReference(i).tag))] : tags;
    const digest = image.manifest.descriptor.digest;
    const manifest = JSON.parse(image.manifest.bytes.toString());
    const size = manifest.layers.reduce((n, l) => n + l.size, 0) + image.config.descriptor.size;
    const uploaded = destination.uploaded();
    log.info(`${destination.name} ${digest} (${written.join(', ')}), ${manifest.layers.length} layers (${layers.length} new), ${formatBytes(size)}, in ${(phases.totalMs / 1000).toFixed(1)} s`);
    const report = {
        attestations: attached.map((a) => ({ kind: a.kind, digest: a.manifest.descriptor.digest })),
        destination: destination.name,
        pushed: pushes,
        digest,
        tags: written,
        base: base ? { name: base.name, digest: base.digest, layers: base.layers.length } : null,
        changes: {
            method: changes.method,
            reason: changes.reason,
            changed: changes.changed,
            deleted: changes.deleted,
        },
        layers: rows,
        size,
        uploaded: pushes ? uploaded : rows.reduce((n, r) => n + r.compressed, 0),
        captured: { entries: changes.entries.length, bytes: capturedBytes },
        ...whereTheBytesAre(changes.entries),
        excluded: describeExclusions(changes.excluded, changes.scan?.sockets ?? []),
        env: env ? { kept: env.kept, masked: env.masked } : null,
        phases: phases.timings,
        ...(compaction ? { compaction } : {}),
        setup,
        inventory,
    };
    await publishResult({
        operation: 'snapshot',
        digest,
        manifest: image.manifest.bytes,
        images,
        tags: written,
        where: destination.where(digest),
        uploaded,
        base: base ? { name: base.name, digest: base.digest || null } : null,
        changes: changes.method,
        durationMs: phases.totalMs,
        key: inputs.key || null,
        skipped: false,
        referrers: attached.map((a) => a.descriptor),
    }, { metadataFile: inputs.metadataFile, quiet: inputs.quiet, report });
}
/**
 * The SBOM (of every package the tree holds: the base image's and the job's) and the provenance to
 * attach to the image, as the inputs ask. A tree whose packages cannot be read gets no SBOM, with a
 * warning: the image itself is what the run is for.
 */
async function attestations(inputs, destination, image, run, log) {
    const subject = image.manifest.descriptor;
    // The image's name in the documents: the first `image` line's repository (the same bytes go everywhere).
    const first = inputs.targets[0];
    const repository = destination.kind === 'registry' && first ? `${first.registry}/${first.repository}` : '';
    const documents = [];
    if (inputs.sbom) {
        try {
            const { inventory } = run;
            const bytes = cyclonedxSbom(inventory, { repository, digest: subject.digest, created: run.created });
            documents.push({ kind: 'SBOM', artifactType: ArtifactType.cyclonedx, bytes });
            log.info(`SBOM: ${inventory.packages.length} packages (CycloneDX 1.6)`);
        }
        catch (err) {
            log.warn(`no SBOM of ${inputs.root}: ${err.message}`);
        }
    }
    if (inputs.provenance) {
        const bytes = slsaProvenance({
            repository,
            digest: subject.digest,
            base: run.base ? { name: run.base.name, digest: run.base.digest } : null,
            startedOn: new Date(run.startedAt).toISOString(),
            finishedOn: new Date().toISOString(),
            env: process.env,
        });
        documents.push({ kind: 'provenance', artifactType: ArtifactType.inToto, bytes });
        if (!process.env.GITHUB_REPOSITORY)
            log.info('provenance: not in a GitHub Actions workflow: no repository, commit or run to name');
    }
    return documents.map((d) => artifactFor(subject, d, run.created));
}
/**
 * How many layers this snapshot may add, and how many of the base's to merge first (see planBudget);
 * a warning when the base alone leaves no room.
 */
function layerBudget(base, maxLayers, log) {
    const baseLayers = base?.layers.length ?? 0;
    const made = base ? layersMadeBySnapshots(baseLayers, base.config.history ?? []) : 0;
    const plan = planBudget({ baseLayers, madeBySnapshots: made, maxLayers });
    if (maxLayers > DOCKER_LAYERS)
        log.warn(`max-layers ${maxLayers}: Docker and podman refuse to run images of more than about ${DOCKER_LAYERS} layers; images this large may not start there`);
    const total = baseLayers - plan.merge + 2;
    if (total > maxLayers)
        log.warn(`base image ${base.name} has ${baseLayers - made} layers of its own: with a new layer and the marker the image has ${total}, over max-layers ${maxLayers}${total > DOCKER_LAYERS ? `, and Docker and podman refuse to run images of more than about ${DOCKER_LAYERS} layers` : ''}; use a base image with fewer layers`);
    return plan;
}
/**
 * The walk and what changed since the base (overlay, baseline or everything), logged; when the budget
 * says so, the base's top layers merged into the changes (see compact).
 */
async function changesOf(inputs, base, budget, destination, progress, log) {
    const merge = base && budget.merge > 0 ? budget.merge : 0;
    let found = await findChanges({
        mode: inputs.changes,
        baseline: savedState('baseline') || inputs.baseline,
        upper: inputs.upper,
        hasBase: !!base,
        wholeWalk: merge > 0,
        scan: {
            root: inputs.root,
            exclude: inputs.exclude,
            include: inputs.include,
            ownPaths: [
                ...destination.ownPaths,
                inputs.baseline,
                inputs.baseline && inventoryFileFor(inputs.baseline),
                ...layerCacheDirs(),
            ].filter(Boolean),
            rewritten: [MARKER_REWRITTEN],
            log,
            counters: progress.counters,
        },
        log,
    });
    if (found.unreadable.length && !isRoot())
        throw new NeedsRootError(found.unreadable);
    if (found.scan)
        describeScan(found.scan, inputs.root, log);
    warnLeftOut(found.excluded, log);
    log.info(`changes: ${found.method}: ${found.reason}`);
    if (found.method !== 'full')
        log.info(`${found.changed} entries new or changed, ${found.deleted} deleted`);
    let compaction;
    if (base && merge > 0) {
        ({
            base,
            changes: found,
            compaction,
        } = await compact({
            base,
            merge,
            changes: found,
            root: inputs.root,
            maxLayers: inputs.maxLayers,
            log,
        }));
    }
    await scrubGitConfigs(found.entries, inputs.root, log, maskSecret);
    return { base, changes: found, compaction };
}
/** The marker layer: this image's own layers and config, for the next snapshot of a sandbox started from it. */
async function addMarker(inputs, destination, image, created, log) {
    // One place per repository, its first tag: the same marker, and digest, in every registry.
    const places = groupTargets(inputs.targets).flatMap((g) => g.repositories.map((r) => ({ repository: r.name, tag: r.targets[0].tag })));
    const marker = markerFor(image, places, created);
    const layer = await writeMarkerLayer(marker, { root: inputs.root, compression: inputs.compression, level: inputs.compressionLevel, log }, destination.sink('the marker layer'), (d) => destination.exists(d));
    log.info(`marker layer /${MARKER_PATH}: ${formatBytes(layer.descriptor.size)} ${layer.descriptor.digest}`);
    return layer;
}
/** The base image: named by the user or the platform, else found through the root's marker, else none. */
async function findBase(inputs, log) {
    const options = {
        credentials: credentialInputs(inputs),
        targetRegistry: inputs.targets[0]?.registry,
        insecureRegistry: inputs.insecureRegistry,
        log,
    };
    if (inputs.baseImage)
        return resolveBase({ ref: inputs.baseImage, ...options });
    const markerText = await (0,promises_.readFile)(external_node_path_default().join(inputs.root, MARKER_PATH), 'utf8').catch(() => null);
    const marker = markerText === null ? null : parseMarker(markerText);
    // A dry run's marker names no repository: there is nothing to take its layers from.
    if (marker && markerPlaces(marker).length)
        return baseFromMarker(marker, options);
    log.info(`no base image: no base-image input, no SNAPSHOT_BASE_IMAGE, no /${MARKER_PATH} in ${inputs.root}`);
    return undefined;
}
/** The image's `Env`: the base's, with this job's PATH and the variables its steps set. */
function environment(inputs, base, log) {
    const secrets = [inputs.token, inputs.password].filter(Boolean);
    const env = persistedEnv(process.env, base?.config.config?.Env ?? [], inputs.envMask, secrets);
    log.info(`environment kept in the image: ${env.kept.join(', ') || 'nothing new'}`);
    if (env.masked.length)
        log.info(`environment left out: ${env.masked.map((m) => `${m.name} (${m.reason})`).join(', ')}`);
    return env;
}
/** One warning per credential or runner directory left out by default: the user may want it kept. */
function warnLeftOut(excluded, log) {
    for (const e of excluded) {
        if (!e.warn)
            continue;
        log.warn(`left out /${show(e.path)}: ${e.reason.replace(/^credentials: /, '')}; add it to include to keep it`);
    }
}
function describeScan(scan, root, log) {
    const bytes = scan.entries.contentBytes();
    log.info(`${scan.entries.length} entries, ${formatBytes(bytes)} in ${root}`);
    for (const line of describeExclusions(scan.excluded, scan.sockets))
        log.info(`left out: ${line}`);
    if (scan.sockets.length)
        log.warn(`${scan.sockets.length} socket(s) skipped: sockets cannot be stored in an image`);
}
async function checkRoot(root) {
    const denied = () => new failure/* InputError */.dz(`root ${root} cannot be read: permission denied; capturing it needs read access to the whole tree (run the step as root or with sudo)`);
    const st = await (0,promises_.stat)(root).catch((err) => {
        if (err.code === 'EACCES')
            throw denied();
        throw new failure/* InputError */.dz(`root ${root} cannot be read: ${err.code ?? err.message}`);
    });
    if (!st.isDirectory())
        throw new failure/* InputError */.dz(`root ${root} is not a directory`);
    // Found now, before a layout is started, rather than as an errno from the walk.
    await (0,promises_.access)(root, external_node_fs_.constants.R_OK | external_node_fs_.constants.X_OK).catch(() => {
        throw denied();
    });
}
async function isDirectory(p) {
    return (0,promises_.lstat)(p).then((st) => st.isDirectory(), () => false);
}
/** Where the image was built from, when a workflow built it (`org.opencontainers.image.source`/`.revision`). */
function sourceAnnotations() {
    const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repo, GITHUB_SHA: sha } = process.env;
    return {
        ...(server && repo ? { source: `${server}/${repo}` } : {}),
        ...(sha ? { revision: sha } : {}),
    };
}

;// CONCATENATED MODULE: ./src/layout/pull.ts

/**
 * Fetches an image into an OCI layout on disk, every blob checked against its digest, with the
 * artifacts about it (its referrers), listed in `index.json` beside it.
 */
async function pullToLayout(source, reference, layout, tag, opts) {
    const copied = await copyImage(source, reference, layout, [tag], opts);
    const { digest, mediaType, manifest } = copied;
    // The image is what was asked for: artifacts that cannot be read leave a warning, not a failure.
    const referrers = await copyReferrers(source, digest, layout, opts).catch((err) => {
        opts.log.warn(`the artifacts about ${digest} (SBOM, provenance) were not pulled: ${err.message}`);
        return [];
    });
    await layout.finish({ mediaType, digest, size: manifest.length }, [tag]);
    return { digest, manifest, referrers };
}

;// CONCATENATED MODULE: ./src/image/docker-archive.ts






/**
 * The image at `reference` as a runtime loads it: from an index, the entry for this platform (as
 * `docker pull` picks it). The manifests are checked against their digests by the source.
 */
async function loadableImage(source, reference) {
    const top = await source.manifest(reference);
    if (!top)
        throw new ContentError(`${source.name}:${reference} not found`);
    let fetched = top;
    let parsed = parse(source, fetched.bytes);
    if (Array.isArray(parsed.manifests)) {
        const want = runtimePlatform();
        const matches = parsed.manifests.filter((d) => d.platform?.os === want.os && d.platform?.architecture === want.architecture);
        const entry = matches.find((d) => !want.variant || !d.platform?.variant || d.platform.variant === want.variant) ??
            matches[0];
        if (!entry) {
            const offered = parsed.manifests.map((d) => `${d.platform?.os}/${d.platform?.architecture}`);
            throw new ContentError(`${source.name}:${reference} has no image for ${want.os}/${want.architecture} (it has ${offered.join(', ') || 'none'})`);
        }
        const child = await source.manifest(entry.digest);
        if (!child)
            throw new ContentError(`${source.name}@${entry.digest}, listed in ${reference}, is missing`);
        fetched = child;
        parsed = parse(source, fetched.bytes);
    }
    if (!Array.isArray(parsed.layers) || !parsed.config?.digest)
        throw new ContentError(`${source.name}:${reference} is not an image manifest (${fetched.mediaType})`);
    return { digest: top.digest, manifest: fetched.bytes, config: parsed.config, layers: parsed.layers };
}
/** Whether any layer is zstd-compressed (which Docker before 23.0 cannot load). */
function hasZstdLayers(image) {
    return image.layers.some((l) => l.mediaType === MediaType.layerZstd || l.mediaType.endsWith('+zstd'));
}
/**
 * The image as a `docker save` archive (`manifest.json`, the config, each layer as stored), streamed
 * blob by blob from `source`, never held whole in memory or on disk; `docker load` and `podman load`
 * read it. Layers go in compressed, as both decompress what they load. Each blob is checked against
 * its digest and size as it passes: a mismatch ends the stream with an error, so the runtime sees a
 * cut archive and loads nothing. `repoTag` names the image (null: loaded untagged).
 */
function dockerArchive(source, image, repoTag) {
    const path = (d) => `blobs/sha256/${d.digest.slice('sha256:'.length)}`;
    const manifest = Buffer.from(JSON.stringify([
        { Config: path(image.config), RepoTags: repoTag ? [repoTag] : null, Layers: image.layers.map(path) },
    ]));
    const blobs = new Map();
    for (const d of [image.config, ...image.layers])
        blobs.set(d.digest, d);
    return external_node_stream_.Readable.from((async function* () {
        yield header('blobs', 'dir');
        yield header('blobs/sha256', 'dir');
        yield header('manifest.json', 'file', manifest.length);
        yield manifest;
        yield zeroPad(manifest.length);
        for (const d of blobs.values()) {
            if (!/^sha256:[0-9a-f]{64}$/.test(d.digest))
                throw new ContentError(`${source.name}: "${d.digest}" is not a sha256 digest`);
            yield header(path(d), 'file', d.size);
            const tap = new HashTap();
            const blob = await source.openBlob(d.digest);
            // pipe() does not pass a source's error on: without this a dropped connection is unhandled.
            blob.once('error', (err) => tap.destroy(err));
            for await (const chunk of blob.pipe(tap)) {
                if (tap.bytes > d.size)
                    throw mismatch(source, d);
                yield chunk;
            }
            if (tap.bytes !== d.size || tap.digest() !== d.digest)
                throw mismatch(source, d);
            yield zeroPad(d.size);
        }
        yield END_OF_ARCHIVE;
    })(), { objectMode: false });
}
function mismatch(source, d) {
    return new ContentError(`blob ${d.digest} of ${source.name} does not match its digest or size`);
}
/** A header of the archive's own: root-owned, no time, so the same image gives the same archive. */
function header(name, type, size = 0) {
    return encodeHeader({
        name: Buffer.from(name),
        type,
        mode: type === 'dir' ? 0o755 : 0o644,
        uid: 0,
        gid: 0,
        size,
        mtimeSec: 0,
        mtimeNsec: 0,
    });
}
function parse(source, bytes) {
    try {
        return JSON.parse(bytes.toString('utf8'));
    }
    catch {
        throw new ContentError(`a manifest of ${source.name} is not JSON`);
    }
}

;// CONCATENATED MODULE: ./src/commands/load.ts



/** How long a runtime may take to say its version: a daemon that does not answer by then is not there. */
const PROBE_MS = 30_000;
/**
 * The runtime to load into: Docker when its daemon answers (`DOCKER_HOST` and the docker context are
 * the CLI's to read), else podman when it is installed; else an error that says neither is there.
 */
async function findRuntime() {
    const docker = await probe('docker', ['version', '--format', '{{.Server.Version}}']);
    if (docker.ok)
        return { name: 'docker', version: docker.out };
    const podman = await probe('podman', ['version', '--format', '{{.Client.Version}}']);
    if (podman.ok)
        return { name: 'podman', version: podman.out };
    throw new failure/* UserError */.yo(`load: neither Docker nor podman answers here (docker: ${docker.why}; podman: ${podman.why}); start Docker (or set DOCKER_HOST), install podman, or pull into a layout with output instead`);
}
/** Docker before 23.0 cannot decompress zstd layers; podman and later Docker can. */
function readsZstd(runtime) {
    if (runtime.name === 'podman')
        return true;
    const major = Number(/^(\d+)\./.exec(runtime.version)?.[1]);
    return major >= 23;
}
/**
 * Streams a `docker save` archive into `<runtime> load`. An error of the archive's own (a blob that
 * does not match its digest, a registry that fails) cuts the stream, so the runtime loads nothing,
 * and is the one reported; else a runtime that fails is reported with its last line.
 */
async function loadInto(runtime, archive) {
    const child = (0,external_node_child_process_.spawn)(runtime.name, ['load'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr = (stderr + d).slice(-4096)));
    const exited = new Promise((resolve, reject) => {
        child.once('error', reject);
        child.once('close', (code) => resolve(code));
    });
    exited.catch(() => { }); // awaited below; a spawn error must not go unhandled while the archive streams
    let archiveError;
    await (0,external_node_stream_promises_.pipeline)(archive, child.stdin).catch((err) => {
        // EPIPE: the runtime stopped reading; its exit code and message say why.
        if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_PREMATURE_CLOSE')
            archiveError = err;
    });
    const code = await exited;
    if (archiveError)
        throw archiveError;
    if (code !== 0) {
        const last = stderr.trim().split('\n').pop()?.trim() || `exit code ${code}`;
        throw new failure/* UserError */.yo(`${runtime.name} load failed: ${last}`);
    }
}
/** Runs a probe; `why` says what went wrong in a few words when it did. */
function probe(command, args) {
    return new Promise((resolve) => {
        const child = (0,external_node_child_process_.spawn)(command, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: PROBE_MS });
        let out = '';
        let err = '';
        child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
        child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
        child.once('error', (e) => resolve({ ok: false, out: '', why: e.code === 'ENOENT' ? 'not installed' : e.message }));
        child.once('close', (code, signal) => {
            const line = err.trim().split('\n')[0]?.trim();
            if (code === 0 && out.trim())
                resolve({ ok: true, out: out.trim(), why: '' });
            else
                resolve({
                    ok: false,
                    out: '',
                    why: signal ? `no answer in ${PROBE_MS / 1000} s` : line || `exit code ${code}`,
                });
        });
    });
}

;// CONCATENATED MODULE: ./src/commands/transfer.ts















/**
 * `promote`: the image at `from` copied to every `image` tag, digest unchanged, nothing recaptured.
 * Each registry gets it from the source once, into its first repository, and its other repositories
 * mount from there; a registry that fails does not stop the others (see NotWrittenError).
 */
async function promote(inputs, log) {
    const phases = new Phases(inputs.quiet);
    const first = inputs.targets[0];
    const { source, reference, name } = await openSource(inputs.source, inputs, first.registry, log);
    const wanted = inputs.source.kind === 'registry' ? inputs.source.reference.digest : undefined;
    const opts = { concurrency: inputs.concurrency, log };
    let copied;
    const written = [];
    const failures = [];
    let uploaded = 0;
    /** Per repository written: where its referrers come from (the source, or the registry's first). */
    const referrerCopies = [];
    await phases.run('promote', 'Promote', async () => {
        for (const group of groupTargets(inputs.targets)) {
            const registryWritten = [];
            try {
                const client = await connect(group.targets[0], {
                    ...pushCredentials(group.registry, first.registry, {
                        ...credentialInputs(inputs),
                        insecureRegistry: inputs.insecureRegistry,
                    }),
                    access: 'push',
                    log,
                });
                const repos = [];
                try {
                    for (const [i, r] of group.repositories.entries()) {
                        const repo = i === 0 ? client : new Repository(client.client, r.repository);
                        repos.push(repo);
                        // Read from the source once (by digest after the first registry: a moving tag cannot split
                        // the run); the other repositories of this registry mount from the first.
                        const from = i === 0 ? source : client;
                        const ref = i === 0 ? (copied?.digest ?? reference) : copied.digest;
                        const result = await copyImage(from, ref, repo, r.targets.map((t) => t.tag), opts);
                        if (wanted && result.digest !== wanted)
                            throw new WrongDigestError(`promote: ${name} resolved to ${result.digest}`);
                        copied ??= result;
                        registryWritten.push(...r.targets);
                        referrerCopies.push({ from, to: repo });
                    }
                }
                finally {
                    uploaded += repos.reduce((n, r) => n + r.uploaded, 0);
                }
            }
            catch (err) {
                if (err instanceof WrongDigestError)
                    throw err;
                const notWritten = group.targets.filter((t) => !registryWritten.includes(t));
                const error = err;
                failures.push({ registry: group.registry, references: notWritten.map(format), error });
                if (inputs.targets.length > notWritten.length)
                    log.warn(`registry ${group.registry} failed, going on with the others: ${error.message}`);
            }
            finally {
                written.push(...registryWritten);
            }
        }
    });
    if (!copied)
        throw failures[0].error;
    // The image's bytes only (counted above): its attestations are not.
    const digest = copied.digest;
    // The outputs name an artifact only when every repository written has it.
    let referrers = null;
    await phases.run('referrers', 'Attestations', async () => {
        for (const { from, to } of referrerCopies) {
            const found = await promoteReferrers(from, digest, to, inputs.concurrency, log);
            referrers = (referrers ?? found).filter((d) => found.some((f) => f.digest === d.digest));
        }
    });
    const images = written.map(format);
    for (const image of images)
        log.info(`promoted ${name} to ${image} (${copied.digest})`);
    await publish(inputs, phases, {
        operation: 'promote',
        digest: copied.digest,
        manifest: copied.manifest,
        images,
        tags: [...new Set(written.map((t) => t.tag))],
        where: { image: `${written[0].registry}/${written[0].repository}@${copied.digest}` },
        uploaded,
        referrers: referrers ?? [],
    });
    if (failures.length)
        throw new NotWrittenError(failures);
}
/**
 * The artifacts about the image (SBOM, provenance, signatures) copied after it, listed as its
 * referrers in the target. The image is promoted already: a failure here is one warning.
 */
async function promoteReferrers(source, digest, target, concurrency, log) {
    try {
        const copied = await copyReferrers(source, digest, target, { concurrency });
        log.info(`artifacts about the image: ${copied.length} copied (${copied.map((d) => d.artifactType).join(', ') || 'none found'})`);
        return copied;
    }
    catch (err) {
        log.warn(`the artifacts about ${digest} (SBOM, provenance) were not promoted: ${err.message}`);
        return [];
    }
}
/** The source is not the image its digest names: nothing more is promoted. */
class WrongDigestError extends RegistryError {
}
/**
 * `pull`: the image at `from` written to the OCI layout at `output`, every blob verified; with `load`,
 * loaded into Docker or podman (streamed into its `load`: from the layout when one was written, else
 * straight from the registry).
 */
async function pull(inputs, log) {
    const phases = new Phases(inputs.quiet);
    const from = inputs.source.reference;
    // Found before anything is read, so a machine with no runtime fails at once.
    const runtime = inputs.load ? await findRuntime() : null;
    // A pull's only registry is its source: the credential inputs are for it.
    const opened = await openSource(inputs.source, inputs, from.registry, log);
    const layout = inputs.writeLayout ? await LayoutWriter.create(inputs.output) : null;
    try {
        let pulled;
        let source = opened.source;
        if (layout) {
            pulled = await phases.run('pull', 'Pull', () => pullToLayout(opened.source, opened.reference, layout, from.tag ?? 'latest', {
                concurrency: inputs.concurrency,
                log,
            }));
            log.info(`pulled ${opened.name} (${pulled.digest}) into ${inputs.output}`);
            source = layoutSource(inputs.output);
        }
        let loaded;
        if (runtime) {
            const reference = layout ? (from.tag ?? 'latest') : opened.reference;
            const image = await loadableImage(source, reference);
            pulled ??= { digest: image.digest, manifest: image.manifest, referrers: [] };
            if (hasZstdLayers(image) && !readsZstd(runtime))
                throw new failure/* UserError */.yo(`load: ${opened.name} has zstd layers, which Docker ${runtime.version} cannot load (zstd needs Docker 23.0 or newer); load it into podman, or snapshot it with compression gzip`);
            const name = loadName(from, image.digest);
            await phases.run('load', `Load into ${runtime.name}`, () => loadInto(runtime, dockerArchive(source, image, name)));
            log.info(`loaded ${opened.name} (${image.digest}) into ${runtime.name} ${runtime.version} as ${name}`);
            loaded = { runtime: runtime.name, image: name };
        }
        await publish(inputs, phases, {
            operation: 'pull',
            digest: pulled.digest,
            manifest: pulled.manifest,
            images: [],
            tags: [],
            where: layout ? { output: inputs.output } : {},
            uploaded: 0,
            ...(loaded ? { loaded } : {}),
            referrers: pulled.referrers,
        });
    }
    catch (err) {
        await layout?.abort();
        throw err;
    }
}
/**
 * The name a loaded image gets: the source reference (`latest` when it named no tag); pinned by
 * digest alone, its repository with the tag `sha256-<hex>`, since a runtime's `load` cannot record a
 * digest, and an image loaded with no name could only be run by its ID.
 */
function loadName(from, digest) {
    return `${from.registry}/${from.repository}:${from.tag ?? `sha256-${digest.slice('sha256:'.length)}`}`;
}
async function publish(inputs, phases, result) {
    const key = describeExisting(result.digest, result.manifest).key ?? null;
    await publishResult({ ...result, base: null, changes: null, durationMs: Date.now() - phases.startedAt, key, skipped: false }, { metadataFile: inputs.metadataFile, quiet: inputs.quiet });
}
/**
 * The image promote or pull reads: an OCI layout, or a repository, given the credential inputs only
 * if it is on `targetRegistry`, the registry they are meant for.
 */
async function openSource(from, inputs, targetRegistry, log) {
    if (from.kind === 'layout') {
        return { source: layoutSource(from.dir), reference: from.tag, name: `oci:${from.dir}:${from.tag}` };
    }
    const ref = from.reference;
    const repo = await connect(ref, {
        ...credentialsFor(ref, { inputs, targetRegistry }),
        access: 'pull',
        log,
    });
    // referenceInput gives a reference without a digest the tag latest.
    return { source: registrySource(repo), reference: ref.digest ?? ref.tag ?? 'latest', name: format(ref) };
}

;// CONCATENATED MODULE: ./src/commands/lookup.ts






/**
 * `lookup`: whether the first `image` tag holds an image made from `key` (when given) and younger
 * than `max-age` (when given), so a workflow can skip its setup steps and the snapshot on a hit.
 * Reads the tag's manifest (and its config only when the manifest does not say when the image was
 * made); writes nothing. A missing tag is a miss; a registry that cannot be reached, or refuses the
 * credentials, is an error: a miss would rebuild for nothing, a hit would skip a build wrongly.
 */
async function lookup(inputs, log) {
    const { target } = inputs;
    const repo = await connect(target, {
        // The credential inputs are meant for the image looked at: it is the target of the snapshot.
        credentials: { ...credentialInputs(inputs), isTarget: true },
        insecureRegistry: inputs.insecureRegistry,
        access: 'pull',
        log,
    });
    const existing = await readExisting(repo, target.tag);
    const want = { key: inputs.key || undefined, maxAgeMs: inputs.maxAge || undefined };
    const hit = !!existing && satisfies(existing, want);
    log.info(`lookup ${format(target)}: ${hit ? 'hit' : 'miss'}: ${why(existing, want)}`);
    setOutputs({
        hit,
        digest: existing?.digest ?? '',
        created: existing?.created ?? '',
        key: existing?.key ?? '',
    });
}
function why(existing, want) {
    if (!existing)
        return 'no image at this tag';
    const parts = [`it holds ${existing.digest}`];
    if (want.key)
        parts.push(existing.key === want.key
            ? 'with this key'
            : existing.key === undefined
                ? 'with no key'
                : `with another key (${existing.key})`);
    if (want.maxAgeMs) {
        const created = existing.created ? Date.parse(existing.created) : NaN;
        parts.push(Number.isNaN(created)
            ? 'which does not say when it was made'
            : `created ${existing.created}, ${Date.now() - created < want.maxAgeMs ? 'younger' : 'older'} than max-age ${formatDuration(want.maxAgeMs)}`);
    }
    return parts.join(', ');
}

;// CONCATENATED MODULE: ./src/main.ts







/**
 * The main step, and the command line: reads the inputs, runs the command they name, and ends every
 * failure the same way (one line, exit 1), after running itself again under sudo when the tree needs
 * root and sudo allows it.
 */
async function run(argv) {
    if (wantsHelp(argv)) {
        process.stdout.write(helpText() + '\n');
        return;
    }
    let log = makeLogger({ quiet: false });
    try {
        // Masked before the first line; the runner then hides them in every later one.
        for (const secret of secretValues(argv))
            maskSecret(secret);
        const inputs = getInputs(argv);
        log = makeLogger({ quiet: inputs.quiet });
        const writesLayout = (inputs.mode === 'pull' && inputs.writeLayout) || (inputs.mode === 'snapshot' && inputs.dryRun);
        const movesTags = (inputs.mode === 'snapshot' && !inputs.dryRun) || inputs.mode === 'promote';
        // lookup, and a pull that only loads, write nothing an interrupt could leave half done.
        if (writesLayout || movesTags)
            (0,interrupt/* interruptedRunWrites */.iJ)({ writesLayout, output: inputs.output });
        if (inputs.mode === 'snapshot')
            await snapshot(inputs, log);
        else if (inputs.mode === 'promote')
            await promote(inputs, log);
        else if (inputs.mode === 'lookup')
            await lookup(inputs, log);
        else
            await pull(inputs, log);
    }
    catch (err) {
        await failOrRerunAsRoot(err, log);
    }
}


/***/ })

};
