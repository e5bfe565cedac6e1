import { UserError } from '../failure.js';

/** A registry said no, or could not be reached: the message is one sentence a user can act on. */
export class RegistryError extends UserError {
  /** The registry's Retry-After on a refusal that may pass later, for the caller that retries. */
  retryAfterMs?: number;

  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** The upload session is gone or out of step: the blob must start over from its source. */
export class RestartBlobError extends RegistryError {}

interface OciErrorBody {
  errors?: Array<{ code?: string; message?: string; detail?: unknown }>;
}

const HINTS: Record<string, string> = {
  UNAUTHORIZED: 'check the credentials (username/password, token, or docker login)',
  DENIED: 'check that these credentials may push to this repository',
  NAME_UNKNOWN: 'the repository does not exist; some registries (ECR) need it created first',
  NAME_INVALID: 'check the repository name',
  // distribution answers this (detail "http: request body too large") to a manifest over 4 MiB.
  MANIFEST_INVALID:
    'the registry rejected the manifest; if it is over the registry size limit (4 MiB on most), use a larger layer-size for fewer layers',
  MANIFEST_BLOB_UNKNOWN: 'a blob the manifest names is missing in the registry',
  BLOB_UPLOAD_INVALID: 'the upload was rejected',
  DIGEST_INVALID: 'the uploaded bytes do not match their digest (did the tree change while it was read?)',
  SIZE_INVALID: 'the uploaded size does not match',
  TOOMANYREQUESTS: 'the registry is rate limiting; try again later',
  UNSUPPORTED: 'the registry does not support this operation',
};

/** Turns a registry's error answer into one clear sentence; the body may be JSON, HTML or garbage. */
export function describeFailure(what: string, status: number, body: string): RegistryError {
  let parsed: OciErrorBody | undefined;
  try {
    parsed = JSON.parse(body) as OciErrorBody;
  } catch {
    parsed = undefined;
  }
  const first = Array.isArray(parsed?.errors) ? parsed.errors[0] : undefined;
  if (typeof first?.code === 'string') {
    const hint = HINTS[first.code];
    // The detail often says why (distribution: "http: request body too large"); long ones are cut.
    const detail =
      typeof first.detail === 'string' && first.detail ? `: ${oneLine(first.detail).slice(0, 200)}` : '';
    const message =
      typeof first.message === 'string' && first.message ? `: ${oneLine(first.message)}${detail}` : detail;
    return new RegistryError(
      `${what} failed: ${status} ${first.code}${message}${hint ? ` (${hint})` : ''}`,
      status,
      first.code,
    );
  }
  const hint =
    status === 401
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
export const NOT_A_REGISTRY = '(is this a registry? check the host name and port)';

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** What one registry of a run did not get, and why. */
export interface RegistryFailure {
  registry: string;
  /** The references (`registry/repository:tag`) not written there. */
  references: string[];
  error: Error;
}

/**
 * A push to several registries that reached some but not all: one line naming every reference not
 * written and each failed registry's reason. The references written are in the outputs.
 */
export class NotWrittenError extends RegistryError {
  constructor(readonly failures: RegistryFailure[]) {
    const references = failures.flatMap((f) => f.references);
    const reasons = failures.map((f) => `registry ${f.registry}: ${f.error.message}`);
    super(
      `not written: ${references.join(', ')} (${reasons.join('; ')}); the other references were written (see the outputs); run again to write these`,
    );
  }
}
