// Statistics, number formats and markdown tables for the results.

export const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const max = (xs) => Math.max(...xs.filter(Number.isFinite));
export const sum = (xs) => xs.reduce((a, b) => a + b, 0);

export const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '—');
export const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '—');
export const gb = (n) => (Number.isFinite(n) ? `${(n / 1e9).toFixed(3)} GB` : '—');
export const mbps = (bytes, s) => `${(bytes / 1e6 / s).toFixed(0)} MB/s`;
export const mb = (bytes) => bytes / 1e6;
/** Content sizes from kB to GB: 5.0 MB, 500.0 MB, 5.00 GB. */
export const size = (n) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`);
/** Entry counts in tree names and labels: 10k, 1m, 100. */
export const count3 = (n) =>
  n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}m` : n >= 1e3 && n % 1e3 === 0 ? `${n / 1e3}k` : `${n}`;

/** A markdown table; `|` in cells is escaped. */
export const mdTable = (head, body) =>
  [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...body.map((r) => `| ${r.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`),
  ].join('\n');

/** A section of its own under the main table (P4, SCALE): heading, table, a line of text. */
export function sectionMarkdown({ title, header, rows, text }) {
  return [title, '', mdTable(header, rows), '', ...(text ? [text, ''] : [])];
}
