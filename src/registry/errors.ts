/** A registry said no, or could not be reached: the message is one sentence a user can act on. */
export class RegistryError extends Error {
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
  MANIFEST_INVALID: 'the registry rejected the manifest',
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
  const first = parsed?.errors?.[0];
  if (first?.code) {
    const hint = HINTS[first.code];
    const message = first.message ? `: ${oneLine(first.message)}` : '';
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
          : '';
  const snippet = /^\s*</.test(body) ? 'an HTML page' : body ? `"${oneLine(body).slice(0, 120)}"` : 'no body';
  return new RegistryError(`${what} failed: HTTP ${status}${hint}; the registry answered ${snippet}`, status);
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}
