// Looking for secrets in what a run printed, in every form they could leak in.

/**
 * The forms a secret could show up in: verbatim; base64 and base64url of itself and of
 * `user:secret` (a Basic Authorization header) for each given user; and the part of its base64 that
 * stays the same whatever surrounds it (at each of the three alignments).
 */
export function leakForms(secret: string, users: string[] = []): string[] {
  const forms = [secret];
  for (const plain of [secret, ...users.map((u) => `${u}:${secret}`)]) {
    forms.push(Buffer.from(plain).toString('base64'), Buffer.from(plain).toString('base64url'));
  }
  for (let shift = 0; shift < 3; shift++) {
    const b64 = Buffer.from('x'.repeat(shift) + secret).toString('base64');
    forms.push(b64.slice(Math.ceil((shift * 4) / 3) + 1, -4));
  }
  return forms.filter((f) => f.length >= 8);
}

/**
 * The output without the runner's masking commands (`::add-mask::<secret>` is how the secret is
 * handed to the runner, which swallows the line and hides the value everywhere else).
 */
export function shownOutput(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.startsWith('::add-mask::'))
    .join('\n');
}

/** The forms of `secrets` found in `text` (shownOutput first), for an `toEqual([])`. */
export function leaks(text: string, secrets: string[], users: string[] = []): string[] {
  const shown = shownOutput(text);
  return secrets.flatMap((s) => leakForms(s, users)).filter((form) => shown.includes(form));
}

/** A JSON Web Token (a registry bearer token): three base64url parts, the first two JSON objects. */
export const JWT = /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/;
