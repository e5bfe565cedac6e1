/** The first URI of Debian's main archive in apt's configuration (`etcApt`, default /etc/apt). */
export function debianMirror(etcApt?: string): string;
