import { CHANGE_MODES } from '../diff/changes.js';
import { COMPRESSIONS, LEVELS } from '../layer/compress.js';
import { LAYER_LIMIT } from '../image/budget.js';

/** What a run does; `promote`, `pull` and `lookup` are also subcommands on the command line. */
export const MODES = ['snapshot', 'promote', 'pull', 'lookup'] as const;
export type Mode = (typeof MODES)[number];

/** Where a dry run or a pull writes its layout when `output` is not set. */
export const OUTPUT_DEFAULT = 'snapshot-layout';

/** Layers compressed and uploaded at once. */
export const CONCURRENCY = { min: 1, max: 16 };
/** Docker and podman refuse to run an image of more than about 125 layers: see image/budget.ts. */
export const MAX_LAYERS = { min: 3, max: LAYER_LIMIT, default: 64 };

const { gzip, zstd } = LEVELS;

export interface InputSpec {
  name: string;
  /** What the Marketplace page (action.yml) and `--help` say: action.yml must say exactly this. */
  description: string;
  /** As the runner passes an input left unset: a string, '' for none. */
  default: string;
  /**
   * How the value is read: `text` as given; `boolean` true or false (`--x`, `--no-x` on the command
   * line); `list` one item a line (a flag that may repeat); `choice` one of `values`.
   */
  kind: 'text' | 'boolean' | 'list' | 'choice';
  /** The allowed values of a `choice`, from where they are defined. */
  values?: readonly string[];
  /** Masked before anything is logged. */
  secret?: boolean;
}

/**
 * Every input, in action.yml's order: an action input (`INPUT_<NAME>`) and a `--<name>` flag. None is
 * required by the runner (action.yml says `required: false`): what a mode needs is checked by getInputs.
 */
export const INPUT_SPECS: readonly InputSpec[] = [
  {
    name: 'image',
    description:
      'Image reference(s) to push to, one per line, in any repositories and registries; tag defaults to latest (e.g. <org-id>.registry.depot.dev/my-ci-image:latest)',
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
    description:
      'The image the sandbox started from (optionally @digest): its layers are reused and only changes captured. Default: SNAPSHOT_BASE_IMAGE',
    default: '',
    kind: 'text',
  },
  {
    name: 'changes',
    description:
      'How changes are found: auto (overlay upper dir, else the baseline when one was recorded, else full), overlay, baseline, or full',
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
    description:
      "The overlay upper dir of root as this job sees it, when mountinfo's upperdir is not reachable (e.g. /rw/.snap/upper after a pivot_root): changes are read from it",
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
    description:
      'snapshot (capture root), promote (copy `from` to `image` without recapturing), pull (fetch `from` into `output`, or into Docker or podman with `load`) or lookup (whether `image` holds an image with this `key`, young enough for `max-age`: outputs hit, digest, created, key)',
    default: 'snapshot',
    kind: 'choice',
    values: MODES,
  },
  {
    name: 'from',
    description:
      'The source image (tag or @digest) of promote and pull; for promote also oci:DIR[:TAG], an OCI layout',
    default: '',
    kind: 'text',
  },
  {
    name: 'token',
    description:
      'Registry token, sent as Basic x-token:<token> (Depot registry) to the registry of the first image; DEPOT_SNAPSHOT_TOKEN or DEPOT_TOKEN when empty',
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
    description:
      'Skip the snapshot when every tag holds one image younger than this (e.g. 45m, 1h30m, 5d); for lookup, a hit must be younger than this',
    default: '',
    kind: 'text',
  },
  {
    name: 'key',
    description:
      'What the image is built from (e.g. a hash of the setup files), stored in its manifest: a snapshot whose every tag already holds an image with this key (and young enough for max-age) captures nothing',
    default: '',
    kind: 'text',
  },
  {
    name: 'load',
    description:
      'pull: load the image into the local Docker (or podman where Docker does not answer), tagged with `from`; a layout is then written only when `output` is set',
    default: 'false',
    kind: 'boolean',
  },
  {
    name: 'persist-env',
    description:
      "Keep the job's PATH and the variables its steps set in the image's Env (never runner variables or secret-looking names)",
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
    description:
      'Attach a CycloneDX SBOM of every package in the image to it, as an OCI 1.1 referrer (false: none)',
    default: 'true',
    kind: 'boolean',
  },
  {
    name: 'provenance',
    description:
      'Attach SLSA v1 provenance (the workflow run, commit and base image) to the image, as an OCI 1.1 referrer (false: none)',
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
