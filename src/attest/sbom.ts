import { createHash } from 'node:crypto';
// The submodules alone: the package's index also loads its validators and resource paths.
import * as Enums from '@cyclonedx/cyclonedx-library/Enums';
import * as Models from '@cyclonedx/cyclonedx-library/Models';
import * as Serialize from '@cyclonedx/cyclonedx-library/Serialize';
import * as Spec from '@cyclonedx/cyclonedx-library/Spec';
import { PackageURL } from 'packageurl-js';
import type { Inventory, Package } from '../inventory/inventory.js';

/** The image an SBOM describes. */
export interface SbomSubject {
  /** `registry/repository` it was pushed to, or '' (a dry run's layout). */
  repository: string;
  /** The image's manifest digest. */
  digest: string;
  /** The image's `created` (RFC 3339): the SBOM's timestamp, so one image gives one SBOM. */
  created: string;
}

/** Under this namespace, each component's properties say where in the image it was read from. */
const PROPERTY = { location: 'snapshot-action:location', source: 'snapshot-action:source-package' };

/**
 * A CycloneDX 1.6 JSON SBOM of every package in `inventory`, about the image as a `container`
 * component. Deterministic: components sorted, no random serial or bom-refs, the image's own time.
 */
export function cyclonedxSbom(inventory: Inventory, image: SbomSubject): Buffer {
  const bom = new Models.Bom({ serialNumber: serialNumber(image.digest) });
  bom.metadata = new Models.Metadata({
    timestamp: new Date(image.created),
    component: new Models.Component(Enums.ComponentType.Container, imageName(image), {
      bomRef: image.digest,
      version: image.digest,
      purl: imagePurl(image),
    }),
    tools: new Models.Tools({
      components: new Models.ComponentRepository([
        new Models.Component(Enums.ComponentType.Application, 'snapshot-action', {
          group: 'depot',
          bomRef: 'snapshot-action',
        }),
      ]),
    }),
  });
  if (inventory.os) {
    bom.components.add(
      new Models.Component(Enums.ComponentType.OperatingSystem, inventory.os.id, {
        bomRef: `os:${inventory.os.id}`,
        ...(inventory.os.versionId ? { version: inventory.os.versionId } : {}),
        ...(inventory.os.prettyName ? { description: inventory.os.prettyName } : {}),
      }),
    );
  }
  const refs = new Set<string>();
  // In one order whatever the inventory's, so that a package found twice gets the same bom-refs.
  const packages = [...inventory.packages].sort(
    (a, b) => compare(a.purl, b.purl) || compare(a.location, b.location),
  );
  for (const p of packages) bom.components.add(component(p, uniqueRef(p, refs)));
  const serializer = new Serialize.JsonSerializer(new Serialize.JSON.Normalize.Factory(Spec.Spec1dot6));
  return Buffer.from(serializer.serialize(bom, { sortLists: true }));
}

function component(p: Package, bomRef: string): Models.Component {
  const properties = new Models.PropertyRepository([new Models.Property(PROPERTY.location, p.location)]);
  if (p.source) properties.add(new Models.Property(PROPERTY.source, p.source));
  return new Models.Component(Enums.ComponentType.Library, p.name, {
    bomRef,
    version: p.version,
    purl: p.purl,
    properties,
  });
}

/** The purl, else (the same package found at two places) the purl and where this one was found. */
function uniqueRef(p: Package, taken: Set<string>): string {
  let ref = p.purl;
  if (taken.has(ref)) ref = `${p.purl}#${p.location}`;
  for (let n = 2; taken.has(ref); n++) ref = `${p.purl}#${p.location}#${n}`;
  taken.add(ref);
  return ref;
}

/** The image's name: the last part of its repository, or `snapshot` for a layout. */
function imageName(image: SbomSubject): string {
  return image.repository.split('/').pop()?.toLowerCase() || 'snapshot';
}

/** `pkg:oci/<name>@sha256%3A…?repository_url=<registry>/<repository>` (purl-spec's oci type). */
export function imagePurl(image: { repository: string; digest: string }): string {
  const qualifiers = image.repository ? { repository_url: image.repository } : undefined;
  return new PackageURL(
    'oci',
    undefined,
    imageName({ ...image, created: '' }),
    image.digest,
    qualifiers,
    undefined,
  ).toString();
}

/** `urn:uuid:` of a name-based UUID (v5 layout, SHA-1) of the digest: one image, one serial number. */
function serialNumber(digest: string): string {
  const h = createHash('sha1').update(`snapshot-action sbom ${digest}`).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `urn:uuid:${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** By code unit, not locale: the same order on every machine. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
