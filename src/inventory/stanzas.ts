/**
 * RFC 822-style stanzas (dpkg's status file, apk's installed database): blank-line separated, one
 * `Field: value` (dpkg) or `K:value` (apk) a line; continuation lines, which start with a space, are
 * skipped (only single-line fields are read).
 */
export function* stanzas(text: string, foldCase: boolean): Generator<Map<string, string>> {
  let fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (fields.size) yield fields;
      fields = new Map();
      continue;
    }
    if (line.startsWith(' ') || line.startsWith('\t')) continue;
    const at = line.indexOf(':');
    if (at <= 0) continue;
    // dpkg field names are case-insensitive; apk's one-letter keys are not (`P` and `p` differ).
    const key = foldCase ? line.slice(0, at).toLowerCase() : line.slice(0, at);
    fields.set(key, line.slice(at + 1).trim());
  }
  if (fields.size) yield fields;
}
