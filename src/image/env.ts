import picomatch from 'picomatch';

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

export interface PersistedEnv {
  /** The config's `Env`, `NAME=value` in the base's order with new names after, sorted. */
  env: string[];
  /** Names taken from this job (new or changed against the base). */
  kept: string[];
  /** Names left out, with why. */
  masked: Array<{ name: string; reason: string }>;
}

const runVariable = picomatch(RUN_VARIABLES);
const secretName = picomatch(SECRET_NAMES, { nocase: true });

/**
 * The base image's `Env` updated with this job's environment: `PATH` as the job has it now, and every
 * variable that differs from the base's, except run variables, secret-looking names, names matching
 * `mask`, and any variable whose value carries a known secret.
 */
export function persistedEnv(
  current: NodeJS.ProcessEnv,
  baseEnv: string[],
  mask: string[],
  secrets: string[],
): PersistedEnv {
  const userMask = mask.length ? picomatch(mask) : () => false;
  const base = new Map<string, string>();
  for (const pair of baseEnv) {
    const eq = pair.indexOf('=');
    base.set(eq < 0 ? pair : pair.slice(0, eq), eq < 0 ? '' : pair.slice(eq + 1));
  }
  // A secret copied into an innocent-looking name (URL=https://user:$TOKEN@host) is still a secret.
  const secretValues = [
    ...secrets,
    ...Object.entries(current)
      .filter(([name, value]) => value && (secretName(name) || name === 'GITHUB_TOKEN'))
      .map(([, value]) => value!),
  ].filter((v) => v.length >= 8);
  const kept: string[] = [];
  const masked: PersistedEnv['masked'] = [];
  const updates = new Map<string, string>();
  for (const name of Object.keys(current).sort()) {
    const value = current[name];
    if (value === undefined || base.get(name) === value) continue;
    // A name with `=` cannot be written as NAME=value; an empty name is no variable.
    if (!name || name.includes('=')) continue;
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
      if (reason !== 'runner or job variable') masked.push({ name, reason });
      continue;
    }
    updates.set(name, value);
    kept.push(name);
  }
  const env = [...base].map(([name, value]) => `${name}=${updates.get(name) ?? value}`);
  for (const [name, value] of updates) if (!base.has(name)) env.push(`${name}=${value}`);
  return { env, kept, masked };
}
