import { imagePurl } from './sbom.js';

/** Our SLSA build type: what `externalParameters` and `internalParameters` hold (README, Attestations). */
export const BUILD_TYPE = 'https://github.com/depot/snapshot-action/attestations/snapshot/v1';

export interface ProvenanceInput {
  /** `registry/repository` the image went to, or '' for a layout. */
  repository: string;
  /** The image's manifest digest. */
  digest: string;
  /** The base image, by the name given and the digest it resolved to. */
  base: { name: string; digest: string } | null;
  /** When the run started and when the image was complete (RFC 3339). */
  startedOn: string;
  finishedOn: string;
  /** The process environment: only the GITHUB_* values named below are read from it. */
  env: NodeJS.ProcessEnv;
}

/** An in-toto resource descriptor. */
interface Resource {
  uri?: string;
  name?: string;
  digest?: Record<string, string>;
}

/**
 * An in-toto Statement v1 whose predicate is SLSA provenance v1: which workflow run made the image
 * from which commit, on top of which base image. Outside Actions (no GITHUB_*), what is known: the
 * image, its base and the times, with `internalParameters.github` saying none was found.
 */
export function slsaProvenance(input: ProvenanceInput): Buffer {
  const github = githubContext(input.env);
  const resolved: Resource[] = [];
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
function githubContext(env: NodeJS.ProcessEnv) {
  const value = (name: string) => env[name]?.trim() || undefined;
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
function parseWorkflowRef(workflowRef: string, server: string) {
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
function builderId(github: ReturnType<typeof githubContext>): string {
  const repository = github.actionRepository ?? 'depot/snapshot-action';
  return `${github.server}/${repository}${github.actionRef ? `@${github.actionRef}` : ''}`;
}

/** `registry/repository` of a reference `registry/repository[:tag][@digest]`. */
function baseRepository(name: string): string {
  const withoutDigest = name.split('@')[0];
  const lastSlash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  return colon > lastSlash ? withoutDigest.slice(0, colon) : withoutDigest;
}
